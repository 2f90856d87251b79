"""The attendance timeline chart of a meeting report: one row per participant, a bar for each
stretch they were connected, time along the bottom. A PNG (Pillow), for the report mail."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH = 720
ROW = 28
LEFT = 190
RIGHT = 20
TOP = 16
AXIS = 34
BAR = (45, 108, 223)
GRID = (222, 226, 234)
TEXT = (29, 35, 48)
MUTED = (91, 100, 117)


def _label(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def timeline_png(names: Sequence[str], timeline: Sequence[Mapping[str, float]], duration_s: float) -> bytes:
    """``timeline``: {"i": participant index, "s": start, "e": end} in seconds from the start."""
    duration = max(duration_s, 1.0)
    height = TOP + ROW * max(1, len(names)) + AXIS
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    span = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + span * min(max(t, 0.0), duration) / duration

    ticks = 6
    for k in range(ticks + 1):
        t = duration * k / ticks
        draw.line([(x(t), TOP - 4), (x(t), height - AXIS + 4)], fill=GRID)
        label = _label(t)
        draw.text((x(t) - draw.textlength(label, font=font) / 2, height - AXIS + 8), label, fill=MUTED, font=font)
    for i, name in enumerate(names):
        y = TOP + ROW * i
        draw.text((8, y + 7), _fit(draw, name, font, LEFT - 16), fill=TEXT, font=font)
    for seg in timeline:
        y = TOP + ROW * int(seg["i"])
        x0, x1 = x(float(seg["s"])), x(float(seg["e"]))
        draw.rectangle([x0, y + 6, max(x1, x0 + 2), y + ROW - 6], fill=BAR)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
