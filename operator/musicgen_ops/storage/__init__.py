"""musicgen_ops.storage."""
