"""musicgen_ops.jobs."""
