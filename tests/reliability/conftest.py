"""The serving fixtures (short windows, the shared engine factory) reused by the reliability tests;
``tiny_engine`` comes from tests/conftest.py."""

from tests.serving.conftest import engine_factory, settings

__all__ = ["engine_factory", "settings"]
