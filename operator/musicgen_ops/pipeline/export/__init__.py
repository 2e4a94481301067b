"""musicgen_ops.pipeline.export."""
