"""Choosing a PBX's default MCU (pure).

Issue 4 brings geolocation and great-circle distance; until then the choice is: an active MCU
with capacity left in the PBX's region, else any active one, least loaded first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Mcu:
    id: str
    region: str
    url: str
    status: str  # active | deprecated | unavailable
    capacity: int
    load: int


def choose_mcu(region: str, mcus: Iterable[Mcu]) -> Mcu | None:
    """The MCU for a PBX located in ``region``, or None when no MCU can take it."""
    usable = [m for m in mcus if m.status == "active" and m.load < m.capacity]
    if not usable:
        return None
    return min(usable, key=lambda m: (m.region != region, m.load / max(m.capacity, 1), m.id))
