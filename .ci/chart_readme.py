"""Generate charts/musicgen/README.md from README.md.gotmpl and the ``# --`` comments of values.yaml.

Like helm-docs: a comment starting with ``# --`` documents the key below it (continuation lines are plain
``#`` lines right after it); the table lists each documented key with its type and default. Run
``make chart-docs`` (or ``python .ci/chart_readme.py``); ``--check`` exits 1 when README.md is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "musicgen"
TEMPLATE = CHART_DIR / "README.md.gotmpl"
README = CHART_DIR / "README.md"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_CONTINUATION = re.compile(r"^ *#(?: (?P<text>.*))?$")


def documented_keys(values_text: str) -> list[tuple[str, str]]:
    """(dotted key, description) of every key with a ``# --`` comment, in file order."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in values_text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = [doc["text"].strip()]
            continue
        continuation = _CONTINUATION.match(line)
        if continuation:
            if pending is not None:
                pending.append((continuation["text"] or "").strip())
            continue
        key = _KEY.match(line)
        if not key:
            pending = None if line.strip() else pending
            continue
        indent = len(key["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key["key"]))
        if pending is not None:
            found.append((".".join(name for _, name in stack), " ".join(p for p in pending if p)))
        pending = None
    return found


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def values_table(values_text: str) -> str:
    """The Markdown table of the documented values."""
    values = yaml.safe_load(values_text)
    keys = documented_keys(values_text)
    documented = {name for name, _ in keys}
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for name, description in keys:
        value = _lookup(values, name)
        if isinstance(value, dict) and any(other.startswith(f"{name}.") for other in documented):
            continue  # its documented children have their own rows
        default = json.dumps(value, separators=(", ", ": "))
        rows.append(f"| `{name}` | {_type_name(value)} | `{_cell(default)}` | {_cell(description)} |")
    return "\n".join(rows)


def render_readme() -> str:
    """README.md as it should be for the current template, Chart.yaml and values.yaml."""
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    text = TEMPLATE.read_text()
    replacements = {
        "{{ version }}": str(chart["version"]),
        "{{ appVersion }}": str(chart["appVersion"]),
        "{{ kubeVersion }}": str(chart["kubeVersion"]),
        "{{ description }}": " ".join(str(chart["description"]).split()),
        "{{ valuesTable }}": values_table((CHART_DIR / "values.yaml").read_text()),
    }
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


def main() -> int:
    """Write README.md, or with --check report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is out of date")
    args = parser.parse_args()
    wanted = render_readme()
    if args.check:
        if not README.exists() or README.read_text() != wanted:
            sys.stderr.write(f"error: {README} is out of date: run `make chart-docs`\n")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
