"""musicgen_ops.serving."""
