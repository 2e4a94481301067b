"""The serving fixtures (tiny warm engine, trained model, short windows) shared with the reliability tests."""

from tests.serving.conftest import engine_factory, settings, tiny_engine, trained_model_dir

__all__ = ["engine_factory", "settings", "tiny_engine", "trained_model_dir"]
