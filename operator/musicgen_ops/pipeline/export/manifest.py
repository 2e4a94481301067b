"""Export folders: staged writes (a failed export leaves nothing half-written) and the manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musicgen_ops.pipeline.errors import ExportError

MANIFEST_NAME = "export_manifest.json"
MANIFEST_FORMAT = "musicgen-ops-export"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def staged_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``, on error it is removed.

    An existing ``target`` is replaced only when it is empty or an earlier export (it holds
    ``export_manifest.json`` or ``descriptor.json``), never an unrelated folder.
    """
    target = Path(target).expanduser()
    if target.exists():
        if not target.is_dir():
            raise ExportError(f"output {target} exists and is not a folder")
        known = (target / MANIFEST_NAME).is_file() or (target / "descriptor.json").is_file()
        if any(target.iterdir()) and not known:
            raise ExportError(
                f"output folder {target} is not empty and holds no earlier export; "
                "choose an empty or new folder"
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as err:
        raise ExportError(f"cannot write beside {target}: {err}") from err
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def file_entries(root: Path) -> list[dict[str, Any]]:
    """``{path, size, sha256}`` for every file under ``root`` (relative POSIX paths, sorted)."""
    return [
        {"path": path.relative_to(root).as_posix(), "size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    ]


def write_manifest(root: Path, formats: list[str], source: dict[str, Any]) -> dict[str, Any]:
    """Write ``root/export_manifest.json`` listing every file with its size and sha256; return it."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    from musicgen_ops import __version__

    files = file_entries(root)
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "formats": formats,
        "source": source,
        "files": files,
        "total_size": sum(f["size"] for f in files),
        "versions": {
            "musicgen_ops": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify_manifest(root: str | Path) -> list[str]:
    """Paths whose size or sha256 differ from ``export_manifest.json`` (empty when all match)."""
    root = Path(root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    bad = []
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file() or path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            bad.append(entry["path"])
    return bad


def verify_export(path: str | Path) -> None:
    """Check an export against the ``export_manifest.json`` of its folder (or the folder above).

    Nothing is checked when no manifest is found (an export made elsewhere).

    Raises:
        ExportError: a file is missing or its size or sha256 differs (truncated or modified).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    for root in (folder, folder.parent):
        if (root / MANIFEST_NAME).is_file():
            try:
                bad = verify_manifest(root)
            except (ValueError, KeyError, TypeError) as err:
                raise ExportError(f"{root / MANIFEST_NAME} is unreadable ({err}): export again") from err
            if bad:
                shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                raise ExportError(
                    f"{root}: {shown} missing or not matching the size/sha256 in {MANIFEST_NAME} "
                    "(truncated or modified): export the model again"
                )
            return
