"""`musicgen-ops studio`: bad options end in one error line (the browser test starts it for real)."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from musicgen_ops.cli import app


def test_invalid_settings_and_a_busy_port_are_one_error_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["studio", "--root", str(tmp_path), "--port", "70000"])
    assert result.exit_code == 1 and "error:" in result.output and "port" in result.output
    result = runner.invoke(app, ["studio", "--root", str(tmp_path), "--direct-upload-min-mb", "-1"])
    assert result.exit_code == 1 and "direct_upload_min_bytes" in result.output

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["studio", "--root", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_bad_log_level_and_mbd_steps_are_one_error_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["studio", "--root", str(tmp_path), "--uvicorn-log-level", "loud"])
    assert (
        result.exit_code == 1 and "--uvicorn-log-level 'loud'" in result.output and "warning" in result.output
    )
    result = runner.invoke(app, ["studio", "--root", str(tmp_path), "--mbd-steps", "0"])
    assert result.exit_code == 1 and "mbd_sampling_steps" in result.output
    assert "Traceback" not in result.output
