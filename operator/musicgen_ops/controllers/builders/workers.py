"""Data-parallel training Jobs: the torchrun launch, the Indexed Job and its headless Service (pure).

World size 1 keeps the plain Job. One node with G GPUs runs ``torchrun --standalone`` in that pod. M > 1
nodes run an Indexed Job (completions = parallelism = M; the pod of index i has the hostname
``<job>-<i>``) whose pods share a headless Service as ``subdomain``, so ``<job>-0.<service>`` resolves to
index 0, which hosts the c10d rendezvous (the pattern of the Kubernetes docs and Kubeflow's torch runtime).
"""

from __future__ import annotations

from musicgen_ops.api.trainingjob import TrainingResources
from musicgen_ops.controllers.builders.labels import Owner, child_labels

#: Port of the c10d rendezvous store that torchrun on index 0 hosts.
RENDEZVOUS_PORT = 29400
#: The console script each torchrun worker runs (``--no-python``: it is not a Python file).
TRAIN_ENTRYPOINT = "train-job"
#: torchrun through ``python -m musicgen_ops``, which keeps train-job's exit code 3 (bad input: the Job's
#: podFailurePolicy fails at once) where plain torchrun exits 1 for any failed worker.
TORCHRUN = ("python", "-m", "musicgen_ops", "torchrun")
#: Label the Job controller puts on every pod of a Job (and that selects the headless Service's pods).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def is_distributed(resources: TrainingResources) -> bool:
    """Whether the run needs torchrun (more than one training process)."""
    return resources.world_size > 1


def is_multi_node(resources: TrainingResources) -> bool:
    """Whether the run needs an Indexed Job and a headless Service."""
    return resources.nodes > 1


def workers_service_name(job_name: str) -> str:
    """The headless Service of a multi-node Job: the Job's own name (as JobSet names its Services)."""
    return job_name


def rendezvous_host(job_name: str, namespace: str, cluster_domain: str) -> str:
    """Index 0's full DNS name; its pod's /etc/hosts holds it, so it knows to host the rendezvous."""
    return f"{job_name}-0.{workers_service_name(job_name)}.{namespace}.svc.{cluster_domain}"


def torchrun_command(
    resources: TrainingResources, *, job_name: str, namespace: str, run_id: str, cluster_domain: str
) -> list[str]:
    """The container command: ``train-job`` alone, or under torchrun with one process per GPU."""
    if not is_distributed(resources):
        return [TRAIN_ENTRYPOINT]
    launch = [*TORCHRUN, f"--nproc-per-node={resources.processes_per_node}", "--max-restarts=0"]
    if is_multi_node(resources):
        endpoint = f"{rendezvous_host(job_name, namespace, cluster_domain)}:{RENDEZVOUS_PORT}"
        launch += [
            f"--nnodes={resources.nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={run_id}",
        ]
    else:
        launch.append("--standalone")
    return [*launch, "--no-python", TRAIN_ENTRYPOINT]


def make_indexed(job: dict, resources: TrainingResources, backoff_limit: int) -> dict:
    """Turn a training Job into the Indexed Job of ``resources.nodes`` workers (a new dict).

    Each index may fail ``backoff_limit`` times (``backoffLimitPerIndex``); when one index has used them
    up the whole Job fails (``maxFailedIndexes`` 0) and its other pods are stopped. A retried index
    rejoins the rendezvous: torchrun on the others sees a node waiting and restarts its workers (a
    membership change, not counted in ``--max-restarts``), and every worker resumes from the last
    checkpoint in the run folder. The pod failure policy's FailJob rules (bad input, OOM) still apply.
    """
    spec = dict(job["spec"])
    template = dict(spec["template"])
    pod = dict(template["spec"])
    pod["subdomain"] = workers_service_name(job["metadata"]["name"])
    container = dict(pod["containers"][0])
    container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT, "protocol": "TCP"}]
    pod["containers"] = [container, *pod["containers"][1:]]
    template["spec"] = pod
    spec |= {
        "template": template,
        "completionMode": "Indexed",
        "completions": resources.nodes,
        "parallelism": resources.nodes,
        "backoffLimitPerIndex": backoff_limit,
        "maxFailedIndexes": 0,
        # Every retry of an index counts here too: at most backoff_limit rounds of all workers failing.
        "backoffLimit": backoff_limit * resources.nodes,
    }
    return {**job, "spec": spec}


def build_workers_service(owner: Owner, job: dict) -> dict:
    """The headless Service giving each worker pod of ``job`` a DNS name; owned by the Job (it goes with it).

    ``publishNotReadyAddresses``: the workers have no readiness probe and must find index 0 at once.
    """
    meta = job["metadata"]
    job_name = meta["name"]
    reference = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job_name,
        "uid": meta["uid"],
        "controller": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": workers_service_name(job_name),
            "namespace": owner.namespace,
            "labels": child_labels(owner.kind, owner.name, "trainer", owner.labels),
            "ownerReferences": [reference],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {JOB_NAME_LABEL: job_name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def name_problem(job_name: str, resources: TrainingResources) -> str | None:
    """A Job name that cannot name the workers' Service (DNS-1035) or their hostnames (63 characters)."""
    if not is_multi_node(resources):
        return None
    longest = f"{job_name}-{resources.nodes - 1}"
    if not job_name[:1].isalpha():
        return (
            f"metadata.name: a TrainingJob on {resources.nodes} nodes names a Service after its Job "
            f"{job_name!r}, which must start with a letter"
        )
    if len(longest) > 63:
        return (
            f"metadata.name: too long for {resources.nodes} nodes: worker hostname {longest!r} exceeds 63 "
            f"characters (shorten the name by {len(longest) - 63})"
        )
    return None
