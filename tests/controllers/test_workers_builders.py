"""Multi-GPU and multi-node training Jobs: the torchrun launch, the Indexed Job, the headless Service,
what the spec refuses, and how the operator reads the workers back (pure functions, no cluster)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musicgen_ops.api.trainingjob import TrainingJobSpec, TrainingResources
from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.controllers.builders.jobs import build_training_job
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.builders.workers import TORCHRUN, build_workers_service, name_problem
from musicgen_ops.controllers.config import ConfigurationError, load_config
from musicgen_ops.controllers.failures import failure_reason
from musicgen_ops.controllers.policy import spec_digest
from musicgen_ops.controllers.workers import waiting_note, worker_fields

OWNER = Owner("TrainingJob", "piano", "music", "uid-1")


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("MUSICGEN_OPERATOR_ARTIFACTS_URI", "s3://bucket/root")
    return load_config()


def _job(config, **resources):
    spec = TrainingJobSpec.model_validate(
        {"datasetUri": "s3://d/x", "backoffLimit": 2, "resources": resources}
    )
    return build_training_job(OWNER, spec, config)


def _container(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def test_one_process_keeps_the_plain_job(config):
    for resources in ({"gpu": 1}, {"gpu": 0}):
        job = _job(config, **resources)
        assert _container(job)["command"] == ["train-job"]
        assert "completionMode" not in job["spec"] and "subdomain" not in job["spec"]["template"]["spec"]
        assert job["spec"]["backoffLimit"] == 2


def test_one_node_with_several_gpus_runs_torchrun_standalone(config):
    job = _job(config, gpu=4)
    assert _container(job)["command"] == [
        *TORCHRUN,
        "--nproc-per-node=4",
        "--max-restarts=0",
        "--standalone",
        "--no-python",
        "train-job",
    ]
    assert "completionMode" not in job["spec"]
    assert _container(job)["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_several_nodes_make_an_indexed_job_that_rendezvous_on_index_0(config):
    job = _job(config, gpu=2, nodes=3)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    # Each index retried twice; one index out of retries fails the Job (and stops the other workers).
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"], spec["backoffLimit"]) == (2, 0, 6)
    assert [r["action"] for r in spec["podFailurePolicy"]["rules"]] == ["Ignore", "FailJob"]
    assert pod["subdomain"] == "piano-train" and pod["restartPolicy"] == "Never"
    container = _container(job)
    assert container["command"] == [
        *TORCHRUN,
        "--nproc-per-node=2",
        "--max-restarts=0",
        "--nnodes=3",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=piano-train-0.piano-train.music.svc.cluster.local:29400",
        "--rdzv-id=uid-1",
        "--no-python",
        "train-job",
    ]
    assert container["ports"] == [{"name": "rendezvous", "containerPort": 29400, "protocol": "TCP"}]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = TrainJobEnvironment.from_environ({e["name"]: e["value"] for e in container["env"] if "value" in e})
    assert env.device == "cuda" and env.resume is True


def test_cpu_nodes_run_one_gloo_process_each(config, monkeypatch):
    monkeypatch.setenv("MUSICGEN_OPERATOR_CLUSTER_DOMAIN", "k8s.example")
    job = _job(load_config(), gpu=0, nodes=2)
    command = _container(job)["command"]
    assert "--nproc-per-node=1" in command and "--nnodes=2" in command
    assert "--rdzv-endpoint=piano-train-0.piano-train.music.svc.k8s.example:29400" in command
    env = {e["name"]: e["value"] for e in _container(job)["env"] if "value" in e}
    assert env["MUSICGEN_JOB_DEVICE"] == "cpu"
    assert "nvidia.com/gpu" not in _container(job)["resources"]["limits"]


def test_torchrun_reads_the_command_as_built(config, monkeypatch):
    """The seam: torchrun's own parser gets the world the spec asked for."""
    from torch.distributed.run import config_from_args, get_args_parser

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun sets it in its own process otherwise
    for resources, nodes, nproc in (({"gpu": 2, "nodes": 3}, 3, 2), ({"gpu": 4}, 1, 4)):
        command = _container(_job(config, **resources))["command"]
        assert tuple(command[: len(TORCHRUN)]) == TORCHRUN  # torchrun keeping train-job's exit code 3
        parsed = get_args_parser().parse_args(command[len(TORCHRUN) :])
        launch, entrypoint, args = config_from_args(parsed)
        assert (launch.min_nodes, launch.max_nodes, launch.nproc_per_node) == (nodes, nodes, nproc)
        assert (launch.max_restarts, entrypoint, args) == (0, "train-job", [])
        assert parsed.no_python is True and parsed.standalone is (nodes == 1)
        if nodes > 1:
            assert launch.rdzv_backend == "c10d"
            assert launch.rdzv_endpoint == "piano-train-0.piano-train.music.svc.cluster.local:29400"
            assert launch.run_id == "uid-1"


