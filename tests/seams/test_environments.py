"""CRD spec -> container env -> entrypoint settings -> pipeline config, for every field.

Each test takes what the operator's builder really emits and parses it with the consumer's real code.
Every contract field gets a non-default value from ``NON_DEFAULT``; a field added to a contract without
an entry there fails ``test_every_contract_field_has_a_test_value`` until it is carried and checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.api.trainingjob import LoraSpec, TrainingJobSpec, TrainingSpec
from musicgen_ops.contracts.base import UnknownEnvironmentError
from musicgen_ops.contracts.environment import GenerateJobEnvironment, ServeEnvironment, TrainJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.contracts.names import ENV_NAMESPACE_KNOWN
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters
from musicgen_ops.controllers.builders.deployments import build_generator_deployment
from musicgen_ops.controllers.builders.jobs import build_generation_job, build_training_job, generate_settings
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.config import OperatorConfig

#: A valid value different from the default, per contract field.
NON_DEFAULT = {
    LoraParameters: {"r": 24, "alpha": 12, "dropout": 0.05, "target_modules": ["q_proj", "fc1"]},
    TrainingParameters: {
        "epochs": 7,
        "max_steps": 123,
        "batch_size": 3,
        "grad_accum": 2,
        "learning_rate": 3e-4,
        "weight_decay": 0.01,
        "optimizer": "sgd",
        "lr_scheduler": "linear",
        "warmup_ratio": 0.1,
        "max_grad_norm": 0.5,
        "precision": "fp32",
        "backend": "lightning",
        "seed": 7,
        "val_fraction": 0.2,
        "max_duration_seconds": 12.5,
        "save_steps": 9,
        "save_total_limit": 5,
        "logging_steps": 4,
        "condition_dropout": 0.15,
        "encode_batch_size": 8,
        "sample_prompts": ["calm piano", "fast drums"],
        "sample_seconds": 2.5,
        "sample_seed": 11,
    },
    GenerationParameters: {
        "prompt": "dusty lofi drums",
        "duration_seconds": 42.5,
        "target_bpm": 84.0,
        "style": "lofi hip hop",
        "key": "F#",
        "scale": "dorian",
        "temperature": 0.7,
        "top_k": 50,
        "top_p": 0.9,
        "guidance_scale": 4.5,
        "random_seed": 1234,
        "output_format": "flac",
        "sample_rate": 48000,
        "bit_depth": 24,
        "target_lufs": -14.0,
        "true_peak_dbtp": -2.0,
        "melody_uri": "s3://bucket/melodies/hum.wav",
        "decoder": "mbd",
        "audio_prompt_uri": "s3://bucket/root/prompts/intro.wav",
    },
}
MBD_MIRROR = "s3://bucket/root/models/facebook--multiband-diffusion"

OWNER_TJ = Owner("TrainingJob", "piano", "music", "uid-1")
OWNER_GR = Owner("GenerationRequest", "calm-1", "music", "uid-2")
OWNER_TM = Owner("TrainedModel", "piano-v1", "music", "uid-3")


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig(artifacts_uri="s3://bucket/root", storage_secret="creds")


def as_crd(crd_model: type, values: dict) -> dict:
    """``values`` under the camelCase names a user writes in the custom resource."""
    return {crd_model.model_fields[name].alias: value for name, value in values.items()}


def container_env(manifest: dict) -> dict[str, str]:
    """The literal env of a Job's or Deployment's only container (what the kubelet hands the process)."""
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


@pytest.mark.parametrize("model", list(NON_DEFAULT), ids=lambda m: m.__name__)
def test_every_contract_field_has_a_test_value(model):
    values = NON_DEFAULT[model]
    assert set(values) == set(model.model_fields), "add the new field to NON_DEFAULT (and carry it)"
    parsed = model.model_validate(values)
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        assert getattr(parsed, name) != default, f"{model.__name__}.{name}: test value equals the default"


def test_training_job_spec_reaches_the_pipeline_config(config, tmp_path):
    from musicgen_ops.jobs.train_job import train_config

    spec = TrainingJobSpec.model_validate(
        {
            "datasetUri": "s3://data/piano",
            "baseModel": "tiny-random",
            "lora": as_crd(LoraSpec, NON_DEFAULT[LoraParameters]),
            "training": as_crd(TrainingSpec, NON_DEFAULT[TrainingParameters]),
            "resources": {"gpu": 0},
        }
    )
    env = container_env(build_training_job(OWNER_TJ, spec, config))
    settings = TrainJobEnvironment.from_environ(env)  # what train-job reads
    pipeline = train_config(settings, tmp_path / "data", tmp_path / "out")  # what it trains with
    assert pipeline.lora == LoraParameters(**NON_DEFAULT[LoraParameters])
    for name, value in NON_DEFAULT[TrainingParameters].items():
        assert getattr(pipeline, name) == value, name
    assert pipeline.base_model == "tiny-random" and pipeline.device == "cpu"
    assert settings.dataset_uri == "s3://data/piano" and settings.resume is True
    assert settings.export_formats == ["adapter", "merged"]


def test_generation_request_spec_reaches_generate_job(config):
    camel = as_crd(GenerationRequestSpec, NON_DEFAULT[GenerationParameters])
    spec = GenerationRequestSpec.model_validate(
        {"trainedModelId": "piano-v1", **camel, "resources": {"gpu": 1}}
    )
    settings = generate_settings(OWNER_GR, spec, "piano-v1", "s3://bucket/root/models/piano-v1", "b", config)
    env = container_env(build_generation_job(OWNER_GR, spec, settings, config))
    parsed = GenerateJobEnvironment.from_environ(env)  # what generate-job reads
    assert parsed.parameters == GenerationParameters(**NON_DEFAULT[GenerationParameters])
    assert parsed.device == "cuda" and parsed.model_id == "piano-v1"
    assert parsed.output_uri.endswith("generations/music/calm-1/output.flac")
    assert parsed.use_base_model is False and parsed.base_model == "b"
    base_spec = spec.model_copy(update={"use_base_model": True})
    base = generate_settings(OWNER_GR, base_spec, "piano-v1", "s3://bucket/root/models/piano-v1", "b", config)
    base_env = container_env(build_generation_job(OWNER_GR, base_spec, base, config))
    assert GenerateJobEnvironment.from_environ(base_env).use_base_model is True


def test_mbd_weights_of_the_operator_reach_jobs_and_servers():
    config = OperatorConfig(artifacts_uri="s3://bucket/root", mbd_weights=MBD_MIRROR)
    spec = GenerationRequestSpec.model_validate({"trainedModelId": "m", "prompt": "p", "decoder": "mbd"})
    settings = generate_settings(OWNER_GR, spec, "m", "s3://bucket/root/models/m", "b", config)
    job = GenerateJobEnvironment.from_environ(
        container_env(build_generation_job(OWNER_GR, spec, settings, config))
    )
    assert (job.mbd_weights, job.parameters.decoder) == (MBD_MIRROR, "mbd")
    served = TrainedModelSpec.model_validate({"modelId": "m", "serving": {"enabled": True}})
    deployment = build_generator_deployment(OWNER_TM, served, "m", "s3://bucket/root", config)
    assert ServeEnvironment.from_environ(container_env(deployment)).mbd_weights == MBD_MIRROR


def test_legacy_spec_names_still_work(config):
    spec = GenerationRequestSpec.model_validate({"model": "m", "prompt": "p", "bpm": 90, "seed": 3})
    assert (spec.trained_model_id, spec.target_bpm, spec.random_seed) == ("m", 90, 3)
    with pytest.raises(ValueError, match="old name"):
        GenerationRequestSpec.model_validate({"model": "m", "trainedModelId": "m", "prompt": "p"})


@pytest.mark.parametrize(
    ("serving", "device", "dtype", "model_format", "engine"),
    [
        ({"enabled": True, "resources": {"gpu": 1}}, "cuda", "bfloat16", "auto", "auto"),
        ({"enabled": True, "resources": {"gpu": 0}}, "cpu", "float32", "auto", "auto"),
        (
            {"enabled": True, "modelFormat": "onnx-int8", "resources": {"gpu": 0}},
            "cpu",
            "float32",
            "onnx-int8",
            "auto",
        ),
        ({"enabled": True, "format": "merged", "engine": "fast"}, "cuda", "bfloat16", "merged", "fast"),
    ],
)
def test_trained_model_deployment_env_configures_the_server(
    config, serving, device, dtype, model_format, engine
):
    spec = TrainedModelSpec.model_validate({"modelId": "piano-v1", "serving": serving})
    deployment = build_generator_deployment(OWNER_TM, spec, "piano-v1", "s3://bucket/root", config)
    settings = ServeEnvironment.from_environ(container_env(deployment))  # what `musicgen-ops serve` reads
    assert settings.default_model == "piano-v1" and settings.preload == ["piano-v1"] and settings.warmup
    assert settings.models_uri == "s3://bucket/root"
    assert (settings.device, settings.dtype) == (device, dtype)
    assert (settings.model_format, settings.engine) == (model_format, engine)
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert settings.port == port == spec.serving.port


def test_the_old_builder_env_is_refused_at_start():
    """What the builders wrote before the contracts: the server would have ignored both variables and
    served the base model. Now it refuses to start."""
    old = {"MUSICGEN_SERVE_MODEL": "piano-v1", "MUSICGEN_SERVE_FORMAT": "auto", "MUSICGEN_SERVE_PORT": "8000"}
    with pytest.raises(UnknownEnvironmentError, match="MUSICGEN_SERVE_FORMAT.*MUSICGEN_SERVE_MODEL"):
        ServeEnvironment.from_environ(old)


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("MUSICGEN_SEVRE_DEVICE", "did you mean MUSICGEN_SERVE_DEVICE?"),
        ("MUSICGEN_BASE_MODL_MIRROR", "did you mean MUSICGEN_BASE_MODEL_MIRROR?"),
        ("MUSICGEN_LOG_LEVLE", "did you mean MUSICGEN_LOG_LEVEL?"),
        ("MUSICGEN_GPU", "known: MUSICGEN_JOB_*"),
    ],
)
def test_a_variable_of_no_known_family_is_refused_at_start(variable, hint):
    """A typo in the family part escapes the per-prefix check; the project namespace catches it."""
    for environment in (ServeEnvironment, TrainJobEnvironment):
        with pytest.raises(UnknownEnvironmentError, match=re.escape(f"{variable} ({hint}")):
            environment.from_environ({variable: "1"})


def test_the_other_families_and_single_names_pass():
    env = {
        "MUSICGEN_LOG_LEVEL": "DEBUG",
        "MUSICGEN_OPERATOR_NAMESPACE": "x",
        "MUSICGEN_STORAGE_READ_TIMEOUT": "5",
    }
    assert ServeEnvironment.from_environ(env) == ServeEnvironment()


def test_every_variable_the_project_names_is_in_the_namespace():
    """Code, chart, images and docs only use MUSICGEN_* names of a declared family or single name."""
    root = Path(__file__).resolve().parents[2]
    files = [
        *root.glob("operator/**/*.py"),
        *root.glob("charts/**/*.yaml"),
        *root.glob("images/*/Dockerfile"),
    ]
    files += [*root.glob("docs/*.md"), root / "README.md"]
    names = {m for f in files for m in re.findall(r"\bMUSICGEN_[A-Z0-9_]*[A-Z0-9]", f.read_text())}
    prefixes = tuple(k for k in ENV_NAMESPACE_KNOWN if k.endswith("_"))
    known = {*ENV_NAMESPACE_KNOWN, *(prefix.rstrip("_") for prefix in prefixes)}  # "MUSICGEN_JOB_*" in docs
    stray = sorted(n for n in names if n not in known and not n.startswith(prefixes))
    assert names and not stray, f"declare these in contracts/names.py: {stray}"


def test_paths_in_the_env_are_the_pod_scratch_volume(config):
    spec = TrainingJobSpec.model_validate({"datasetUri": "s3://d/x"})
    settings = TrainJobEnvironment.from_environ(container_env(build_training_job(OWNER_TJ, spec, config)))
    assert settings.work_dir == Path("/scratch/work") and settings.cache_dir == Path("/scratch/models")
