"""The web app in a real browser: Playwright driving Debian's chromium against ``musicgen-ops studio``.

Uploads three short tracks (and one non-audio file by drag and drop), trains the tiny model, watches the
progress, loss curve and checkpoint samples, sees the model appear, generates with A/B (decoder mbd, from
``--mbd-weights``) and checks the ``<audio>`` clip length.
Screenshots go to the test's folder (and to ``$STUDIO_SCREENSHOTS`` when set, e.g. docs/images).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.studio.conftest import TOKEN

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]
CLIP_SECONDS = 1.5
SAMPLE_SECONDS = 0.5

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
def studio_url(tmp_path: Path) -> Iterator[str]:
    """``musicgen-ops studio`` on a free port; yields the URL it prints (with the token)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MUSICGEN_STUDIO_TOKEN": TOKEN}
    command = [
        sys.executable,
        "-c",
        "from musicgen_ops.cli import main; main()",
        "studio",
        "--root",
        str(tmp_path / "studio"),
        "--port",
        "0",
        "--device",
        "cpu",
        "--base-model",
        "tiny-random",
        "--mbd-weights",  # random MultiBand Diffusion bands built in code, two steps: decoder mbd works
        "tiny-random",
        "--mbd-steps",
        "2",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"open (http://\S+)", first)
        assert match, f"studio printed no URL: {first!r}"
        assert match.group(1).endswith(f"/?token={TOKEN}") and "127.0.0.1" in match.group(1)
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def save(page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot in the test folder, copied to $STUDIO_SCREENSHOTS if set."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("STUDIO_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["STUDIO_SCREENSHOTS"]) / name)


