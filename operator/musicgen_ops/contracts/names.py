"""The project's environment variable names: families (prefixes) and single variables (no imports, so the
CLI can name its variables without loading pydantic)."""

#: Every variable of the project starts with this; each lives in one family below or is a single name.
ENV_NAMESPACE = "MUSICGEN_"
JOB_ENV_PREFIX = "MUSICGEN_JOB_"
BASE_MODEL_ENV_PREFIX = "MUSICGEN_BASE_MODEL_"
SERVE_ENV_PREFIX = "MUSICGEN_SERVE_"
#: The operator's settings (``controllers.config``) and storage deadlines (``storage.deadlines``).
OPERATOR_ENV_PREFIX = "MUSICGEN_OPERATOR_"
STORAGE_ENV_PREFIX = "MUSICGEN_STORAGE_"
#: Single variables: log level and JSON lines, full tracebacks in the CLI, the studio's access token.
LOG_LEVEL_ENV = "MUSICGEN_LOG_LEVEL"
LOG_JSON_ENV = "MUSICGEN_LOG_JSON"
DEBUG_ENV = "MUSICGEN_DEBUG"
STUDIO_TOKEN_ENV = "MUSICGEN_STUDIO_TOKEN"
ENV_NAMESPACE_KNOWN = (
    JOB_ENV_PREFIX,
    BASE_MODEL_ENV_PREFIX,
    SERVE_ENV_PREFIX,
    OPERATOR_ENV_PREFIX,
    STORAGE_ENV_PREFIX,
    LOG_LEVEL_ENV,
    LOG_JSON_ENV,
    DEBUG_ENV,
    STUDIO_TOKEN_ENV,
)
