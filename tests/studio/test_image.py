"""The studio image: hadolint clean, non-root, runs `musicgen-ops studio` with the `studio` extra."""

from __future__ import annotations

import typer.main

from musicgen_ops.cli import app as cli_app
from tests.images import test_dockerfiles as checks
from tests.images import test_lock as lock_checks
from tests.images.test_dockerfiles import EXTRAS, SCRIPTS, dockerfile, exec_form, final_stage, one_instruction


def test_the_studio_dockerfile_lints_clean_and_runs_as_non_root():
    checks.test_hadolint_reports_nothing("studio")
    checks.test_runs_as_non_root_with_pinned_bases_and_no_credentials("studio")


def test_the_studio_image_installs_under_the_lock():
    lock_checks.test_image_installs_only_under_the_lock("studio")
    lock_checks.test_image_pins_agree_with_the_lock("studio")


def test_the_studio_image_runs_the_studio_command_with_its_extra():
    steps = final_stage(dockerfile("studio"))
    entrypoint = exec_form(one_instruction(steps, "ENTRYPOINT"))
    command = exec_form(one_instruction(steps, "CMD"))
    assert entrypoint == ["musicgen-ops"] and entrypoint[0] in SCRIPTS
    studio = typer.main.get_command(cli_app).commands[command[0]]
    assert studio.make_context(command[0], command[1:]).params["host"] == "0.0.0.0"
    assert "studio" in EXTRAS and "[studio]" in dockerfile("studio").read_text()
    assert "8765/api/v1/openapi.json" in one_instruction(steps, "HEALTHCHECK")