def test_the_headless_service_is_owned_by_the_job(config):
    job = _job(config, gpu=1, nodes=2)
    job["metadata"]["uid"] = "job-uid"
    service = build_workers_service(OWNER, job)
    assert service["metadata"]["name"] == job["spec"]["template"]["spec"]["subdomain"] == "piano-train"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "piano-train"}
    (owner,) = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", "piano-train", "job-uid")
    assert service["metadata"]["labels"]["musicgen.io/trainingjob"] == "piano"


@pytest.mark.parametrize("resources", [{"nodes": 0}, {"nodes": 65}, {"gpu": 17}])
def test_the_spec_refuses_what_cannot_be_asked(resources):
    with pytest.raises(ValidationError):
        TrainingJobSpec.model_validate({"datasetUri": "s3://d/x", "resources": resources})


def test_world_size():
    assert TrainingResources(gpu=4, nodes=2).world_size == 8
    assert TrainingResources(gpu=0, nodes=3).world_size == 3
    assert TrainingResources().world_size == 1


def test_names_that_cannot_name_the_workers_are_refused():
    assert name_problem("7piano-train", TrainingResources(nodes=2)) is not None
    assert "start with a letter" in name_problem("7piano-train", TrainingResources(nodes=2))
    long_name = "a" * 62
    assert "shorten the name by 1" in name_problem(long_name, TrainingResources(nodes=2))
    assert name_problem(long_name, TrainingResources(nodes=1)) is None
    assert name_problem("piano-train", TrainingResources(nodes=10)) is None


def test_the_digest_of_a_run_created_before_nodes_existed_is_unchanged():
    """A run made by an operator without spec.resources.nodes is not taken for an edited one."""
    spec = TrainingJobSpec.model_validate({"datasetUri": "s3://d/x", "resources": {"gpu": 2}})
    assert spec_digest(spec) == "7ced8f6bf676baf8"  # what the operator before this change stored
    two = TrainingJobSpec.model_validate({"datasetUri": "s3://d/x", "resources": {"gpu": 2, "nodes": 2}})
    assert spec_digest(two) != spec_digest(spec)


def test_an_unknown_multi_node_launcher_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("MUSICGEN_OPERATOR_MULTI_NODE_LAUNCHER", "jobset")
    with pytest.raises(ConfigurationError, match="MUSICGEN_OPERATOR_MULTI_NODE_LAUNCHER"):
        load_config()


def test_status_reads_the_workers_back():
    job = {"spec": {"completionMode": "Indexed", "completions": 3}, "status": {"active": 2}}
    assert worker_fields(job) == {"workers": "2/3"}
    assert "2/3 workers; the others wait for a node" in waiting_note(job)
    job["status"] = {"active": 3}
    assert waiting_note(job) == " (3/3 workers)"
    assert worker_fields({"spec": {}, "status": {"active": 1}}) == {} and waiting_note({"spec": {}}) == ""
    failed = {
        "spec": {"completionMode": "Indexed", "completions": 2},
        "status": {
            "failedIndexes": "1",
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "FailedIndexes", "message": "boom"}
            ],
        },
    }
    assert worker_fields(failed) == {"workers": "0/2", "failedIndexes": "1"}
    assert failure_reason(failed, []) == ("FailedIndexes", "boom (worker indexes 1)")
