"""Layer boundaries: each layer imported in a fresh interpreter pulls in only what it may."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# layer module -> top-level packages it must never load
FORBIDDEN = {
    "musicgen_ops.api": {"torch", "transformers", "peft", "onnx", "kopf", "kubernetes", "fastapi", "minio"},
    "musicgen_ops.storage": {"torch", "transformers", "kopf", "kubernetes", "fastapi"},
    "musicgen_ops.controllers.main": {"torch", "transformers", "peft", "onnx", "onnxruntime", "fastapi"},
    "musicgen_ops.pipeline.models": {"kopf", "kubernetes", "fastapi", "minio", "azure"},
    "musicgen_ops.contracts.environment": {
        "torch",
        "transformers",
        "numpy",
        "kopf",
        "kubernetes",
        "fastapi",
        "minio",
        "azure",
    },
    "musicgen_ops.serving.service": {"fastapi", "starlette", "torch", "transformers", "kopf", "kubernetes"},
    "musicgen_ops.studio.app": {"torch", "transformers", "peft", "onnx", "kopf", "kubernetes"},
    "musicgen_ops.cli": {"torch", "transformers", "peft", "onnx", "kopf", "kubernetes", "fastapi", "minio"},
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(module):
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert not loaded & FORBIDDEN[module], f"{module} loads {sorted(loaded & FORBIDDEN[module])}"
