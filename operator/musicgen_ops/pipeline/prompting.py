"""Fold structured musical fields (style, tempo, key, scale) into MusicGen's text conditioning.

MusicGen is conditioned on text only, and it was trained on descriptions such as
``"rock, 120 bpm, energetic electric guitar"``. Structured fields therefore become short
comma-separated phrases in front of the free-text prompt, in a fixed order:

    <style>, <bpm> bpm, <key> <scale>, <prompt>

* ``key`` and ``scale`` combine into one phrase (``C major``); a key alone is ``key of C``,
  a scale alone is ``minor scale``.
* A phrase the prompt already contains (case-insensitive) is not repeated.
* Whitespace is collapsed; an empty result is an error.

Example: ``compose_prompt("warm analog synths", style="synthwave", bpm=96, key="A", scale="minor")``
gives ``"synthwave, 96 bpm, A minor, warm analog synths"``.
"""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")


def _clean(text: str | None) -> str:
    return _SPACES.sub(" ", text or "").strip().strip(",").strip()


def musical_phrases(
    *,
    style: str | None = None,
    bpm: float | None = None,
    key: str | None = None,
    scale: str | None = None,
) -> list[str]:
    """The phrases the structured fields contribute, in order (style, tempo, tonality)."""
    phrases: list[str] = []
    if _clean(style):
        phrases.append(_clean(style))
    if bpm is not None:
        phrases.append(f"{int(round(bpm))} bpm" if float(bpm).is_integer() else f"{bpm:g} bpm")
    key, scale = _clean(key), _clean(scale)
    if key and scale:
        phrases.append(f"{key} {scale}")
    elif key:
        phrases.append(f"key of {key}")
    elif scale:
        phrases.append(f"{scale} scale")
    return phrases


def compose_prompt(
    prompt: str,
    *,
    style: str | None = None,
    bpm: float | None = None,
    key: str | None = None,
    scale: str | None = None,
) -> str:
    """The text MusicGen is conditioned on: structured phrases, then the free-text prompt.

    Raises:
        ValueError: the prompt and every structured field are empty.
    """
    text = _clean(prompt)
    lowered = text.lower()
    phrases = [
        p for p in musical_phrases(style=style, bpm=bpm, key=key, scale=scale) if p.lower() not in lowered
    ]
    composed = ", ".join([*phrases, text] if text else phrases)
    if not composed:
        raise ValueError("prompt: empty, and no style, bpm, key or scale to describe the music")
    return composed
