"""Time limits of storage calls: connect and read timeouts plus an overall deadline per request.

Every backend reads them from the environment (defaults in brackets):

* ``MUSICGEN_STORAGE_CONNECT_TIMEOUT`` [10 s]: opening a connection;
* ``MUSICGEN_STORAGE_READ_TIMEOUT`` [30 s]: waiting for any byte of an answer;
* ``MUSICGEN_STORAGE_DEADLINE_SECONDS`` [60 s]: one request, retries and backoff included, until its
  answer starts. A transfer that keeps moving bytes is not cut off; a stalled one fails after the read
  timeout. So an endpoint that accepts connections and never answers fails in about a minute,
  naming the endpoint, instead of retrying for many minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from musicgen_ops.contracts.names import STORAGE_ENV_PREFIX
from musicgen_ops.storage.base import env_number

__all__ = [
    "CONNECT_TIMEOUT_ENV",
    "DEADLINE_ENV",
    "READ_TIMEOUT_ENV",
    "DeadlineExceededError",
    "Timeouts",
    "deadline_pool_manager",
]

CONNECT_TIMEOUT_ENV = f"{STORAGE_ENV_PREFIX}CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = f"{STORAGE_ENV_PREFIX}READ_TIMEOUT"
DEADLINE_ENV = f"{STORAGE_ENV_PREFIX}DEADLINE_SECONDS"


class DeadlineExceededError(TimeoutError):
    """A request (with its retries) ran past ``MUSICGEN_STORAGE_DEADLINE_SECONDS``."""


@dataclass(frozen=True)
class Timeouts:
    """Connect timeout, read timeout and overall deadline of one storage request, in seconds."""

    connect: float = 10.0
    read: float = 30.0
    deadline: float = 60.0

    @classmethod
    def from_env(cls) -> Timeouts:
        """The limits from ``MUSICGEN_STORAGE_*`` (a junk value is a clear error naming the variable)."""
        return cls(
            connect=max(0.1, env_number(CONNECT_TIMEOUT_ENV, cls.connect)),
            read=max(0.1, env_number(READ_TIMEOUT_ENV, cls.read)),
            deadline=max(0.1, env_number(DEADLINE_ENV, cls.deadline)),
        )

    def describe(self) -> str:
        """The limits as a hint for error messages."""
        return (
            f"deadline {self.deadline:g} s ({DEADLINE_ENV}), connect timeout {self.connect:g} s "
            f"({CONNECT_TIMEOUT_ENV}), read timeout {self.read:g} s ({READ_TIMEOUT_ENV})"
        )


def deadline_pool_manager(timeouts: Timeouts, retry_options: dict[str, Any], **pool_options: Any) -> Any:
    """A ``urllib3.PoolManager`` whose every request retries (``retry_options``) only until its deadline."""
    import urllib3
    from urllib3.exceptions import MaxRetryError

    class DeadlineRetry(urllib3.Retry):
        """urllib3's Retry that also gives up when the next attempt would start past ``deadline_at``."""

        def __init__(self, *args: Any, deadline_at: float | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.deadline_at = deadline_at

        def new(self, **kw: Any) -> DeadlineRetry:
            deadline_at = kw.pop("deadline_at", self.deadline_at)
            retry = super().new(**kw)
            retry.deadline_at = deadline_at
            return retry

        def increment(self, method: Any = None, url: Any = None, *args: Any, **kwargs: Any) -> DeadlineRetry:
            retry = super().increment(method, url, *args, **kwargs)
            if (
                self.deadline_at is not None
                and time.monotonic() + retry.get_backoff_time() >= self.deadline_at
            ):
                reason = DeadlineExceededError(f"no answer within {timeouts.deadline:g} s")
                raise MaxRetryError(kwargs.get("_pool"), url or "", reason)
            return retry

    template = DeadlineRetry(**retry_options)

    class DeadlinePoolManager(urllib3.PoolManager):
        """Gives each request a fresh retry budget that ends at its own deadline."""

        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
            if kw.get("retries") is None:
                kw["retries"] = template.new(deadline_at=time.monotonic() + timeouts.deadline)
            return super().urlopen(method, url, redirect, **kw)

    return DeadlinePoolManager(
        timeout=urllib3.Timeout(connect=timeouts.connect, read=min(timeouts.read, timeouts.deadline)),
        retries=template,
        **pool_options,
    )
