"""One lock for every install: requirements/lock.txt agrees with pyproject.toml, the Makefile, the three
Dockerfiles and the torch this suite runs on."""

from __future__ import annotations

import re
import shlex

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.images.test_dockerfiles import IMAGES, PYPROJECT, REPO_ROOT, dockerfile, instructions

LOCK = REPO_ROOT / "requirements" / "lock.txt"
LOCK_INPUT = REPO_ROOT / "requirements" / "lock.in"
LOCK_ARG = "-c requirements/lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.MULTILINE)


def read_pins(text: str) -> dict[str, str]:
    """``name==version`` lines as {canonical name: version}."""
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


LOCKED = read_pins(LOCK.read_text())


def project_requirements() -> list[Requirement]:
    """Every third-party requirement of the package and its extras (self-references dropped)."""
    project = PYPROJECT["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += extra
    reqs = [Requirement(text) for text in texts]
    return [req for req in reqs if canonicalize_name(req.name) != canonicalize_name(project["name"])]


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_every_pyproject_requirement_is_locked_within_its_bounds(requirement: Requirement) -> None:
    name = canonicalize_name(requirement.name)
    assert name in LOCKED, f"error: requirements/lock.txt: {requirement.name} is not locked; run `make lock`"
    assert requirement.specifier.contains(LOCKED[name], prereleases=True), (
        f"error: requirements/lock.txt: {requirement.name}=={LOCKED[name]} is outside pyproject.toml's "
        f"{requirement}; run `make lock`"
    )


def test_lock_inputs_are_what_the_lock_pins() -> None:
    wanted = read_pins(LOCK_INPUT.read_text())
    assert "torch" in wanted
    for name, version in wanted.items():
        assert LOCKED.get(name) == version, f"error: requirements/lock.txt: {name} is not {version}"
    assert LOCKED["onnxruntime"] == LOCKED["onnxruntime-gpu"], "CPU and GPU ONNX Runtime must match"


def test_this_suite_runs_on_the_locked_torch() -> None:
    torch = pytest.importorskip("torch")
    installed = Version(torch.__version__)
    assert installed.public == LOCKED["torch"], (
        f"torch {torch.__version__} is installed but the lock pins {LOCKED['torch']}: run `make install`"
    )


def pip_installs(text: str) -> list[str]:
    """The ``pip install ...`` commands in a shell text (split at ``&&`` and ``;``)."""
    commands = re.split(r"&&|;|\n", text)
    return [c.strip() for c in commands if re.search(r"\bpip install\b", c)]


@pytest.mark.parametrize("image", IMAGES)
def test_image_installs_only_under_the_lock(image: str) -> None:
    steps = instructions(dockerfile(image))
    copies = [args for kw, args in steps if kw == "COPY"]
    assert any(args.split()[0] == "requirements/lock.txt" for args in copies), f"{image}: lock not copied"
    runs = " && ".join(args for kw, args in steps if kw == "RUN")
    installs = pip_installs(runs)
    assert installs, f"{image}: no pip install"
    for command in installs:
        assert LOCK_ARG in command, f"error: images/{image}/Dockerfile: `{command}` ignores the lock"


@pytest.mark.parametrize("image", IMAGES)
def test_image_pins_agree_with_the_lock(image: str) -> None:
    text = dockerfile(image).read_text()
    runs = " && ".join(args for kw, args in instructions(dockerfile(image)) if kw == "RUN")
    for command in pip_installs(runs):
        words = shlex.split(command)[2:]
        for word in words:
            if word.startswith(("-", "$")) or word == LOCK_ARG.split()[1]:
                continue
            name, _, version = word.partition("==")
            assert canonicalize_name(name) in LOCKED, f"images/{image}/Dockerfile installs unlocked {name}"
            if version:
                assert version == LOCKED[canonicalize_name(name)], (
                    f"error: images/{image}/Dockerfile pins {name}=={version}, the lock "
                    f"{LOCKED[canonicalize_name(name)]}"
                )
    # A base image that ships its own torch (pytorch/pytorch:<version>-cuda...) would bypass the lock.
    assert "pytorch/pytorch" not in text, f"images/{image}/Dockerfile: torch must come from the lock"
    python_images = re.findall(r"python:(\d+\.\d+)[.\w-]*", text)
    assert python_images and set(python_images) == {lock_python_version()}, (
        f"images/{image}/Dockerfile runs Python {python_images}, the lock is for {lock_python_version()}"
    )


def lock_python_version() -> str:
    """The Python version `make lock` resolves for."""
    found = re.search(r"--python-version (\d+\.\d+)", (REPO_ROOT / "Makefile").read_text())
    assert found, "Makefile: `make lock` names no --python-version"
    return found.group(1)


def test_make_install_uses_the_lock() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    installs = [c for c in pip_installs(makefile) if "--upgrade pip" not in c]
    assert len(installs) >= 2
    for command in installs:
        assert "-c $(LOCK)" in command, f"Makefile: `{command}` ignores the lock"
    assert "LOCK   := requirements/lock.txt" in makefile
    assert (REPO_ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
