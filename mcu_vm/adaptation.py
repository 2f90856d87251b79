"""Per-subscriber bandwidth allocation: which layer of each video stream a subscriber gets.

Pure rules, no I/O. Adaptation is a brake, not a throttle: a subscriber gets every layer of every
stream until its receiver shows congestion (``congested``: loss in its reports, or an estimate
(REMB) well below what it is sent). Then its budget (the estimate, or what got through) is spent
on its video streams in priority order (a shared screen, then who came first), audio first: each
stream gets the highest temporal layer that fits, down to its base layer; streams whose base
layer does not fit are paused (the first one always keeps its base layer: the person seen most
keeps moving). Without congestion for ``UP_AFTER_S`` a stream goes up one layer (or resumes);
it goes down at once. One subscriber's budget changes only what that subscriber is sent.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

PAUSED = -1
AUDIO_BPS = 48_000  # reserved per stream with audio (Opus with headers, SRTP, RTCP)
HEADROOM = 0.9  # of the budget, for video
UP_AFTER_S = 3.0  # this long without congestion before a stream goes up one layer
LOSS_CONGESTED = 0.04  # a receiver report's fraction lost above this: congestion
ESTIMATE_CONGESTED = 0.7  # an estimate below this share of what is sent: congestion


@dataclass(frozen=True)
class Offer:
    """One video stream a subscriber could get: ``rates[i]`` is its bit rate with layers 0..i
    (one entry when the publisher sends no temporal layers)."""

    key: Hashable
    priority: float  # higher first
    rates: Sequence[float]
    audio: bool = True


def congested(estimate_bps: float | None, loss: float | None, sending_bps: float) -> bool:
    """Whether a subscriber's link shows congestion: reports of loss, or an estimate that fell
    well below what it is sent (the caller passes no estimate until it has once caught up with
    what is sent: browsers start theirs low and raise it slowly)."""
    if loss is not None and loss > LOSS_CONGESTED:
        return True
    return estimate_bps is not None and sending_bps > 0 and estimate_bps < ESTIMATE_CONGESTED * sending_bps


def budget(estimate_bps: float | None, loss: float | None, sending_bps: float) -> float:
    """What a congested link can take: the estimate, or what got through of what was sent."""
    through = sending_bps * (1 - (loss or 0.0))
    return min(estimate_bps, through) if estimate_bps is not None else through


def allocate(budget_bps: float, offers: Sequence[Offer]) -> dict[Hashable, int]:
    """The layer per stream (``PAUSED``: none) for ``budget_bps``, before any holding rule."""
    left = budget_bps - AUDIO_BPS * sum(1 for o in offers if o.audio)
    left *= HEADROOM
    out: dict[Hashable, int] = {}
    for i, offer in enumerate(sorted(offers, key=lambda o: -o.priority)):
        layer = PAUSED
        for candidate in range(len(offer.rates) - 1, -1, -1):
            if offer.rates[candidate] <= left:
                layer = candidate
                break
        if layer == PAUSED and i == 0 and offer.rates:
            layer = 0  # the first stream keeps moving, whatever it costs
        if layer != PAUSED:
            left -= offer.rates[layer]
        out[offer.key] = layer
    return out


@dataclass
class Holder:
    """The layers one subscriber gets: down at once when congested, up one layer per stream
    after ``UP_AFTER_S`` without congestion."""

    current: dict[Hashable, int] = field(default_factory=dict)
    calm_since: float | None = None

    def apply(self, wanted: dict[Hashable, int] | None, now: float, full: dict[Hashable, int]) -> dict[Hashable, int]:
        """``wanted``: ``allocate``'s layers when congested, None when not. ``full``: each
        stream's top layer, most important first (new streams start at their top)."""
        for key in list(self.current):
            if key not in full:
                del self.current[key]
        for key, top in full.items():
            self.current.setdefault(key, top)
            self.current[key] = min(self.current[key], top)
        if wanted is not None:
            self.calm_since = None
            for key, layer in wanted.items():
                self.current[key] = min(self.current.get(key, layer), layer)
            return dict(self.current)
        if self.calm_since is None:
            self.calm_since = now
        elif now - self.calm_since >= UP_AFTER_S:
            self.calm_since = now
            for key, top in full.items():  # the most important stream below its top: one layer up
                if self.current[key] < top:
                    self.current[key] += 1
                    break
        return dict(self.current)
