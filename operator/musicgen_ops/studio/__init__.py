"""The studio: a REST API (``/api/v1``) and a web app to upload datasets, train, watch and listen.

* :mod:`.settings` — where the studio keeps its state, how it binds, its limits;
* :mod:`.schemas` — request and response shapes, built on :mod:`musicgen_ops.contracts`;
* :mod:`.backend` — the one interface the routes call, and its errors;
* :mod:`.local` — the local backend: ``file://`` storage, ``train-job`` subprocesses, SQLite state;
* :mod:`.uploads` — streaming multipart uploads, audio validated by decoding it;
* :mod:`.auth` — the access token, the session cookie and CSRF rules;
* :mod:`.routes` and :mod:`.app` — the FastAPI app that also serves :mod:`.static`.
"""
