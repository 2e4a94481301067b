"""`musicgen-ops storage ls|cp|rm|url` against a local folder and the S3 server."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicgen_ops.cli import app
from musicgen_ops.storage import open_store
from tests.storage.conftest import unique_name

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["storage", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def remote_root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A root the CLI copies to: a local folder or a fresh S3 bucket on moto."""
    monkeypatch.setenv("MUSICGEN_STORAGE_CREATE_BUCKET", "1")
    if request.param == "file":
        return (tmp_path / "remote").as_uri()
    request.getfixturevalue("s3_env")
    return f"s3://{unique_name('cli')}/root"


def test_cp_folder_up_ls_and_back(remote_root: str, model_dir: Path, tmp_path: Path) -> None:
    code, _, err = invoke("cp", str(model_dir), f"{remote_root}/models/m1")
    assert code == 0, err
    assert "copied 3 file(s)" in err

    code, out, _ = invoke("ls", f"{remote_root}/models/m1")
    assert code == 0
    assert out.splitlines()[0].split()[-1] == f"{remote_root}/models/m1/adapter/"
    assert out.splitlines()[-1].endswith(f"{remote_root}/models/m1/onnx/")
    code, out, err = invoke("ls", "-r", f"{remote_root}/models/m1")
    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()] == [
        f"{remote_root}/models/m1/adapter/adapter_config.json",
        f"{remote_root}/models/m1/adapter/adapter_model.safetensors",
        f"{remote_root}/models/m1/onnx/decoder.onnx",
    ]
    assert "3 objects" in err

    code, _, err = invoke("cp", f"{remote_root}/models/m1", str(tmp_path / "back"))
    assert code == 0, err
    for original in model_dir.rglob("*"):
        if original.is_file():
            assert (tmp_path / "back" / original.relative_to(model_dir)).read_bytes() == original.read_bytes()


def test_cp_single_files_and_rm(remote_root: str, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF" + bytes(1000))
    # Trailing '/' copies into that folder, keeping the name.
    assert invoke("cp", str(song), f"{remote_root}/audio/")[0] == 0
    assert invoke("cp", f"{remote_root}/audio/song.wav", f"{remote_root}/audio/copy.wav")[0] == 0
    (tmp_path / "dl").mkdir()
    assert invoke("cp", f"{remote_root}/audio/copy.wav", str(tmp_path / "dl"))[0] == 0
    assert (tmp_path / "dl" / "copy.wav").read_bytes() == song.read_bytes()

    code, out, _ = invoke("ls", f"{remote_root}/audio/song.wav")
    assert code == 0 and out.split() == ["1004", "B", f"{remote_root}/audio/song.wav"]

    code, _, err = invoke("rm", f"{remote_root}/audio")
    assert code == 1 and "pass --recursive" in err
    assert invoke("rm", f"{remote_root}/audio/song.wav")[0] == 0
    store = open_store(remote_root)
    assert [i.key for i in store.list()] == ["audio/copy.wav"]
    code, _, err = invoke("rm", "-r", f"{remote_root}/audio")
    assert code == 0 and "deleted 1 object(s)" in err
    assert list(store.list()) == []


def squash(text: str) -> str:
    """Rich wraps long lines; compare without whitespace."""
    return "".join(text.split())


def test_missing_source_is_a_clear_error(remote_root: str, tmp_path: Path) -> None:
    open_store(remote_root).put_bytes("other.txt", b"x")
    code, _, err = invoke("cp", f"{remote_root}/nothing/here.bin", str(tmp_path / "x"))
    assert code == 1
    assert squash(f"nothing to copy: {remote_root}/nothing/here.bin does not exist") in squash(err)
    code, _, err = invoke("rm", f"{remote_root}/nothing/here.bin")
    assert code == 1 and "nothing to delete" in err


def test_unknown_scheme_error(tmp_path: Path) -> None:
    code, _, err = invoke("ls", "gs://bucket/x")
    assert code == 1
    assert squash("unsupported storage URI scheme 'gs'") in squash(err)


@pytest.mark.s3
def test_url_prints_a_presigned_url(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICGEN_STORAGE_CREATE_BUCKET", "1")
    root = f"s3://{unique_name('cli')}"
    open_store(root).put_bytes("a.txt", b"shared")
    code, out, _ = invoke("url", f"{root}/a.txt", "--expires", "60")
    assert code == 0
    with urllib.request.urlopen(out.strip(), timeout=10) as response:  # noqa: S310 - test-local server
        assert response.read() == b"shared"
