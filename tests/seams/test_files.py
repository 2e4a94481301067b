"""Files one process writes and another reads: progress.json (train-job -> operator) and the generation
result (generate-job -> operator -> GenerationRequest status), each written and parsed by the real code."""

from __future__ import annotations

import soundfile as sf

from musicgen_ops.api.generationrequest import GenerationRequestStatus
from musicgen_ops.api.trainingjob import TrainingJobStatus
from musicgen_ops.contracts.environment import GenerateJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.controllers import artifacts
from musicgen_ops.controllers.generationrequest import result_fields
from musicgen_ops.controllers.trainingjob import progress_fields
from musicgen_ops.storage import publish_model


def test_progress_written_by_the_job_is_what_the_operator_shows(tmp_path):
    from musicgen_ops.jobs.reporting import StorageProgressReporter

    uri = f"file://{tmp_path}/runs/music/piano/progress.json"
    event = TrainingProgress(
        phase="training",
        epoch=2.5,
        total_epochs=4,
        step=50,
        total_steps=80,
        loss=2.34567891,
        val_loss=float("nan"),  # a diverged evaluation: JSON has no NaN, the status gets no number
        base_val_loss=7.5,
        eta_seconds=120.7,
        world_size=4,
    )
    StorageProgressReporter(uri).write(event)
    progress, non_finite = artifacts.read_progress(uri)
    assert non_finite == []  # the writer already turned NaN into null: the file is valid JSON
    fields = progress_fields(progress)
    status = TrainingJobStatus.model_validate(fields)
    assert (status.current_epoch, status.total_epochs, status.epochs) == (2.5, 4, "2/4")
    assert (status.current_step, status.total_steps, status.progress_percent) == (50, 80, 62)
    assert status.current_loss == 2.34568 and status.validation_loss is None
    assert status.base_validation_loss == 7.5 and status.world_size == 4
    assert status.eta_seconds == 120 and status.training_phase == "training"
    assert status.last_progress_time is not None


def test_generate_job_result_reaches_the_generation_request_status(trained_model_dir, tmp_path):
    from musicgen_ops.jobs.generate_job import generate

    root = f"file://{tmp_path / 'store'}"
    publish_model(trained_model_dir, root, "piano-v1", base_model="tiny-random", formats=["adapter"])
    output = f"{root}/generations/music/calm-1/output.wav"
    settings = GenerateJobEnvironment(
        model_id="piano-v1",
        model_uri=f"{root}/models/piano-v1",
        parameters=GenerationParameters(prompt="calm piano", duration_seconds=0.5, seed=11),
        output_uri=output,
        result_uri=f"{output}.json",
        cache_dir=tmp_path / "cache",
        device="cpu",
    )
    generate(settings)
    status = GenerationRequestStatus.model_validate(
        result_fields(artifacts.read_generation_result(settings.result_uri))
    )
    assert status.output_uri == output and status.seed == 11 and status.sample_rate == 32_000
    assert status.audio_seconds == 0.5 and status.timings.total_seconds > 0
    audio, rate = sf.read(output.removeprefix("file://"))
    assert rate == 32_000 and len(audio) == 16_000