def test_upload_train_watch_generate_in_chromium(studio_url, demo_tracks, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        expect = sync_api.expect
        page.goto(studio_url)
        page.wait_for_selector("body[data-ready]")
        assert "token" not in page.url  # the token left the address bar for the session cookie

        # Datasets: create one, upload three tracks, drop a file that is not audio.
        page.fill("#dataset-create input[name=name]", "demo")
        page.click("#dataset-create button")
        expect(page.locator("#dataset-select")).to_have_value("demo")
        page.fill("#upload-prompt", "warm synth pop")
        page.set_input_files("#file-input", [str(p) for p in demo_tracks])
        expect(page.locator("#track-rows tr")).to_have_count(3, timeout=60_000)
        expect(page.locator("#upload-list li.ok")).to_have_count(3)
        page.evaluate(
            """() => {
              const transfer = new DataTransfer();
              transfer.items.add(new File(['not audio at all'], 'notes.wav', { type: 'audio/wav' }));
              const zone = document.querySelector('#dropzone');
              zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true }));
            }"""
        )
        failed = page.locator("#upload-list li.failed .upload-status")
        expect(failed).to_contain_text("error: file 'notes.wav' is not usable audio: cannot decode")
        expect(page.locator("#track-rows tr")).to_have_count(3)
        save(page, tmp_path, "studio-datasets.png")

        # Train: the form starts from the contract's defaults; make it tiny.
        page.click("nav a[data-page=train]")
        expect(page.locator("#train-form [name='base_model']")).to_have_value("tiny-random")
        expect(page.locator("#train-form [name='training.epochs']")).to_have_value("10")
        for name, value in {
            "training.epochs": "3",
            "training.batch_size": "2",
            "training.learning_rate": "0.003",
            "lora.r": "4",
            "training.save_steps": "1",
            "training.sample_seconds": str(SAMPLE_SECONDS),
        }.items():
            page.fill(f"#train-form [name='{name}']", value)
        page.fill("#train-form [name=sample_prompts]", "warm synth pop\n\nslow piano  ")
        page.select_option("#train-form [name='training.precision']", "fp32")
        page.uncheck("#format-boxes input[value=merged]")
        page.click("#train-form button[type=submit]")
        page.wait_for_url(re.compile(r"#training/train-"))
        model_id = page.url.rsplit("/", 1)[1]

        # Progress arrives over SSE: the loss curve grows while it runs, then the run completes.
        expect(page.locator("#loss-chart path.line-loss")).to_have_count(1, timeout=120_000)
        early_points = page.locator("#loss-chart circle.line-loss").count()
        # Checkpoint samples: players appear per checkpoint while it trains (newest first, one per prompt).
        expect(page.locator("#t-samples .sample-step").first.locator("audio")).to_have_count(
            2, timeout=120_000
        )
        expect(page.locator("#t-samples .sample figcaption").first).to_contain_text("warm synth pop · seed 0")
        expect(page.locator("#t-state")).to_have_text("completed", timeout=240_000)
        steps = page.eval_on_selector_all(
            "#t-samples .sample-step", "groups => groups.map(g => +g.dataset.step)"
        )
        assert steps == sorted(steps, reverse=True) and len(steps) >= 2, steps
        sample_duration = page.evaluate(
            """() => new Promise((resolve, reject) => {
                 const audio = document.querySelector('#t-samples audio');
                 const done = () => resolve(audio.duration);
                 if (audio.readyState >= 1) done();
                 else { audio.onloadedmetadata = done; audio.onerror = () => reject(audio.error); }
               })"""
        )
        assert abs(sample_duration - SAMPLE_SECONDS) < 0.05, sample_duration
        final_points = page.locator("#loss-chart circle.line-loss").count()
        assert final_points >= 2 and final_points >= early_points
        assert page.locator("#t-progress").get_attribute("value") == "100"
        expect(page.locator("#t-cancel")).to_be_hidden()
        expect(page.locator("#t-generate")).to_be_visible()
        save(page, tmp_path, "studio-training.png")

        # Models: the new model is listed with its loss.
        page.click("nav a[data-page=models]")
        row = page.locator(f"#model-rows tr[data-model='{model_id}']")
        expect(row).to_have_count(1)
        assert re.search(r"\d\.\d{4}", row.inner_text())

        # Generate with the fine-tuned model and A/B against the base model.
        row.locator("a.button").click()
        expect(page.locator("#generate-form [name=model]")).to_have_value(model_id)
        page.fill("#generate-form [name=prompt]", "warm synth pop")
        page.fill("#generate-form [name=duration_seconds]", str(CLIP_SECONDS))
        page.fill("#generate-form [name=target_bpm]", "100")
        page.select_option("#generate-form [name=key]", "A")
        page.select_option("#generate-form [name=scale]", "minor")
        page.fill("#generate-form [name=random_seed]", "7")
        page.select_option("#generate-form [name=decoder]", "mbd")
        page.click("#generate-form button[type=submit]")
        expect(page.locator("#results audio")).to_have_count(2, timeout=120_000)
        durations = page.evaluate(
            """() => Promise.all([...document.querySelectorAll('#results audio')].map((audio) =>
                 new Promise((resolve, reject) => {
                   const done = () => resolve(audio.duration);
                   if (audio.readyState >= 1) done();
                   else { audio.onloadedmetadata = done; audio.onerror = () => reject(audio.error); }
                 })))"""
        )
        assert all(abs(d - CLIP_SECONDS) < 0.05 for d in durations), durations
        expect(page.locator("#results .result h3").nth(1)).to_contain_text("Base (A/B, same seed)")
        expect(page.locator("#generate-status")).to_contain_text("done: seed 7")  # every card is filled
        expect(page.locator("#results img.spectrogram")).to_have_count(2)
        expect(page.locator("#results canvas.waveform")).to_have_count(2)  # drawn from the decoded audio
        assert page.evaluate(
            """() => [...document.querySelectorAll('#results canvas.waveform')].every((canvas) =>
                 canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height)
                   .data.some((v) => v))"""
        )
        save(page, tmp_path, "studio-generate.png")

        # The same page on a phone-sized screen.
        page.set_viewport_size({"width": 390, "height": 844})
        save(page, tmp_path, "studio-generate-phone.png")
        browser.close()


def test_continue_an_uploaded_clip_in_chromium(studio_url, demo_tracks, tmp_path):
    """The generate page's "Continue this clip": the base model continues a file the user picks."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        expect = sync_api.expect
        page.goto(studio_url)
        page.wait_for_selector("body[data-ready]")
        page.click("nav a[data-page=generate]")
        page.select_option("#generate-form [name=model]", "base:tiny-random")
        expect(page.locator("#g-audio-prompt")).to_be_visible()
        expect(page.locator("#g-melody")).to_be_hidden()  # tiny-random is no melody model
        page.fill("#generate-form [name=prompt]", "keep going")
        page.fill("#generate-form [name=duration_seconds]", "3")  # the 2 s track, then 1 s more
        page.set_input_files("#generate-form [name=audio_prompt]", str(demo_tracks[0]))
        page.click("#generate-form button[type=submit]")
        expect(page.locator("#generate-status")).to_contain_text("done: seed", timeout=120_000)
        expect(page.locator("#results audio")).to_have_count(1)
        duration = page.evaluate(
            """() => new Promise((resolve) => {
                 const audio = document.querySelector('#results audio');
                 if (audio.readyState >= 1) resolve(audio.duration);
                 else audio.onloadedmetadata = () => resolve(audio.duration);
               })"""
        )
        assert abs(duration - 3.0) < 0.05, duration
        expect(page.locator("#results .result")).to_contain_text("continues the uploaded clip")
        save(page, tmp_path, "studio-generate-clip.png")
        inputs = tmp_path / "studio" / "generation-inputs"
        assert any(inputs.iterdir())
        page.once("dialog", lambda dialog: dialog.accept())  # "Delete this generation and its audio?"
        page.click("#results .delete-generation")
        expect(page.locator("#results .result")).to_have_count(0)
        assert not inputs.exists() or not any(inputs.iterdir())  # the uploaded clip went with it
        browser.close()
