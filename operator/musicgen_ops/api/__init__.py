"""musicgen_ops.api."""
