"""The serving fixtures (tiny warm engine, short windows) shared with the reliability tests."""

from tests.serving.conftest import engine_factory, settings, tiny_engine

__all__ = ["engine_factory", "settings", "tiny_engine"]
