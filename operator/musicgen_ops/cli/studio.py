"""CLI command: studio (the REST API and web app on this machine, one command)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from musicgen_ops.cli.console import exit_with_error


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
        None, "--token", envvar="MUSICGEN_STUDIO_TOKEN", help="Access token (default: a random one)."
    ),
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
    from musicgen_ops.studio.settings import StudioSettings

    values = {"root": root, "host": host, "port": port, "device": device, "default_base_model": base_model}
    if token:
        values["token"] = token
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
    typer.echo(f"musicgen-ops studio: open {url}", err=False)
    typer.echo(
        f"  data in {settings.root.resolve()}; API docs at http://{shown_host}:{bound_port}/api/v1/docs"
    )
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level=log_level))
    server.run(sockets=[listener])


def register(app: typer.Typer) -> None:
    """Add the studio command."""
    app.command("studio")(studio)
