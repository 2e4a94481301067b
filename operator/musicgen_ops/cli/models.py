"""CLI commands: ``musicgen-ops models mirror|pull`` — base models fetched once into the artifact store."""

from __future__ import annotations

from pathlib import Path

import typer

from musicgen_ops.cli.console import storage_errors

models_app = typer.Typer(
    name="models",
    help="Mirror base models (hub or local save_pretrained folder) into the artifact store, once.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the CLI."""
    app.add_typer(models_app, name="models")


@models_app.command("mirror")
def mirror_command(
    source: str = typer.Argument(
        ..., help="A hub id (facebook/musicgen-small; needs the internet) or a local save_pretrained folder."
    ),
    to: str = typer.Option(
        ..., "--to", help="Root URI of the mirror, e.g. s3://musicgen/base-models (az://, a path)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Name in the mirror (default: hub id with '/' -> '--', or the folder name)."
    ),
    revision: str | None = typer.Option(None, "--revision", help="Hub branch, tag or commit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model mirrored under that name."),
) -> None:
    """Copy a base model into <to>/models/<name>/ with a sha256 manifest; prints its URI (a baseModel)."""
    from musicgen_ops.cli.console import console
    from musicgen_ops.storage.base_models import mirror_base_model

    with storage_errors():
        mirrored = mirror_base_model(source, to, name=name, revision=revision, overwrite=overwrite)
    manifest = mirrored.manifest
    console.print(
        f"mirrored {source}: {len(manifest.files)} files, {manifest.total_size / 2**20:.1f} MiB, "
        f"manifest sha256 {manifest.digest[:16]}"
    )
    typer.echo(mirrored.uri)


@models_app.command("pull")
def pull_command(
    reference: str = typer.Argument(
        ..., help="A mirrored model URI (<mirror>/models/<name>) or a hub id (with --mirror)."
    ),
    mirror: str | None = typer.Option(
        None, "--mirror", envvar="MUSICGEN_BASE_MODEL_MIRROR", help="Root URI of the mirror, for hub ids."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="MUSICGEN_BASE_MODEL_CACHE", help="Local cache folder of base models."
    ),
) -> None:
    """Download a mirrored base model into the local cache (once) and print its folder."""
    from musicgen_ops.storage.base_models import resolve_base_model

    with storage_errors():
        typer.echo(resolve_base_model(reference, mirror_uri=mirror or "", cache_dir=cache_dir))
