"""Which converter converts a recording: pure.

Policy ("Recording Converters"): a converter in the MCU's region; if none is available there, a
random available one; after a failed conversion, the one an admin set as fallback (admin CLI),
else any other than the one that failed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Converter:
    id: str
    region: str
    available: bool = True


class NoConverterAvailable(Exception):
    pass


def parse(spec: str) -> list[Converter]:
    """``id@region,id@region`` (the WEBMEETING_CONVERTERS setting)."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        cid, sep, region = item.partition("@")
        if not sep or not cid or not region:
            raise ValueError(f"converter {item!r}: expected id@region")
        out.append(Converter(cid, region))
    return out


def choose(
    converters: Sequence[Converter],
    region: str,
    *,
    failed: str | None = None,
    fallback: str | None = None,
    rng: random.Random | None = None,
) -> Converter:
    rng = rng or random.Random()  # noqa: S311 - load spreading, not security
    usable = [c for c in converters if c.available]
    if not usable:
        raise NoConverterAvailable("no converter is available")
    if failed:
        chosen = next((c for c in usable if c.id == fallback), None)
        if chosen:
            return chosen
        usable = [c for c in usable if c.id != failed] or usable
    local = [c for c in usable if c.region == region]
    return rng.choice(local or usable)
