"""CLI commands: ``musicgen-ops storage ls|cp|rm|url`` over s3://, az://, file:// and local paths."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from musicgen_ops.cli.console import storage_errors

if TYPE_CHECKING:
    from rich.progress import Progress

    from musicgen_ops.storage import ArtifactStore

storage_app = typer.Typer(
    name="storage",
    help="List, copy and delete artifacts in S3/MinIO (s3://), Azure Blob (az://) or local folders.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``storage`` command group to the CLI."""
    app.add_typer(storage_app, name="storage")


def _byte_progress() -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from musicgen_ops.cli.console import console

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _locate(uri: str) -> tuple[ArtifactStore, str, str]:
    """(store at the bucket/filesystem root, key, kind) where kind is 'file', 'folder' or 'missing'."""
    from musicgen_ops.storage import open_object

    store, key = open_object(uri)
    if key and store.exists(key):
        return store, key, "file"
    folder = f"{key}/" if key else ""
    if next(iter(store.list(folder)), None) is not None:
        return store, key, "folder"
    return store, key, "missing"


def _copy_one(src: ArtifactStore, src_key: str, dst: ArtifactStore, dst_key: str, advance) -> None:  # type: ignore[no-untyped-def]
    """Copy one object; local ends are read/written in place, remote->remote goes through a temp file."""
    from musicgen_ops.storage import LocalStore

    if isinstance(src, LocalStore):
        dst.put_file(src.root.joinpath(*src_key.split("/")), dst_key, progress=advance)
    elif isinstance(dst, LocalStore):
        src.get_file(src_key, dst.root.joinpath(*dst_key.split("/")), progress=advance)
    else:
        with tempfile.TemporaryDirectory(prefix="musicgen-cp-") as tmp:
            local = Path(tmp) / "object"
            src.get_file(src_key, local, progress=lambda n: advance(n / 2))
            dst.put_file(local, dst_key, progress=lambda n: advance(n / 2))


@storage_app.command("ls")
def ls_command(
    uri: str = typer.Argument(..., help="s3://bucket/prefix, az://container/prefix or a local path"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="List every object below the prefix."),
) -> None:
    """List objects and folders below a URI (size and URI per line, on stdout)."""
    from musicgen_ops.storage import parse_uri

    with storage_errors():
        store, key, kind = _locate(uri)
        if kind == "file":
            typer.echo(f"{_human(store.size(key)):>10}  {store.uri(key)}")
            return
        if kind == "missing" and (key or parse_uri(uri).scheme == "file"):
            from musicgen_ops.cli.console import exit_with_error

            exit_with_error(f"nothing found at {uri}")
        count = total = 0
        for info in store.list(f"{key}/" if key else "", recursive=recursive):
            if info.is_dir:
                typer.echo(f"{'DIR':>10}  {store.uri(info.key.rstrip('/'))}/")
            else:
                typer.echo(f"{_human(info.size):>10}  {store.uri(info.key)}")
                count += 1
                total += info.size
        from musicgen_ops.cli.console import console

        console.print(f"{count} objects, {_human(total)}")


@storage_app.command("cp")
def cp_command(
    source: str = typer.Argument(..., help="File or folder: local path, file://, s3:// or az:// URI"),
    destination: str = typer.Argument(..., help="Target URI; a trailing '/' copies into that folder"),
) -> None:
    """Copy a file or a whole folder between local paths, S3/MinIO and Azure Blob (any direction)."""
    from musicgen_ops.cli.console import exit_with_error
    from musicgen_ops.storage import open_object
    from musicgen_ops.storage.base import join_key

    with storage_errors():
        src, src_key, kind = _locate(source)
        if kind == "missing":
            exit_with_error(f"nothing to copy: {source} does not exist")
        dst, dst_key = open_object(destination)
        into_folder = destination.endswith("/") or (
            dst.scheme == "file" and dst.root.joinpath(*dst_key.split("/")).is_dir()  # type: ignore[attr-defined]
        )
        if kind == "file":
            name = src_key.rsplit("/", 1)[-1]
            pairs = [(src_key, join_key(dst_key, name) if into_folder else dst_key)]
            total = src.size(src_key)
        else:  # a folder's contents go below the destination (like `aws s3 cp --recursive`)
            folder = f"{src_key}/" if src_key else ""
            listing = list(src.list(folder))
            pairs = [(info.key, join_key(dst_key, info.key[len(folder) :])) for info in listing]
            total = sum(info.size for info in listing)
        with _byte_progress() as progress:
            task = progress.add_task(f"{len(pairs)} file(s)", total=total)
            for key, target in pairs:
                progress.update(task, description=key.rsplit("/", 1)[-1][:40])
                _copy_one(src, key, dst, target, lambda n: progress.advance(task, n))
        from musicgen_ops.cli.console import console

        console.print(f"copied {len(pairs)} file(s), {_human(total)} to {dst.uri(dst_key)}")


@storage_app.command("rm")
def rm_command(
    uris: list[str] = typer.Argument(..., help="Objects (or folders with --recursive) to delete"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Delete everything below a folder."),
) -> None:
    """Delete objects, or whole folders with --recursive."""
    from musicgen_ops.cli.console import console, exit_with_error

    with storage_errors():
        for uri in uris:
            store, key, kind = _locate(uri)
            if kind == "missing":
                exit_with_error(f"nothing to delete: {uri} does not exist")
            if kind == "folder" and not recursive:
                exit_with_error(f"{uri} is a folder; pass --recursive to delete everything below it")
            if kind == "file":
                store.delete(key)
                console.print(f"deleted {store.uri(key)}")
            else:
                count = store.delete_prefix(key)
                console.print(f"deleted {count} object(s) below {store.uri(key)}")


@storage_app.command("url")
def url_command(
    uri: str = typer.Argument(..., help="Object URI"),
    expires: int = typer.Option(3600, "--expires", help="Lifetime of the URL in seconds."),
) -> None:
    """Print a URL that fetches the object without credentials (presigned S3 URL / Azure SAS URL)."""
    from datetime import timedelta

    from musicgen_ops.storage import open_object

    with storage_errors():
        store, key = open_object(uri)
        typer.echo(store.url(key, expires=timedelta(seconds=expires)))
