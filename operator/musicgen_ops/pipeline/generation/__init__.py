"""Generation orchestration shared by the CLI, the generate-job and the generator server.

* :mod:`.batch` — validate parameters, fold them into the conditioning text, group requests that may
  share a forward pass, generate a batch, and ``generate_to_files`` for a list of requests;
* :mod:`.windowing` — tracks longer than the model's window by windowed continuation;
* :mod:`.writer` — audio, JSON sidecar and spectrogram written atomically.
"""
