"""open_engine: base models, trained checkpoints (adapter merged), ONNX, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.inference.base import GenerationEngine
from musicgen_ops.pipeline.inference.loader import locate_format, onnx_available, open_engine
from musicgen_ops.serving.errors import ModelNotFoundError
from musicgen_ops.serving.resolver import loadable_folder, resolve_model


def test_checkpoint_merges_the_adapter(trained_model_dir, tiny_engine):
    engine = open_engine(trained_model_dir)
    assert isinstance(engine, GenerationEngine)
    assert not any("lora" in name for name, _ in engine.model.named_parameters())  # merged, not wrapped
    tuned = engine.generate(["rock"], num_frames=5, seeds=[1]).audio
    base = tiny_engine.generate(["rock"], num_frames=5, seeds=[1]).audio
    assert tuned.shape == base.shape == (1, 5 * 640)
    assert not np.allclose(tuned, base)


def test_checkpoint_without_metadata_is_refused(trained_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken)
    (broken / "training_metadata.json").unlink()
    with pytest.raises(ModelNotAvailableError, match="training_metadata.json"):
        open_engine(broken)
    (broken / "training_metadata.json").write_text(json.dumps({"epochs": 3}))
    with pytest.raises(ModelNotAvailableError, match="base_model"):
        open_engine(broken)


def test_unknown_engine_and_missing_model(tmp_path):
    with pytest.raises(ValueError, match="auto, torch, fast, onnx"):
        open_engine("tiny-random", engine="tensorrt")
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        open_engine(tmp_path)  # exists, but holds nothing


@pytest.mark.skipif(not onnx_available(), reason="musicgen_ops.pipeline.inference.onnx_engine not present")
def test_onnx_engine_missing_export_is_clear(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        open_engine(tmp_path / "nothing.onnx", engine="onnx")


def test_resolver_layouts(settings, trained_model_dir, tmp_path):
    assert resolve_model(None, settings) == "tiny-random"
    assert resolve_model("my-model", settings) == str(trained_model_dir)
    nested = tmp_path / "root" / "nested" / "final_model"
    shutil.copytree(trained_model_dir, nested)
    assert loadable_folder(nested.parent, settings) == nested.parent
    assert locate_format(nested.parent) == (nested, "torch")
    with pytest.raises(ModelNotFoundError, match="looked in the server's models folder") as missing:
        resolve_model("absent", settings)
    assert str(settings.models_root) not in str(missing.value)  # a shared server names no local path
    (settings.models_root / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="in the server's models folder but holds no") as empty:
        resolve_model("empty", settings)
    assert str(settings.models_root) not in str(empty.value)
    with pytest.raises(Exception, match="not a model id"):
        resolve_model(str(trained_model_dir), settings)  # paths only with allow_local_paths
    settings.allow_local_paths = True
    assert resolve_model(str(trained_model_dir), settings) == str(trained_model_dir)


def test_resolver_downloads_from_artifact_store(settings, trained_model_dir, tmp_path):
    storage = pytest.importorskip("musicgen_ops.storage")
    root = f"file://{tmp_path / 'store'}"
    storage.publish_model(
        trained_model_dir, root, "remote-model", base_model="tiny-random", formats=["adapter"]
    )
    settings.models_uri = root
    folder = resolve_model("remote-model", settings)
    assert folder.startswith(str(settings.cache_dir))
    assert (Path(folder) / "adapter_config.json").is_file()
    assert resolve_model("remote-model", settings) == folder  # second lookup: cache hit


def test_auto_engine_is_torch_on_cpu_and_fast_is_selectable():
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    assert isinstance(open_engine("tiny-random", engine="auto", device="cpu"), TorchEngine)
    fast = open_engine("tiny-random", engine="fast", device="cpu")
    assert isinstance(fast, FastGenerationEngine) and callable(fast.warmup)


async def test_model_listing_shows_ids_and_store_uris_never_local_paths(
    settings, trained_model_dir, tmp_path
):
    storage = pytest.importorskip("musicgen_ops.storage")
    from musicgen_ops.serving.resolver import resolve_model_origin
    from musicgen_ops.serving.service import GenerationService

    root = f"file://{tmp_path / 'store'}"
    storage.publish_model(
        trained_model_dir, root, "remote-model", base_model="tiny-random", formats=["adapter"]
    )
    settings.models_uri = root
    folder, origin = resolve_model_origin("remote-model", settings)
    assert folder.startswith(str(settings.cache_dir)) and origin == f"{root}/models/remote-model"
    assert resolve_model_origin("my-model", settings) == (str(trained_model_dir), None)
    service = GenerationService(settings)
    await service.start()
    try:
        await service.generate_track(
            {"prompt": "x", "duration_seconds": 0.05, "trained_model_id": "remote-model"}
        )
        listing = service.list_models()
    finally:
        await service.close()
    models = {m.model_id: m for m in listing.models}
    assert models["remote-model"].loaded and models["remote-model"].source == origin
    assert models["my-model"].source is None and not models["my-model"].loaded  # on the models volume
    text = listing.model_dump_json()
    assert str(settings.cache_dir) not in text and str(trained_model_dir) not in text
