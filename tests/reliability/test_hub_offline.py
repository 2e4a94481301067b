"""A hub model that is not cached, with the hub unreachable, fails in seconds with the right hint."""

from __future__ import annotations

import socket
import time

import pytest

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.models import load_base_model


def test_unreachable_hub_fails_fast_with_the_hf_hint(monkeypatch):
    import huggingface_hub.constants
    import transformers  # noqa: F401  (import time is not what this test measures)

    with socket.socket() as sock:  # a local port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        load_base_model("nobody-here/no-such-musicgen")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "the hub is unreachable (127.0.0.1:" in message
    assert "`hf download nobody-here/no-such-musicgen`" in message and "huggingface-cli" not in message
    assert "--base-model" not in message


def test_a_missing_local_path_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(ModelNotAvailableError, match=r"model folder .*nothing-here does not exist"):
        load_base_model(str(tmp_path / "nothing-here"))
