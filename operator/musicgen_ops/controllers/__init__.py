"""musicgen_ops.controllers."""
