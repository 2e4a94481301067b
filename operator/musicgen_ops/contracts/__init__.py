"""Every shape that crosses a process boundary, declared once (pydantic only).

* :mod:`.generation` — the generation parameters (HTTP body, CLI, GenerationRequest, generate-job),
  the sidecar of a written track and the result JSON a generate-job leaves for the operator;
* :mod:`.training` — the LoRA and optimisation parameters (TrainingJob spec, train-job, ``train`` CLI);
* :mod:`.progress` — ``progress.json``, written by a training Job and read by the operator;
* :mod:`.manifest` — ``manifest.json`` of a published model;
* :mod:`.environment` — the container environments of ``train-job``, ``generate-job`` and the
  generator server, written by the operator's builders and read by the entrypoints.

Producers and consumers both use these models (no dict literals, no field lists kept by hand): a
bound or a name exists here and nowhere else. The CRD models (``musicgen_ops.api``) subclass them
with camelCase aliases.
"""
