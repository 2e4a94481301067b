"""Base models fetched once: mirror a save_pretrained folder into the store, resolve it through a cache.

Runs on every backend (local folder, S3 on moto, Azure on Azurite) with the tiny random MusicGen.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musicgen_ops.pipeline.models import load_base_model, set_base_model_resolver
from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.storage import IntegrityError, InvalidURIError, NotFoundError, StorageError, open_store
from musicgen_ops.storage.base_models import (
    CACHE_ENV,
    MIRROR_ENV,
    mirror_base_model,
    mirror_name,
    resolve_base_model,
    split_model_uri,
)

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained copy of the tiny random MusicGen (what an air-gapped site copies in)."""
    folder = tmp_path_factory.mktemp("tiny") / "musicgen-tiny"
    loaded = build_random_musicgen("tiny-random", seed=7)
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    return folder


@pytest.fixture
def resolver_installed():
    """Install storage's resolver in the pipeline for one test, as the jobs and the server do."""
    set_base_model_resolver(resolve_base_model)
    yield
    set_base_model_resolver(None)


def test_mirror_then_load_from_the_store_then_cache_hit(
    tiny_folder: Path, store_root: str, tmp_path: Path, resolver_installed: None
) -> None:
    mirrored = mirror_base_model(str(tiny_folder), f"{store_root}/base-models")
    assert mirrored.uri == f"{store_root}/base-models/models/musicgen-tiny"
    assert mirrored.manifest.formats == ["base"]
    assert mirrored.manifest.metadata["source"] == str(tiny_folder.resolve())
    assert {WEIGHTS, "config.json", "processor_config.json", "tokenizer.json"} <= {
        f.path for f in mirrored.manifest.files
    }

    cache = tmp_path / "node-cache"
    first = Path(resolve_base_model(mirrored.uri, cache_dir=cache))
    assert (
        first.is_relative_to(cache) and (first / WEIGHTS).read_bytes() == (tiny_folder / WEIGHTS).read_bytes()
    )

    # The pipeline loads the URI through the installed resolver and keeps the reference as the name.
    model = load_base_model(mirrored.uri, local_files_only=True)
    assert model.name == mirrored.uri
    original = build_random_musicgen("tiny-random", seed=7).model.state_dict()
    for key, value in model.model.state_dict().items():
        assert torch.equal(value, original[key]), key

    # Second use: a cache hit. Remove the weights from the store; resolving still works and transfers nothing.
    store = open_store(mirrored.uri)
    store.delete(WEIGHTS)
    assert Path(resolve_base_model(mirrored.uri, cache_dir=cache)) == first


def test_hub_id_resolves_through_the_configured_mirror(
    tiny_folder: Path, store_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = f"{store_root}/base-models"
    mirrored = mirror_base_model(str(tiny_folder), mirror, name="facebook/musicgen-small")
    assert mirrored.uri.endswith("/models/facebook--musicgen-small")
    monkeypatch.setenv(MIRROR_ENV, mirror)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    resolved = Path(resolve_base_model("facebook/musicgen-small"))
    assert resolved.parent.parent == tmp_path / "cache" and (resolved / WEIGHTS).is_file()
    # Not mirrored: the hub id comes back for Hugging Face to download (HF_TOKEN for gated models).
    assert resolve_base_model("facebook/musicgen-medium") == "facebook/musicgen-medium"


def test_tampered_mirror_is_refused(tiny_folder: Path, tmp_path: Path) -> None:
    mirrored = mirror_base_model(str(tiny_folder), tmp_path / "mirror")
    (tmp_path / "mirror" / "models" / "musicgen-tiny" / "config.json").write_text("{}")
    with pytest.raises(IntegrityError, match="config.json"):
        resolve_base_model(mirrored.uri, cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache" / "musicgen-tiny").glob("*/config.json"))


def test_references_that_need_no_store_pass_through(tiny_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert resolve_base_model("tiny-random", mirror_uri="", cache_dir=cache) == "tiny-random"
    assert resolve_base_model(str(tiny_folder), mirror_uri="", cache_dir=cache) == str(tiny_folder)
    assert resolve_base_model("facebook/musicgen-small", mirror_uri="", cache_dir=cache) == (
        "facebook/musicgen-small"
    )
    assert not cache.exists()


def test_bad_references_fail_with_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(InvalidURIError, match="expected <mirror>/models/<name>"):
        resolve_base_model("s3://bucket/base-models/musicgen-small", cache_dir=tmp_path)
    with pytest.raises(NotFoundError, match="not found"):
        resolve_base_model((tmp_path / "empty" / "models" / "x").as_uri(), cache_dir=tmp_path / "c")
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    with pytest.raises(StorageError, match="no config.json"):
        mirror_base_model(str(not_a_model), tmp_path / "mirror")
    with pytest.raises(InvalidURIError, match="neither an existing folder nor a hub id"):
        mirror_base_model("./does/not/exist/", tmp_path / "mirror")


def test_split_model_uri_and_names() -> None:
    assert split_model_uri("s3://b/base-models/models/x") == ("s3://b/base-models", "x")
    assert split_model_uri("az://c/models/x/") == ("az://c", "x")
    assert split_model_uri("file:///srv/mirror/models/x") == ("file:///srv/mirror", "x")
    assert mirror_name("facebook/musicgen-small") == "facebook--musicgen-small"
    with pytest.raises(InvalidURIError):
        mirror_name("../etc")


def test_mirror_refuses_to_overwrite_unless_asked(tiny_folder: Path, tmp_path: Path) -> None:
    mirror_base_model(str(tiny_folder), tmp_path / "mirror")
    with pytest.raises(StorageError, match="already exists"):
        mirror_base_model(str(tiny_folder), tmp_path / "mirror")
    again = mirror_base_model(str(tiny_folder), tmp_path / "mirror", overwrite=True)
    assert again.manifest.files


def test_cli_mirror_prints_the_uri_and_pull_reuses_the_cache(tiny_folder: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from musicgen_ops import __version__
    from musicgen_ops.cli import app

    runner = CliRunner()
    mirror = (tmp_path / "mirror").as_uri()
    result = runner.invoke(app, ["models", "mirror", str(tiny_folder), "--to", mirror, "--name", "org/tiny"])
    assert result.exit_code == 0, result.output
    uri = result.stdout.strip().splitlines()[-1]
    assert uri == f"{mirror}/models/org--tiny"
    pulled = runner.invoke(
        app, ["models", "pull", "org/tiny", "--mirror", mirror, "--cache-dir", str(tmp_path / "c")]
    )
    assert pulled.exit_code == 0, pulled.output
    assert (Path(pulled.stdout.strip().splitlines()[-1]) / WEIGHTS).is_file()
    again = runner.invoke(app, ["models", "mirror", str(tiny_folder), "--to", mirror, "--name", "org/tiny"])
    assert again.exit_code == 1 and "error:" in again.output and "already exists" in again.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"musicgen-ops {__version__}"


def test_hub_download_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(
        StorageError, match="cannot download 'org/not-cached' from the Hugging Face hub"
    ) as err:
        mirror_base_model("org/not-cached", tmp_path / "mirror")
    assert "mirror a local save_pretrained folder instead" in str(err.value)
    assert not (tmp_path / "mirror").exists()
