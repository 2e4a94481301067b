"""Fixtures shared by every test package."""

from __future__ import annotations

import os

import pytest

# Never reach for the Hugging Face hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
