"""A test kubelet: runs the containers of the emulator's Deployments and Jobs as local processes.

What it does as a kubelet would: the container's ``command`` (else the image's ENTRYPOINT, read from
``images/<name>/Dockerfile``) plus ``args``; ``env`` with ``value``, ``valueFrom`` (fieldRef to the pod's
namespace/name, secretKeyRef, configMapKeyRef) and ``envFrom`` (Secrets and ConfigMaps); a Job's status
(active, then succeeded or failed) as the Job controller would; an Indexed Job's pods run side by side,
each with its ``JOB_COMPLETION_INDEX``, and the status gets ``completedIndexes``/``failedIndexes``.
What it does differently: no images (the processes run this checkout's code from the test's Python
environment), the ServiceAccount token (from the TokenRequest API) is handed over in a kubeconfig
rather than a mounted file, and the pod's scratch volumes are folders under ``scratch`` passed through
the jobs' path variables; a pod's DNS name ``<job>-<i>.<service>.<ns>.svc...`` (a torchrun rendezvous
endpoint in the command) resolves, once the headless Service of that name exists, to 127.0.0.1 on a free
port: the pods share the test machine's network, so the rewriting stands in for cluster DNS.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.kube_emulator import write_kubeconfig

logger = logging.getLogger("kubelet")
REPO = Path(__file__).resolve().parents[2]
AGENT = "test-kubelet"


def image_entrypoint(image: str) -> list[str]:
    """ENTRYPOINT + CMD of one of this project's images (``.../operator:tag`` -> images/operator)."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    dockerfile = REPO / "images" / name / "Dockerfile"
    words: dict[str, list[str]] = {}
    for line in dockerfile.read_text().splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword in ("ENTRYPOINT", "CMD") and rest.startswith("["):
            words[keyword] = json.loads(rest)
    return words.get("ENTRYPOINT", [])


#: A torchrun rendezvous endpoint on a worker pod's DNS name: <job>-<index>.<service>.<namespace>.svc...
RENDEZVOUS = re.compile(
    r"^(--rdzv[-_]endpoint=)([a-z0-9-]+)-(\d+)\.([a-z0-9-]+)\.([a-z0-9-]+)\.svc[a-z0-9.]*:\d+$"
)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PodError(Exception):
    """A pod that cannot start (e.g. a Secret its env refers to is missing)."""


