"""musicgen_ops.controllers.builders."""
