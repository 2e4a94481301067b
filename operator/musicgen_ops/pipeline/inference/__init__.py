"""musicgen_ops.pipeline.inference."""
