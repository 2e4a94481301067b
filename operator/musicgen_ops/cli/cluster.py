"""CLI commands for the cluster side: regenerate the CRDs, run the operator."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def crds(
    output_dir: Path = typer.Option(Path("crds"), "--output-dir", help="Where the CRD YAML files go."),
    chart_dir: Path | None = typer.Option(None, "--chart-dir", help="Also write the Helm chart's copy here."),
    check: bool = typer.Option(False, "--check", help="Only check that the files are up to date."),
) -> None:
    """Generate the CustomResourceDefinitions from the pydantic models in musicgen_ops.api."""
    from rich.console import Console

    from musicgen_ops.api.crdgen import stale_crds, write_crds

    console = Console(stderr=True)
    dirs = [output_dir] + ([chart_dir] if chart_dir else [])
    if check:
        stale = stale_crds(*dirs)
        if stale:
            console.print(f"[red]out of date:[/] {', '.join(map(str, stale))} — run `make crds`")
            raise typer.Exit(1)
        console.print("CRDs are up to date")
        return
    for path in write_crds(*dirs):
        console.print(f"wrote {path}")


def operator(
    namespace: list[str] = typer.Option(
        [],
        "--namespace",
        "-n",
        help="Namespace to watch (repeatable); default MUSICGEN_OPERATOR_WATCH_NAMESPACES.",
    ),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Watch the whole cluster."),
    liveness: str | None = typer.Option(
        None, "--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz."
    ),
    standalone: bool = typer.Option(True, "--standalone/--peering", help="Run without kopf peering."),
) -> None:
    """Run the Kubernetes operator (kopf) until interrupted."""
    import kopf

    import musicgen_ops.controllers.main  # noqa: F401  (registers the handlers)
    from musicgen_ops.controllers.config import load_config

    config = load_config()
    namespaces = list(namespace) or config.namespaces
    clusterwide = all_namespaces or not namespaces
    logger.info("starting operator: %s", "all namespaces" if clusterwide else ",".join(namespaces))
    kopf.run(
        clusterwide=clusterwide,
        namespaces=[] if clusterwide else namespaces,
        standalone=standalone,
        liveness_endpoint=liveness,
    )


def register(app: typer.Typer) -> None:
    """Add `crds` and `operator`."""
    app.command("crds")(crds)
    app.command("operator")(operator)
