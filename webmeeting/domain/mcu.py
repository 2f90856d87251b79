"""Choosing a PBX's MCU (pure): the closest active MCU, by great-circle distance, that has
capacity left (policy: "PBX - MCU Geolocation").

Capacity and load are counted in forwarded streams (one publisher's audio or video to one
subscriber), what an MCU's CPU and uplink are spent on: people cost very different amounts (a
meeting of 10 forwards 180 streams, a meeting of 2 forwards 4)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

EARTH_RADIUS_KM = 6371.0088  # mean radius
TIE_KM = 1.0  # MCUs closer together than this are equally close: the less loaded wins


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Mcu:
    id: str
    region: str
    url: str
    status: str  # active | deprecated | unavailable
    capacity: int  # forwarded streams it takes
    load: int  # forwarded streams it has
    latitude: float = 0.0
    longitude: float = 0.0

    @property
    def location(self) -> Location:
        return Location(self.latitude, self.longitude)

    @property
    def usable(self) -> bool:
        """Takes new participants: active and not full."""
        return self.status == "active" and self.load < self.capacity

    def takes(self, streams: int) -> bool:
        """Alive, with room for ``streams`` more (a running meeting's next person)."""
        return self.status != "unavailable" and self.load + streams <= self.capacity


STREAMS_PER_PERSON = 2  # what one person publishes: audio and camera


def streams_for_join(present: int) -> int:
    """The forwarded streams a person joining ``present`` others adds: what they receive of
    each of them and what each of them receives of theirs."""
    return 2 * STREAMS_PER_PERSON * max(0, present)


def meeting_streams(people: int) -> int:
    """The forwarded streams of a meeting of ``people``: each receives everybody else's."""
    return STREAMS_PER_PERSON * people * max(0, people - 1)


class NoMcuAvailable(Exception):
    """No MCU can take the PBX; the message says why."""


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rank_mcus(where: Location, mcus: Iterable[Mcu]) -> list[Mcu]:
    """Usable MCUs, closest first; within ``TIE_KM`` the less loaded (relative), then by id."""

    def key(m: Mcu) -> tuple[float, float, str]:
        return (round(distance_km(where, m.location) / TIE_KM), m.load / max(m.capacity, 1), m.id)

    return sorted((m for m in mcus if m.usable), key=key)


def choose_mcu(where: Location, mcus: Iterable[Mcu]) -> Mcu:
    """The closest usable MCU; ``NoMcuAvailable`` says why there is none."""
    mcus = list(mcus)
    ranked = rank_mcus(where, mcus)
    if ranked:
        return ranked[0]
    if not mcus:
        raise NoMcuAvailable("no MCU is registered")
    states = sorted({"full" if m.status == "active" else m.status for m in mcus})
    raise NoMcuAvailable(f"no MCU can take more participants ({', '.join(states)})")


# --- the MCU registry: who may speak as which MCU ---------------------------------------------


class RegisteredMcu(BaseModel):
    """One MCU as the platform's configuration knows it (production: terraform, from the
    instance groups and their static addresses; locally: the launcher). A heartbeat speaks for
    this id only, with exactly this URL and region, at this location, up to this capacity.

    Exactly one credential: ``account`` (production: the email of the service account whose
    Google-signed ID token, naming this instance, the MCU presents) or ``secret_sha256`` (local:
    the SHA-256 hex of the MCU's own secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    url: str = Field(pattern=r"^wss?://[^\s/]+/\S*$", max_length=300)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    capacity: int = Field(ge=0, le=100_000)
    # the TURN server that runs with this MCU (coturn: UDP 3478, TLS 443); empty: none
    turn_urls: list[Annotated[str, Field(pattern=r"^turns?:[A-Za-z0-9.:\[\]_-]+(\?transport=(udp|tcp))?$", max_length=200)]] = (
        Field(default_factory=list, max_length=4)
    )
    account: str = Field(default="", max_length=200)
    secret_sha256: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")

    @model_validator(mode="after")
    def _one_credential(self) -> RegisteredMcu:
        if bool(self.account) == bool(self.secret_sha256):
            raise ValueError("an MCU has exactly one credential: account or secret_sha256")
        return self


MCU_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_REGISTRY = TypeAdapter(dict[Annotated[str, Field(pattern=MCU_ID_PATTERN)], RegisteredMcu])


def parse_registry(text: str) -> dict[str, RegisteredMcu]:
    """The registry's JSON (``{mcu_id: {...}}``); raises ValueError when malformed."""
    try:
        return _REGISTRY.validate_json(text or "{}")
    except ValidationError as exc:
        raise ValueError(f"the MCU registry is malformed: {exc.error_count()} errors") from None