class Kubelet:
    """Runs pods of the emulator behind ``url`` as processes under ``scratch``."""

    def __init__(self, url: str, scratch: Path) -> None:
        self.api = httpx.Client(base_url=url, headers={"User-Agent": AGENT}, timeout=30)
        self.scratch = scratch
        self.processes: list[subprocess.Popen] = []
        self.errors: list[str] = []
        #: Pods of Jobs running now, by pod name (a test may stop one, as a node failure would).
        self.running_pods: dict[str, subprocess.Popen] = {}
        #: Extra variables of every process (a test may raise a log level to observe the pods).
        self.node_env: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _get(self, path: str) -> dict[str, Any]:
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def _data(self, kind: str, namespace: str, name: str) -> dict[str, str]:
        response = self.api.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        if response.status_code == 404:
            raise PodError(f'CreateContainerConfigError: {kind[:-1]} "{name}" not found in {namespace}')
        obj = response.json()
        data = (
            {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            if (kind == "secrets")
            else dict(obj.get("data") or {})
        )
        return {**data, **(obj.get("stringData") or {})}

    def environment(self, namespace: str, pod_name: str, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment, resolved as the kubelet does."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            for key, kind in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                if key in source:
                    prefix = source.get("prefix", "")
                    env.update(
                        {prefix + k: v for k, v in self._data(kind, namespace, source[key]["name"]).items()}
                    )
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item.get("valueFrom") or {}
            if "fieldRef" in ref:
                env[item["name"]] = {"metadata.namespace": namespace, "metadata.name": pod_name}.get(
                    ref["fieldRef"]["fieldPath"], ""
                )
            for key, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
                if key in ref:
                    env[item["name"]] = self._data(kind, namespace, ref[key]["name"])[ref[key]["key"]]
        return env

    def _process_env(self, env: dict[str, str], home: Path) -> dict[str, str]:
        home.mkdir(parents=True, exist_ok=True)
        return {
            **env,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO / "operator"),
            "HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            **self.node_env,
        }

    def start_deployment(self, namespace: str, name: str, log: Path) -> subprocess.Popen:
        """Start the first container of a Deployment's pod template (one replica)."""
        deployment = self._get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = (container.get("command") or image_entrypoint(container["image"])) + container.get(
            "args", []
        )
        env = self._process_env(self.environment(namespace, f"{name}-0", container), self.scratch / name)
        # The pod's ServiceAccount token (TokenRequest, as a kubelet projects it), in a kubeconfig: the
        # operator's requests are then authorised by the chart's RBAC.
        account = pod.get("serviceAccountName") or "default"
        response = self.api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        assert response.status_code == 201, response.text
        kubeconfig = write_kubeconfig(
            self.scratch / name / "kubeconfig",
            str(self.api.base_url).rstrip("/"),
            namespace,
            token=response.json()["status"]["token"],
        )
        env["KUBECONFIG"] = str(kubeconfig)
        logger.info("kubelet: starting %s/%s: %s", namespace, name, " ".join(command))
        process = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def _resolve_rendezvous(self, command: list[str], port: int) -> list[str]:
        """Cluster DNS for the rendezvous endpoint: 127.0.0.1 once the named headless Service exists."""
        resolved = []
        for word in command:
            match = RENDEZVOUS.match(word)
            if match:
                prefix, _, _, service, namespace = match.groups()
                path = f"/api/v1/namespaces/{namespace}/services/{service}"
                deadline = time.monotonic() + 30
                while (found := self.api.get(path)).status_code != 200:
                    if time.monotonic() > deadline:
                        raise PodError(f"{word}: no Service {namespace}/{service}, so no DNS name resolves")
                    time.sleep(0.2)
                assert found.json()["spec"].get("clusterIP") == "None", "the workers' Service is not headless"
                word = f"{prefix}127.0.0.1:{port}"
            resolved.append(word)
        return resolved

    def _pod_process(
        self, namespace: str, job: dict[str, Any], index: int | None, port: int, attempt: int = 0
    ) -> tuple[str, subprocess.Popen]:
        """Start the pod of one index (None: a plain Job's only pod); a retry gets a new pod name."""
        name = job["metadata"]["name"]
        pod_name = f"{name}-pod" if index is None else f"{name}-{index}"
        pod_name += f"-retry{attempt}" if attempt else ""
        (container,) = job["spec"]["template"]["spec"]["containers"]
        scratch = self.scratch / pod_name
        env = self._process_env(self.environment(namespace, pod_name, container), scratch)
        env |= {
            # main's contracts name it WORK_DIR (older jobs read WORKDIR and fall back to a temp folder)
            "MUSICGEN_JOB_WORK_DIR": str(scratch / "work"),
            "MUSICGEN_JOB_CACHE_DIR": str(scratch / "cache"),
            "MUSICGEN_JOB_TERMINATION_LOG": str(scratch / "termination-log"),
        }
        if index is not None:  # what the Job controller adds to every container of an Indexed Job
            env["JOB_COMPLETION_INDEX"] = str(index)
        command = (container.get("command") or image_entrypoint(container["image"])) + container.get(
            "args", []
        )
        command = self._resolve_rendezvous(command, port)
        logger.info("kubelet: running pod %s/%s: %s", namespace, pod_name, " ".join(command))
        log = (self.scratch / f"{pod_name}.log").open("w")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        self.running_pods[pod_name] = process
        return pod_name, process

    @staticmethod
    def _fails_job(job: dict[str, Any], exit_code: int) -> bool:
        """Whether the Job's podFailurePolicy has a FailJob rule for this exit code."""
        for rule in (job["spec"].get("podFailurePolicy") or {}).get("rules") or []:
            codes = rule.get("onExitCodes") or {}
            if rule["action"] == "FailJob" and codes.get("operator") == "In" and exit_code in codes["values"]:
                return True
        return False

    def run_job(self, namespace: str, job: dict[str, Any]) -> subprocess.CompletedProcess:
        """Run a Job's pods to completion and write the Job's status as the Job controller does: one pod,
        or one per index of an Indexed Job, side by side. A failed index is retried up to
        ``backoffLimitPerIndex`` times (unless a FailJob rule matches its exit code); once one index has
        failed for good the others are stopped and the Job fails. Returns the first index that failed for
        good (else the last pod)."""
        name = job["metadata"]["name"]
        base = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status"
        merge = {"Content-Type": "application/merge-patch+json"}
        indexed = job["spec"].get("completionMode") == "Indexed"
        indexes: list[int | None] = list(range(int(job["spec"]["completions"]))) if indexed else [None]
        retries = int(job["spec"].get("backoffLimitPerIndex") or 0) if indexed else 0
        self.api.patch(
            base,
            json={"status": {"active": len(indexes), "startTime": job["metadata"]["creationTimestamp"]}},
            headers=merge,
        )
        self.scratch.mkdir(parents=True, exist_ok=True)
        port = free_port()
        running = {index: self._pod_process(namespace, job, index, port) for index in indexes}
        attempts = dict.fromkeys(indexes, 0)
        done: dict[int | None, tuple[str, subprocess.Popen]] = {}
        failed_pods, failed_for_good = 0, False
        deadline = time.monotonic() + 600
        while running and not failed_for_good and time.monotonic() < deadline:
            for index, (pod_name, process) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[index]
                self.running_pods.pop(pod_name, None)
                if process.returncode == 0:
                    done[index] = (pod_name, process)
                    continue
                failed_pods += 1
                exit_code = 128 - process.returncode if process.returncode < 0 else process.returncode
                if attempts[index] < retries and not self._fails_job(job, exit_code):
                    attempts[index] += 1
                    logger.warning("kubelet: pod %s exited %d; retrying index %s", pod_name, exit_code, index)
                    self.api.patch(base, json={"status": {"failed": failed_pods}}, headers=merge)
                    running[index] = self._pod_process(namespace, job, index, port, attempts[index])
                else:
                    done[index] = (pod_name, process)
                    failed_for_good = True
            time.sleep(0.2)
        for index, (pod_name, process) in running.items():  # the Job failed (or timed out): stop the rest
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.running_pods.pop(pod_name, None)
            done[index] = (pod_name, process)
        results = []
        for index in indexes:
            pod_name, process = done[index]
            output = (self.scratch / f"{pod_name}.log").read_text()
            results.append(
                (index, subprocess.CompletedProcess(process.args, process.returncode, output, output))
            )
        failed = [(index, result) for index, result in results if result.returncode != 0]
        succeeded = len(results) - len(failed)
        status: dict[str, Any] = {"active": 0, "succeeded": succeeded, "failed": failed_pods}
        if indexed:
            status["completedIndexes"] = ",".join(str(i) for i, result in results if result.returncode == 0)
            status["failedIndexes"] = ",".join(str(i) for i, _ in failed) or None
        if failed:
            logger.warning("Job %s failed:\n%s", name, failed[0][1].stderr[-3000:])
            reason = "FailedIndexes" if indexed else "BackoffLimitExceeded"
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": failed[0][1].stderr[-300:],
            }
        else:
            condition = {"type": "Complete", "status": "True"}
        status["conditions"] = [condition]
        self.api.patch(base, json={"status": status}, headers=merge)
        return failed[0][1] if failed else results[-1][1]

    def run_jobs(self, namespace: str) -> None:
        """In the background, run each new, unsuspended Job of ``namespace`` once."""

        def loop() -> None:
            seen: set[str] = set()
            while not self._stop.is_set():
                for job in self._get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]:
                    if job["metadata"]["uid"] not in seen and not job["spec"].get("suspend"):
                        seen.add(job["metadata"]["uid"])
                        try:
                            self.run_job(namespace, job)
                        except PodError as err:  # the pod never starts, as on a node
                            logger.warning("kubelet: Job %s: %s", job["metadata"]["name"], err)
                            self.errors.append(f"{job['metadata']['name']}: {err}")
                self._stop.wait(0.3)

        thread = threading.Thread(target=loop, name="kubelet-jobs", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop the job loop and terminate every process started."""
        self._stop.set()
        for process in self.processes:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for thread in self._threads:
            thread.join(30)
        self.api.close()
