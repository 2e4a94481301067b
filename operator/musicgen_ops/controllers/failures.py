"""Why a Job failed: its conditions, its pods' termination messages and OOMKilled (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Labels the Job controller puts on its pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The Job's condition of that type when its status is True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def job_outcome(job: Mapping[str, Any]) -> str | None:
    """'Succeeded', 'Failed' or None while the Job is not finished."""
    if job_condition(job, "Complete") or job_condition(job, "SuccessCriteriaMet"):
        return "Succeeded"
    if job_condition(job, "Failed") or job_condition(job, "FailureTarget"):
        return "Failed"
    return None


def is_suspended(job: Mapping[str, Any]) -> bool:
    """Whether the Job is suspended (spec or condition)."""
    return bool((job.get("spec") or {}).get("suspend")) or job_condition(job, "Suspended") is not None


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
    return state or None


def failure_reason(job: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> tuple[str, str]:
    """(reason, message) of a failed Job; OOMKilled and the container's termination message win."""
    condition = job_condition(job, "Failed") or job_condition(job, "FailureTarget") or {}
    reason = condition.get("reason") or "JobFailed"
    message = condition.get("message") or "the Job failed"
    failed_indexes = (job.get("status") or {}).get("failedIndexes")
    if failed_indexes:  # an Indexed Job of several workers: which of them failed for good
        message = f"{message} (worker indexes {failed_indexes})"
    pods = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    oom = [a for a in failed_attempts(pods) if a["reason"] == "OOMKilled"]
    if oom:  # any attempt that ran out of memory: the hint that helps, whatever failed last
        return "OOMKilled", (
            f"pod {oom[-1]['pod']} was killed for running out of memory (OOMKilled); "
            "raise spec.resources.memory or lower spec.training.batchSize"
        )
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = _terminated(status)
            if not terminated or terminated.get("exitCode", 0) == 0:
                continue
            container = status.get("name", "?")
            text = (terminated.get("message") or "").strip()
            if text:
                tail = text.splitlines()[-1][:500]
                return reason, f"{message}; container {container} exited {terminated.get('exitCode')}: {tail}"
            return reason, f"{message}; container {container} exited with code {terminated.get('exitCode')}"
    return reason, message


def failed_attempts(pods: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per failed pod of a Job, oldest first: pod, reason, exit code, last message line."""
    attempts = []
    pods = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = _terminated(status)
            if not terminated or terminated.get("exitCode", 0) == 0:
                continue
            text = (terminated.get("message") or "").strip()
            attempt = {
                "pod": (pod.get("metadata") or {}).get("name", "?"),
                "reason": terminated.get("reason") or "Error",
                "exitCode": terminated.get("exitCode"),
            }
            if text:
                attempt["message"] = text.splitlines()[-1][:300]
            attempts.append(attempt)
            break
    return attempts
