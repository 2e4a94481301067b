"""Parameter validation, prompt folding and settings: pure, fast checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musicgen_ops.contracts.base import UnknownEnvironmentError
from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.generation.batch import prepare, validate_parameters
from musicgen_ops.pipeline.prompting import compose_prompt
from musicgen_ops.serving.errors import InvalidParametersError
from musicgen_ops.serving.schemas import GenerateRequest as GenerationParameters


class TestComposePrompt:
    def test_fields_are_folded_in_documented_order(self):
        text = compose_prompt("warm analog synths", style="synthwave", bpm=96, key="A", scale="minor")
        assert text == "synthwave, 96 bpm, A minor, warm analog synths"

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"key": "F#"}, "key of F#, calm"),
            ({"scale": "dorian"}, "dorian scale, calm"),
            ({"bpm": 92.5}, "92.5 bpm, calm"),
            ({"style": "  lofi   hip hop "}, "lofi hip hop, calm"),
            ({}, "calm"),
        ],
    )
    def test_partial_fields(self, kwargs, expected):
        assert compose_prompt("calm", **kwargs) == expected

    def test_phrase_already_in_prompt_is_not_repeated(self):
        assert compose_prompt("Rock anthem at 120 BPM", style="rock", bpm=120) == "Rock anthem at 120 BPM"

    def test_only_fields(self):
        assert compose_prompt("", style="jazz", bpm=80) == "jazz, 80 bpm"

    def test_empty_everything_is_an_error(self):
        with pytest.raises(ValueError, match="prompt"):
            compose_prompt("  ")


class TestParameters:
    def test_every_bad_field_is_listed(self):
        bad = {
            "prompt": "",
            "duration_seconds": -1,
            "temperature": 3,
            "top_k": -5,
            "guidance_scale": 50,
            "target_bpm": 5,
            "key": "H",
            "scale": "weird",
            "output_format": "aiff",
            "random_seed": -1,
            "colour": "blue",
        }
        with pytest.raises(InvalidParametersError) as info:
            validate_parameters(bad)
        fields = [line.split(":")[0] for line in info.value.fields]
        assert sorted(fields) == sorted(bad)
        assert "11 invalid parameter(s)" in str(info.value)
        assert "temperature: Input should be less than or equal to 2 (got 3)" in info.value.fields

    def test_crd_names_are_accepted(self):
        params = GenerationParameters.model_validate({"prompt": "x", "bpm": 100, "seed": 7})
        assert (params.target_bpm, params.random_seed) == (100, 7)

    def test_server_duration_limit(self):
        with pytest.raises(InvalidParametersError, match="at most 20 s"):
            validate_parameters({"prompt": "x", "duration_seconds": 25}, max_duration_seconds=20)

    def test_prepare_exact_length_seed_and_text(self):
        params = GenerationParameters(prompt="drums", duration_seconds=1.23456, style="funk", random_seed=3)
        request = prepare(params, 32_000)
        assert request.num_samples == round(1.23456 * 32_000)
        assert (request.seed, request.sampling.seed) == (3, 3)
        assert request.conditioning_text == "funk, drums"

    def test_missing_seed_is_chosen(self):
        seeds = {prepare(GenerationParameters(prompt="x"), 32_000).seed for _ in range(5)}
        assert len(seeds) > 1 and all(0 <= s < 2**32 for s in seeds)


class TestSettings:
    def test_env_prefix_and_preload_list(self, monkeypatch):
        monkeypatch.setenv("MUSICGEN_SERVE_MAX_BATCH_SIZE", "4")
        monkeypatch.setenv("MUSICGEN_SERVE_PRELOAD", "tiny-random, my-model")
        monkeypatch.setenv("MUSICGEN_SERVE_MODELS_URI", "s3://bucket/root")
        settings = ServeEnvironment.from_environ()
        assert settings.max_batch_size == 4
        assert settings.preload == ["tiny-random", "my-model"]
        assert settings.models_uri == "s3://bucket/root"

    def test_unknown_variable_is_an_error_naming_the_closest_setting(self, monkeypatch):
        monkeypatch.setenv("MUSICGEN_SERVE_MODEL", "lofi-v1")  # what the builders wrote before
        with pytest.raises(UnknownEnvironmentError, match="MUSICGEN_SERVE_MODEL .*did you mean"):
            ServeEnvironment.from_environ()

    def test_engine_must_run_the_model_format(self):
        with pytest.raises(ValidationError, match="cannot run a onnx-int8 model"):
            ServeEnvironment(model_format="onnx-int8", engine="fast")

    def test_context_must_be_shorter_than_window(self):
        with pytest.raises(ValidationError, match="stride_seconds"):
            ServeEnvironment(window_seconds=5, stride_seconds=5)
