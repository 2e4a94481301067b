"""musicgen_ops.pipeline."""
