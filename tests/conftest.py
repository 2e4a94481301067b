"""Fixtures shared by every test package."""

from __future__ import annotations

import os

import pytest

# Never reach for the Hugging Face hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """On a small shared CPU, one intra-op thread makes the tiny model's steps many times faster."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random MusicGen (model + processor), built once per session. Do not train it in place."""
    from musicgen_ops.pipeline.models import build_random_musicgen

    return build_random_musicgen("tiny-random")


@pytest.fixture
def fresh_tiny_model():
    """A tiny random MusicGen of its own, for tests that change weights."""
    from musicgen_ops.pipeline.models import build_random_musicgen

    return build_random_musicgen("tiny-random")
