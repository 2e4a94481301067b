"""LoRA training on the tiny model: loss drops, only LoRA changes, adapters reload, resume, accumulation."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import LoraParameters
from musicgen_ops.pipeline.dataset import MusicGenDataset
from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.pipeline.progress import JsonLinesProgressWriter
from musicgen_ops.pipeline.training import MusicGenLoRATrainer, TrainConfig, run_training

FAST = {"lora_dropout": 0.0, "seed": 0}


def make_trainer(**kwargs) -> MusicGenLoRATrainer:
    options = {"lora_r": 8, "lora_alpha": 16} | FAST | kwargs
    return MusicGenLoRATrainer("tiny-random", loaded=build_random_musicgen(), **options)


def dataset_for(trainer, data_dir):
    return MusicGenDataset.from_directory(data_dir, trainer.processor, model=trainer.loaded.model)


def lora_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


@pytest.mark.parametrize("backend", ["hf", "lightning"])
def test_loss_drops_and_only_lora_changes(backend, train_data_dir, tmp_path):
    trainer = make_trainer()
    base_before = {k: v.clone() for k, v in trainer.peft_model.state_dict().items() if "lora_" not in k}
    dataset = dataset_for(trainer, train_data_dir)
    result = trainer.train(
        dataset,
        None,
        tmp_path,
        num_epochs=6,
        batch_size=4,
        learning_rate=1e-2,
        backend=backend,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        save_steps=100,
        val_fraction=0.0,
    )
    assert result.steps == 12 and result.samples_per_second > 0 and result.wall_seconds > 0
    first, last = result.train_loss_per_epoch[0], result.train_loss_per_epoch[-1]
    # The tiny model's heads are frozen and random, so LoRA on 32-wide attention can only go so far:
    # ~0.2 nats is a real, repeatable drop (a learning rate of 0 leaves the loss unchanged).
    assert last < first - 0.15, result.train_loss_per_epoch
    assert result.train_loss_per_epoch[:4] == sorted(result.train_loss_per_epoch[:4], reverse=True)
    after = trainer.peft_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base_before.items())
    assert (tmp_path / "loss_curve.png").stat().st_size > 5_000
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_lora_targets_decoder_attention_only():
    trainer = make_trainer()
    names = [n for n, p in trainer.peft_model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and ".decoder.layers." in n for n in names)
    assert any("encoder_attn.q_proj" in n for n in names) and any("self_attn.out_proj" in n for n in names)
    assert not any("text_encoder" in n or "audio_encoder" in n for n in names)
    assert 0 < trainer.trainable_parameters < trainer.total_parameters
    only_q = make_trainer(target_modules=["self_attn.q_proj"])
    assert {
        n.split(".lora_")[0].rsplit(".", 1)[-1]
        for n, p in only_q.peft_model.named_parameters()
        if p.requires_grad
    } == {"q_proj"}


def test_saved_adapter_reproduces_logits(train_data_dir, tmp_path):
    config = TrainConfig(
        data_dir=train_data_dir,
        output_dir=tmp_path,
        base_model="tiny-random",
        epochs=2,
        batch_size=4,
        learning_rate=1e-2,
        lora=LoraParameters(r=8, dropout=0.0),
        val_fraction=0.25,
        merge=True,
    )
    trainer = make_trainer()
    result = run_training(config, loaded=trainer.loaded)
    final = result.final_model_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "training_metadata.json"} <= {
        p.name for p in final.iterdir()
    }
    metadata = json.loads((final / "training_metadata.json").read_text())
    assert metadata["base_model"] == "tiny-random" and metadata["lora"]["r"] == 8
    assert len(metadata["dataset_manifest_sha256"]) == 64 and metadata["training"]["val_loss"] is not None

    fresh = build_random_musicgen()
    reloaded = PeftModel.from_pretrained(fresh.model, final).eval()
    batch = fresh.processor(text=["rock drums"], return_tensors="pt")
    decoder_ids = torch.full((1 * 4, 5), 2048)
    trained = build_random_musicgen()
    trained_peft = PeftModel.from_pretrained(trained.model, final).eval()
    with torch.no_grad():
        a = reloaded(**batch, decoder_input_ids=decoder_ids).logits
        b = trained_peft(**batch, decoder_input_ids=decoder_ids).logits
        base = build_random_musicgen().model(**batch, decoder_input_ids=decoder_ids).logits
        merged = type(base_model := build_random_musicgen().model).from_pretrained(final / "merged").eval()
        m = merged(**batch, decoder_input_ids=decoder_ids).logits
    assert torch.equal(a, b)
    assert not torch.allclose(a, base)  # the adapter changed something
    assert torch.allclose(a, m, atol=1e-5)  # merged weights behave like base + adapter
    del base_model


def test_resume_matches_uninterrupted_run(train_data_dir, tmp_path):
    options = dict(num_epochs=3, batch_size=4, learning_rate=5e-3, save_steps=2, val_fraction=0.0)
    full = make_trainer()
    full.train(dataset_for(full, train_data_dir), None, tmp_path / "full", **options)

    class Killed(Exception):
        pass

    class KillAtStep3:  # the pod dies after checkpoint-2 was written
        def on_progress(self, event):
            if event.step >= 3:
                raise Killed

    interrupted = make_trainer()
    with pytest.raises(Killed):
        interrupted.train(
            dataset_for(interrupted, train_data_dir),
            None,
            tmp_path / "cut",
            reporter=KillAtStep3(),
            **options,
        )
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]
    resumed = make_trainer()
    result = resumed.train(
        dataset_for(resumed, train_data_dir), None, tmp_path / "cut", resume=True, **options
    )
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-2")
    assert result.steps == 6
    expected, actual = lora_state(full.peft_model), lora_state(resumed.peft_model)
    assert all(torch.allclose(expected[k], actual[k], atol=1e-6) for k in expected)


def test_gradient_accumulation_matches_larger_batch(train_data_dir, tmp_path):
    """4 x batch 1 accumulated takes the same step as batch 4 (SGD, so the update is the gradient itself)."""
    options = dict(
        num_epochs=1,
        learning_rate=1.0,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        val_fraction=0.0,
        optimizer="sgd",
        condition_dropout=0.0,  # the two runs draw their dropped prompts per micro-batch
    )
    big = make_trainer()
    initial = lora_state(big.peft_model)
    subset = torch.utils.data.Subset(dataset_for(big, train_data_dir), [0, 1, 2, 3])
    big.train(subset, None, tmp_path / "b4", batch_size=4, gradient_accumulation_steps=1, **options)
    acc = make_trainer()
    acc.train(subset, None, tmp_path / "a4", batch_size=1, gradient_accumulation_steps=4, **options)
    assert big.last_result.steps == acc.last_result.steps == 1
    assert abs(big.last_result.final_train_loss - acc.last_result.final_train_loss) < 1e-3

    def update(trainer):
        state = lora_state(trainer.peft_model)
        return torch.cat([(state[k] - initial[k]).flatten() for k in sorted(initial)])

    expected, actual = update(big), update(acc)
    assert expected.abs().max() > 1e-4  # the step did something
    relative_error = float((expected - actual).norm() / expected.norm())
    assert relative_error < 0.02, relative_error


def test_progress_events_reach_the_reporter(train_data_dir, tmp_path):
    trainer = make_trainer()
    writer = JsonLinesProgressWriter(tmp_path / "progress.jsonl")
    trainer.train(
        dataset_for(trainer, train_data_dir), None, tmp_path, num_epochs=2, batch_size=4, reporter=writer
    )
    events = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert events[0]["phase"] == "starting" and events[-1]["phase"] == "completed"
    assert events[-1]["step"] == events[-1]["total_steps"] == 4
    assert TrainingProgress.model_validate(events[-1]).percent == 100
    assert any(e["loss"] is not None and e["eta_seconds"] is not None for e in events)


def test_bad_input_gives_clear_errors(train_data_dir, tmp_path):
    trainer = make_trainer()
    dataset = dataset_for(trainer, train_data_dir)
    with pytest.raises(TrainingError, match="larger than the training set"):
        trainer.train(dataset, None, tmp_path, batch_size=64)
    with pytest.raises(TrainingError, match="needs a CUDA GPU"):
        trainer.train(dataset, None, tmp_path, fp16=True)
    with pytest.raises(TrainingError, match="unknown LoRA target module 'qkv'"):
        make_trainer(target_modules=["qkv"])
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(TrainingError, match="cannot write to the output folder"):
        trainer.train(dataset, None, blocked / "out", batch_size=4)
    # A diverging run (the loss turns NaN mid-training) stops with a clear error and keeps no checkpoint.
    model_class = type(trainer.peft_model)
    real_forward = model_class.forward

    def diverging_forward(self, *args, **kwargs):
        output = real_forward(self, *args, **kwargs)
        if self.training and output.loss is not None:
            output.loss = output.loss * float("nan")
        return output

    with pytest.MonkeyPatch.context() as patch, pytest.raises(TrainingError, match="loss became nan"):
        patch.setattr(model_class, "forward", diverging_forward)
        trainer.train(dataset, None, tmp_path / "nan", batch_size=4, num_epochs=3)
    assert (
        not list((tmp_path / "nan" / "checkpoints").glob("checkpoint-*"))
        if (tmp_path / "nan" / "checkpoints").exists()
        else True
    )
