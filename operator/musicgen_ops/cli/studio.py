"""CLI command: studio (the REST API and web app on this machine, one command)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from musicgen_ops.cli.console import exit_with_error
from musicgen_ops.cli.options import field_option
from musicgen_ops.contracts.names import STUDIO_TOKEN_ENV
from musicgen_ops.studio.settings import DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_UPLOAD_BYTES, StudioSettings


def studio(
    root: Path = typer.Option(
        Path("studio-data"), "--root", help="Folder holding datasets, models, runs and the studio's state."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (keep loopback unless you must)."),
    port: int = typer.Option(8765, "--port", help="Port (0: any free port)."),
    device: str = typer.Option("auto", "--device", help="Device for training and generation."),
    base_model: str = typer.Option(
        "facebook/musicgen-small", "--base-model", help="Base model the training form starts with."
    ),
    token: str | None = typer.Option(
        None, "--token", envvar=STUDIO_TOKEN_ENV, help="Access token (default: a random one)."
    ),
    backend: str = typer.Option(
        "local", "--backend", help="local (train-job subprocesses here) or kubernetes (custom resources)."
    ),
    artifacts_uri: str | None = typer.Option(
        None, "--artifacts-uri", help="Artifact root (s3://, az://, file://); default: file://<root>."
    ),
    kube_api_url: str | None = typer.Option(
        None, "--kube-api-url", help="Kubernetes API URL (in a pod: https://kubernetes.default.svc)."
    ),
    namespace: str | None = typer.Option(None, "--namespace", help="Namespace of the custom resources."),
    kube_ca_file: Path | None = typer.Option(
        None, "--kube-ca-file", help="CA bundle of the Kubernetes API (in a pod: the service account's)."
    ),
    direct_upload_min_mb: float = typer.Option(
        8.0,
        "--direct-upload-min-mb",
        help="Files from this size (MiB) go from the browser straight to S3/Azure (presigned URLs; 0: off).",
    ),
    serving_timeout: float = typer.Option(
        600.0, "--serving-timeout", help="Deadline (s) of a generation through a model's serving Deployment."
    ),
    max_upload_mb: float = typer.Option(
        DEFAULT_MAX_UPLOAD_BYTES / 1024**2,
        "--max-upload-mb",
        help="Largest audio file (MiB) an upload may hold.",
    ),
    max_input_mb: float = typer.Option(
        DEFAULT_MAX_INPUT_BYTES / 1024**2,
        "--max-input-mb",
        help="Largest clip to continue or melody (MiB) a generation may upload.",
    ),
    retention_days: float = field_option(StudioSettings, "retention_days"),
    mbd_weights: str = field_option(StudioSettings, "mbd_weights"),
    mbd_sampling_steps: int = field_option(StudioSettings, "mbd_sampling_steps", "--mbd-steps"),
    open_browser: bool = typer.Option(False, "--open/--no-open", help="Open the URL in a browser."),
    log_level: str = typer.Option("warning", "--uvicorn-log-level", help="uvicorn's log level."),
) -> None:
    """Start the studio: upload datasets, train, watch progress, generate and listen in the browser.

    Prints the URL to open (with the access token, as Jupyter does); every API call needs the token.
    """
    import uvicorn
    from pydantic import ValidationError

    from musicgen_ops.contracts.base import describe_validation_error
    from musicgen_ops.studio.app import create_app

    values: dict[str, object] = {
        "root": root,
        "host": host,
        "port": port,
        "device": device,
        "default_base_model": base_model,
        "backend": backend,
        "artifacts": artifacts_uri,
        "direct_upload_min_bytes": int(direct_upload_min_mb * 1024**2),
        "serving_timeout_seconds": serving_timeout,
        "max_upload_bytes": int(max_upload_mb * 1024**2),
        "max_input_bytes": int(max_input_mb * 1024**2),
        "retention_days": retention_days,
        "mbd_weights": mbd_weights,
        "mbd_sampling_steps": mbd_sampling_steps,
    }
    if token:
        values["token"] = token
    if backend == "kubernetes":
        values.update(in_cluster_defaults(kube_api_url, namespace))
        if kube_ca_file:
            values["kube_ca_file"] = kube_ca_file
    if log_level.lower() not in uvicorn.config.LOG_LEVELS:
        exit_with_error(
            f"--uvicorn-log-level {log_level!r}: choose one of {', '.join(uvicorn.config.LOG_LEVELS)}"
        )
    try:
        settings = StudioSettings(**values)
    except ValidationError as err:
        exit_with_error("; ".join(describe_validation_error(err)))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as err:
        exit_with_error(f"cannot listen on {host}:{port}: {err.strerror} (choose another --port)")
    bound_port = listener.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/?token={settings.token}"
    if settings.backend == "kubernetes":
        url = f"http://{shown_host}:{bound_port}/api/v1 (send your Kubernetes token as a Bearer token)"
    typer.echo(f"musicgen-ops studio: open {url}", err=False)
    typer.echo(
        f"  data in {settings.root.resolve()}; API docs at http://{shown_host}:{bound_port}/api/v1/docs"
    )
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level=log_level))
    server.run(sockets=[listener])


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_defaults(api_url: str | None, namespace: str | None) -> dict[str, object]:
    """API URL, namespace and CA for the Kubernetes backend: the options, else the pod's own."""
    ca_file = SERVICE_ACCOUNT / "ca.crt"
    namespace_file = SERVICE_ACCOUNT / "namespace"
    return {
        "kube_api_url": api_url or "https://kubernetes.default.svc",
        "kube_namespace": namespace
        or (namespace_file.read_text().strip() if namespace_file.is_file() else "default"),
        "kube_ca_file": ca_file if ca_file.is_file() and not api_url else None,
    }


def register(app: typer.Typer) -> None:
    """Add the studio command."""
    app.command("studio")(studio)
