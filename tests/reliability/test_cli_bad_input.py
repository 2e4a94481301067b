"""Bad input on the command line: one ``error:`` line naming the file or field, exit 1 (2 for usage),
no traceback; ``--debug`` shows the traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.cli import app, run
from musicgen_ops.pipeline.errors import DatasetError
from musicgen_ops.pipeline.manifest import read_prompts_csv


def _dataset(folder: Path, prompts_csv: str) -> Path:
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(8000, dtype=np.float32), 8000)
    (folder / "prompts.csv").write_text(prompts_csv)
    return folder


def _setup(tmp: Path, case: str) -> list[str]:
    """Files a case needs; returns the arguments with ``{tmp}`` filled in."""
    (tmp / "afile").write_text("not a folder")
    (tmp / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    _dataset(tmp / "comma", "file,prompt\na.wav,calm, slow piano\n")
    _dataset(tmp / "short", "file,prompt\na.wav\n")
    _dataset(tmp / "quote", 'file,prompt\na.wav,"calm, slow\n')
    _dataset(tmp / "comma_ok", 'file,prompt\na.wav,"calm, slow"\n')
    return [arg.format(tmp=tmp) for arg in CASES[case][0]]


# case: (arguments, exit code, words of the one error line)
CASES = {
    "unknown command": (["nosuch"], 2, ["No such command 'nosuch'", "musicgen-ops --help"]),
    "bad number": (
        ["generate", "--prompt", "x", "--duration", "long"],
        2,
        ["'--duration-seconds'", "valid number"],
    ),
    "no prompt": (["generate"], 1, ["give exactly one of --prompt or --requests-file"]),
    "output under a file": (
        ["generate", "--prompt", "x", "-o", "{tmp}/afile/x.wav"],
        1,
        ["afile is a file, not a folder"],
    ),
    "output as aiff": (
        ["generate", "--prompt", "x", "-o", "{tmp}/a.aiff"],
        1,
        ["cannot write aiff", ".wav or .flac or .mp3 or .ogg or .opus"],
    ),
    "24-bit mp3": (
        ["generate", "--prompt", "x", "-o", "{tmp}/a.mp3", "--bit-depth", "24"],
        1,
        ["bit_depth: Value error, 24 does not apply to mp3"],
    ),
    "missing requests file": (
        ["generate", "--requests-file", "{tmp}/none.jsonl"],
        1,
        ["none.jsonl: requests file not found"],
    ),
    "bad requests line": (
        ["generate", "--requests-file", "{tmp}/bad.jsonl"],
        1,
        ["bad.jsonl:2: not valid JSON"],
    ),
    "unquoted comma in prompts.csv": (
        ["preprocess", "-i", "{tmp}/comma", "-o", "{tmp}/out"],
        1,
        ["prompts.csv:2: 3 field(s) where the header has 2", "double quotes"],
    ),
    "row without prompt in prompts.csv": (
        ["preprocess", "-i", "{tmp}/short", "-o", "{tmp}/out"],
        1,
        ["prompts.csv:2: 1 field(s) where the header has 2"],
    ),
    "unterminated quote in prompts.csv": (
        ["preprocess", "-i", "{tmp}/quote", "-o", "{tmp}/out"],
        1,
        ["prompts.csv:", "not valid CSV"],
    ),
    "missing input folder": (
        ["preprocess", "-i", "{tmp}/nothing", "-o", "{tmp}/out"],
        1,
        ["nothing does not exist"],
    ),
    "preprocess output is a file": (
        ["preprocess", "-i", "{tmp}/comma_ok", "-o", "{tmp}/afile"],
        1,
        ["afile is a file, not a folder"],
    ),
    "train output is a file": (
        [
            "train",
            "--data-dir",
            "{tmp}/comma_ok",
            "--output-dir",
            "{tmp}/afile",
            "--base-model",
            "tiny-random",
        ],
        1,
        ["cannot create the output folder", "afile"],
    ),
    "copy of nothing": (["storage", "cp", "{tmp}/nothing", "{tmp}/x"], 1, ["nothing to copy"]),
    "bad storage URI": (["storage", "ls", "gopher://x/y"], 1, ["gopher"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    args = _setup(tmp_path, case)
    _, code, words = CASES[case]
    assert run(args) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err
    assert "Traceback" not in err


def test_unexpected_errors_say_how_to_see_the_traceback(capsys, monkeypatch):
    def broken() -> None:
        raise RuntimeError("something odd")

    app.command("broken-for-test")(broken)
    try:
        assert run(["broken-for-test"]) == 1
        err = capsys.readouterr().err
        assert "error: unexpected RuntimeError: something odd (run with --debug" in err
        assert "Traceback" not in err
        with pytest.raises(RuntimeError, match="something odd"):
            run(["--debug", "broken-for-test"])
    finally:
        app.registered_commands.pop()


def test_os_errors_name_the_file(capsys):
    def unreadable() -> None:
        open("/nonexistent-dir/x.json")  # noqa: SIM115

    app.command("unreadable-for-test")(unreadable)
    try:
        assert run(["unreadable-for-test"]) == 1
        assert "error: /nonexistent-dir/x.json: No such file or directory" in capsys.readouterr().err
    finally:
        app.registered_commands.pop()


def test_quoted_prompts_keep_their_commas(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text('file,prompt\na.wav,"calm, slow piano"\n\nb.wav, drums \n', encoding="utf-8")
    assert read_prompts_csv(path) == {"a.wav": "calm, slow piano", "b.wav": "drums"}
    path.write_text("name,text\na.wav,x\n")
    with pytest.raises(
        DatasetError, match="prompts.csv: needs a header line with the columns 'file' and 'prompt'"
    ):
        read_prompts_csv(path)
