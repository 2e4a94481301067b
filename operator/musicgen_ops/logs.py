"""Logging set-up shared by the CLI, the Jobs' containers and the servers: plain or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra=`` fields."""

    _standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Route ``musicgen_ops`` logs (and warnings from libraries) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        # Library deprecation chatter (transformers, peft, Lightning) says nothing a user can act on.
        for module in ("transformers", "peft", "pytorch_lightning", "lightning_fabric", "torch"):
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=UserWarning, module=module)
    # transformers warns that MusicGen's pad token (2048) lies outside the codebook vocabulary: by design.
    logging.getLogger("transformers.configuration_utils").setLevel(logging.ERROR)
