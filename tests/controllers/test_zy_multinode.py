"""Multi-node training end to end: a TrainingJob on 2 nodes becomes an Indexed Job of 2 pods and a
headless Service; the test kubelet runs both pods as local processes whose torchrun agents really
rendezvous (c10d, on index 0's DNS name resolved to 127.0.0.1) and train on CPU (gloo), and the
operator follows the Job to Succeeded and a TrainedModel.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from musicgen_ops.pipeline.audio import AudioDataPreprocessor
from musicgen_ops.pipeline.demo_data import render_demo_dataset
from tests.controllers.conftest import Cluster, unique
from tests.controllers.helpers import training_job
from tests.kube_api.kubelet import Kubelet

#: What torchrun's agent logs once the rendezvous is complete (INFO): this node's rank and the world size.
RENDEZVOUS_DONE = re.compile(r"Rendezvous complete.*?group_rank=(\d+).*?global_world_sizes=\[(\d+)\]", re.S)


def _dataset(cluster: Cluster, tmp_path: Path, name: str) -> str:
    raw = render_demo_dataset(tmp_path / "raw", num_tracks=2, seconds=4.0)
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(
        raw, cluster.artifacts / "datasets" / name
    )
    return f"file://{cluster.artifacts}/datasets/{name}"


@pytest.fixture
def kubelet(cluster: Cluster, tmp_path: Path):
    if cluster.get("secrets", "storage-creds") is None:  # the operator's storage Secret (envFrom)
        cluster.create(
            "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "storage-creds"}}
        )
    node = Kubelet(cluster.url, tmp_path / "pods")
    node.node_env = {"LOGLEVEL": "INFO"}  # torchrun's agent then logs the rendezvous it completed
    yield node
    node.stop()


def test_two_nodes_rendezvous_and_train(cluster: Cluster, kubelet: Kubelet, tmp_path: Path) -> None:
    raw = render_demo_dataset(tmp_path / "raw", num_tracks=2, seconds=4.0)
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(
        raw, cluster.artifacts / "datasets" / "mn"
    )
    name = unique("mn")
    cluster.create(
        "trainingjobs",
        training_job(
            name,
            datasetUri=f"file://{cluster.artifacts}/datasets/mn",
            modelId=f"{name}-model",
            lora={"r": 4, "alpha": 8, "dropout": 0.0},
            # No condition dropout: its path does not reach through torch's DDP wrapper before data-parallel
            # training lands in the pipeline (each worker trains on its own until then).
            training={
                "epochs": 1,
                "batchSize": 2,
                "precision": "fp32",
                "saveSteps": 2,
            },
            exportFormats=["adapter"],
            resources={"gpu": 0, "nodes": 2, "cpu": "1", "memory": "2Gi"},
        ),
    )
    status = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))["status"]
    assert status["requestedWorldSize"] == 2
    job = cluster.get("jobs", status["jobName"])
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        2,
        2,
    )
    service = cluster.wait_for("headless Service", lambda: cluster.get("services", status["jobName"]))
    assert service["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]

    done = kubelet.run_job("default", job)
    logs = [(kubelet.scratch / f"{job['metadata']['name']}-{i}.log").read_text() for i in (0, 1)]
    assert done.returncode == 0, done.stdout[-3000:]
    ranks = sorted(RENDEZVOUS_DONE.search(log).groups() for log in logs)  # type: ignore[union-attr]
    assert ranks == [("0", "2"), ("1", "2")], logs

    finished = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Succeeded", timeout=30)
    assert finished["status"]["trainedModel"] == f"{name}-model"
    assert finished["status"]["workers"] == "0/2"
    # The trainer reports its world size once it trains data-parallel (older train-jobs report none).
    assert finished["status"].get("worldSize") == 2
    assert cluster.get("trainedmodels", f"{name}-model") is not None

    # The Service goes with its Job (garbage collection by owner reference).
    cluster.delete("jobs", job["metadata"]["name"])
    cluster.wait_for("Service deleted", lambda: cluster.get("services", status["jobName"]) is None)


def test_a_lost_worker_is_retried_and_every_worker_resumes(
    cluster: Cluster, kubelet: Kubelet, tmp_path: Path
):
    """Index 1's pod dies mid-run: the Job retries that index (backoffLimitPerIndex), its new pod rejoins
    the rendezvous with index 0 (restarted or retried in turn), and both resume from the last checkpoint in
    the run folder; the run still succeeds."""
    name = unique("mnr")
    cluster.create(
        "trainingjobs",
        training_job(
            name,
            datasetUri=_dataset(cluster, tmp_path, "mnr"),
            modelId=f"{name}-model",
            lora={"r": 4, "alpha": 8, "dropout": 0.0},
            training={
                "epochs": 12,
                "batchSize": 1,
                "precision": "fp32",
                "saveSteps": 4,
            },
            exportFormats=["adapter"],
            resources={"gpu": 0, "nodes": 2, "cpu": "1", "memory": "2Gi"},
            backoffLimit=1,
        ),
    )
    status = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))["status"]
    job = cluster.get("jobs", status["jobName"])
    cluster.wait_for("headless Service", lambda: cluster.get("services", status["jobName"]))
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(kubelet.run_job("default", job)), daemon=True)
    runner.start()

    checkpoints = Path(status["runUri"].removeprefix("file://")) / "checkpoints"
    cluster.wait_for("a checkpoint", lambda: outcome or list(checkpoints.glob("checkpoint-*")), 300)
    assert not outcome, outcome[0].stdout[-3000:]  # the Job ended before any checkpoint
    kubelet.running_pods[f"{status['jobName']}-1"].terminate()  # the node of index 1 goes away
    runner.join(600)
    (done,) = outcome
    job_name = status["jobName"]
    assert done.returncode == 0, done.stdout[-3000:]
    logs = {path.stem: path.read_text() for path in kubelet.scratch.glob(f"{job_name}-*.log")}
    assert f"{job_name}-1-retry1" in logs  # the lost index was retried
    # Index 0 either restarted its worker for the rejoining node (a membership change: its worker was
    # idle or hung) or, training data-parallel, lost its peer mid-step, failed and was retried too.
    survivor = f"{job_name}-0-retry1" if f"{job_name}-0-retry1" in logs else f"{job_name}-0"
    recovered = survivor.endswith("retry1") or "will restart worker group" in logs[survivor]
    assert recovered, logs[survivor][-3000:]
    for final in (survivor, f"{job_name}-1-retry1"):  # every worker resumed from the last checkpoint
        resumed = re.findall(r"resuming from ([^\"]+)", logs[final])
        assert resumed and "checkpoint-" in resumed[-1], logs[final][-3000:]

    finished = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Succeeded", timeout=30)
    assert finished["status"]["attempts"] == len(logs)  # every pod started, retries included
