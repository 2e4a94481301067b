"""musicgen_ops.serving.routes."""
