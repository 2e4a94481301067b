"""musicgen_ops.pipeline.training."""
