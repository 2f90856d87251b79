"""Polls (pure parts): what a poll is, and its results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_OPTIONS = 10


def _no_control(value: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value.strip()


Text = Annotated[str, AfterValidator(_no_control)]


class PollDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: Annotated[Text, Field(min_length=1, max_length=300)]
    options: list[Annotated[Text, Field(min_length=1, max_length=120)]] = Field(min_length=2, max_length=MAX_OPTIONS)


class Vote(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    option: int = Field(ge=0, lt=MAX_OPTIONS)


def tally(options: list[str], votes: Iterable[int]) -> list[dict[str, object]]:
    """Votes per option, in option order (a vote for an unknown option counts for nothing)."""
    counts = [0] * len(options)
    for v in votes:
        if 0 <= v < len(options):
            counts[v] += 1
    total = sum(counts)
    return [
        {"option": o, "votes": c, "percent": round(100 * c / total) if total else 0} for o, c in zip(options, counts, strict=True)
    ]
