"""Per-subscriber bandwidth allocation: which layer of each video stream a subscriber gets.

Pure rules, no I/O. Adaptation is a brake, not a throttle: a subscriber gets every layer of every
stream until its receivers report loss clearly above ``LOSS_CONGESTED`` over the last second
(``LossMeter``, pooled over the subscriber's video streams: one link; "clearly": the lower bound
of its 99 % confidence interval, so that 3 % random loss over the few packets of a starting
stream is not read as 15 %; random loss of a few % is NACKs' work, not a reason to send less).
Then what got
through is spent on its video streams in priority order (a shared screen, then who came first),
audio first: each stream gets the highest temporal layer that fits, down to its base layer;
streams whose base layer does not fit are paused (the first one always keeps its base layer: the
person seen most keeps moving). After ``UP_AFTER_S`` without congestion a stream goes up one layer
(or resumes); a step that brings congestion back within ``PROBE_WINDOW_S`` failed, and the wait
before the next one doubles (up to ``MAX_UP_WAIT_S``): a link at its limit is probed rarely
instead of overflowing every few seconds. It goes down at once. One subscriber's budget changes
only what that subscriber is sent.

Loss comes late on a link with a deep queue: the queue fills first, for as long as it is deep,
and a step up that overflows it freezes the streams already moving. So while a step is on trial the
round trip is watched too (``DelayMeter``, from the receiver reports' LSR/DLSR against when the
sender reports they name left): a round trip ``QUEUE_DELAY_S`` above the least of the last
``DELAY_BASE_S`` means the link queues what it is sent, and the step is undone at once, before
anything is dropped (it failed, as if it had brought loss). Outside a trial the round trip only
holds off the next step. Measured here, round trips of pages on a busy machine rose by 50-270 ms
with no link in between (the pages were late to read and answer reports), and taking them as
congestion (sending 0.85 of what was sent, GCC's answer to overuse, to a subscriber that had shown
loss of late) drove the publishers of a thin-link meeting, in one run, down to 75-125 kbit/s for everybody: the
delay alone never lowers what anybody gets.

Receiver estimates (REMB) do not steer it: measured through the impaired link, browsers' receive
estimates under random loss and jitter sat at a third to a half of what they received intact.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from webmeeting.domain.ratelimit import TokenBuckets

PAUSED = -1
EVERY_LAYER = 1 << 8  # a stream held at nothing: whatever layers its publisher sends
AUDIO_BPS = 48_000  # reserved per stream with audio (Opus with headers, SRTP, RTCP)
HEADROOM = 0.9  # of the budget, for video
UP_AFTER_S = 3.0  # this long without congestion before a stream goes up one layer
# A receiver report's fraction lost above this: congestion (GCC's threshold: random loss of a
# few % is repaired by NACKs, not answered by sending less).
LOSS_CONGESTED = 0.10
LOSS_CONFIDENCE_Z = 2.33  # one-sided 99 %: congestion only when the loss is clearly above it
PROBE_WINDOW_S = 3.0  # congestion this soon after a step up: that step failed
MAX_UP_WAIT_S = 60.0  # the longest wait before trying a step up again


@dataclass(frozen=True)
class Offer:
    """One video stream a subscriber could get: ``rates[i]`` is its bit rate with layers 0..i
    (one entry when the publisher sends no temporal layers)."""

    key: Hashable
    priority: float  # higher first
    rates: Sequence[float]
    audio: bool = True


class Loss(NamedTuple):
    """Packets lost of those expected over a window (one stream's, or a link's pooled)."""

    lost: int
    expected: int

    @property
    def fraction(self) -> float:
        return min(1.0, max(0.0, self.lost / self.expected)) if self.expected > 0 else 0.0

    def lower_bound(self, z: float = LOSS_CONFIDENCE_Z) -> float:
        """The Wilson score interval's lower end: the least loss these counts make likely."""
        n, p = self.expected, self.fraction
        if n <= 0:
            return 0.0
        centre = p + z * z / (2 * n)
        spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, (centre - spread) / (1 + z * z / n))


def pooled(losses: Sequence[Loss]) -> Loss | None:
    """One link's loss from its streams' (they cross the same bottleneck)."""
    if not losses:
        return None
    return Loss(sum(x.lost for x in losses), sum(x.expected for x in losses))


def congested(loss: Loss | None) -> bool:
    """Whether a subscriber's link shows congestion: loss clearly above ``LOSS_CONGESTED``."""
    return loss is not None and loss.lower_bound() > LOSS_CONGESTED


def budget(loss: Loss | None, sending_bps: float) -> float:
    """What a congested link can take: what got through of what was sent."""
    return sending_bps * (1 - (loss.fraction if loss else 0.0))


LAST_N = 9  # camera videos a subscriber gets at most: the most recent speakers (audio: everybody's)
SPAN_AFTER = 15  # a room's people on its home worker before the next go to other workers (``mcu_vm.span``)
SCREEN_PRIORITY = 1e12  # a shared screen goes before any camera, and is not counted in the last N
SPEAKING_DBOV = 30  # an audio level (RFC 6464, -dBov) at or under this is speech (speech: -20 to -30) ...
SPEECH_WINDOW_S = 1.0  # ... and a person speaks when this last second held ...
SPEECH_MIN_PACKETS = 10  # ... this many such packets (0.2 s of speech in 20 ms packets: not a click)


class SpeechDetector:
    """When a publisher last spoke, from its packets' audio levels: enough loud packets within
    a second (a cough, a click or a beep does not move a person into anybody's last N)."""

    def __init__(self) -> None:
        self._loud: collections.deque[float] = collections.deque(maxlen=SPEECH_MIN_PACKETS)
        self.spoke_at: float | None = None

    def add(self, level: int, now: float) -> None:
        if level > SPEAKING_DBOV:
            return
        self._loud.append(now)
        if len(self._loud) == SPEECH_MIN_PACKETS and now - self._loud[0] <= SPEECH_WINDOW_S:
            self.spoke_at = now


def beyond_last_n(offers: Sequence[Offer], spoke_at: dict[Hashable, float | None], n: int = LAST_N) -> set[Hashable]:
    """The camera videos past the ``n`` most recent speakers, then those who have not spoken in
    the order of ``offers``' priority (who came first); shared screens are not counted. The
    link's own order (``allocate``) stays the offers' priority: who speaks changes often."""
    cameras = [o for o in offers if o.priority < SCREEN_PRIORITY]
    cameras.sort(key=lambda o: -o.priority)
    cameras.sort(key=lambda o: -(spoke_at.get(o.key) or float("-inf")))  # stable: the silent keep their order
    return {o.key for o in cameras[max(0, n) :]}


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
    after a calm period that doubles with each step that failed; a step whose trial shows the
    link's queue filling is undone at once."""

    current: dict[Hashable, int] = field(default_factory=dict)
    calm_since: float | None = None
    failures: int = 0  # steps up in a row that brought congestion back
    stepped_at: float | None = None  # the last step up, until it held for PROBE_WINDOW_S
    stepped: tuple[Hashable, int] | None = None  # which stream that step raised, and from what
    undone: int = 0  # steps undone for the queue they filled

    def wait(self) -> float:
        return min(MAX_UP_WAIT_S, UP_AFTER_S * 2**self.failures)

    def on_trial(self, now: float) -> bool:
        """A step up was made less than ``PROBE_WINDOW_S`` ago."""
        return self.stepped_at is not None and now - self.stepped_at < PROBE_WINDOW_S

    def apply(
        self, wanted: dict[Hashable, int] | None, now: float, full: dict[Hashable, int], queueing: bool = False
    ) -> dict[Hashable, int]:
        """``wanted``: ``allocate``'s layers when congested, None when not. ``full``: each
        stream's top layer, most important first (new streams start at their top).
        ``queueing``: a fresh round trip showed the link's queue filling."""
        for key in list(self.current):
            if key not in full:
                del self.current[key]
        for key in full:
            # a new stream gets every layer it will have, not just those its publisher sent so
            # far (a stream's first frames may carry no layers yet); a layer missing from the top
            # for a while (an encoder that skipped frames) does not hold the subscriber below it
            self.current.setdefault(key, EVERY_LAYER)
        on_trial = self.on_trial(now)
        if wanted is not None:
            if on_trial:
                self.failures += 1  # that step was too much
            self.stepped_at = self.stepped = None
            self.calm_since = None
            for key, layer in wanted.items():
                self.current[key] = min(self.current.get(key, layer), layer, full.get(key, layer))
            return self._within(full)
        if queueing:
            if on_trial and self.stepped is not None and self.stepped[0] in self.current:
                key, before = self.stepped
                self.current[key] = min(self.current[key], before)  # the step filled the queue: undone
                self.failures += 1
                self.undone += 1
                self.stepped_at = self.stepped = None
            self.calm_since = now  # no step up while the link queues
            return self._within(full)
        if self.stepped_at is not None and now - self.stepped_at >= PROBE_WINDOW_S:
            self.failures, self.stepped_at, self.stepped = 0, None, None  # it held
        if self.calm_since is None:
            self.calm_since = now
        elif now - self.calm_since >= self.wait():
            self.calm_since = now
            for key, top in full.items():  # the most important stream below its top: one layer up
                if self.current[key] < top:
                    self.stepped = (key, self.current[key])
                    self.current[key] += 1
                    self.stepped_at = now
                    break
        return self._within(full)

    def _within(self, full: dict[Hashable, int]) -> dict[Hashable, int]:
        return {key: min(self.current[key], top) for key, top in full.items()}


LOSS_WINDOW_S = 1.0  # loss is measured over at least this long ...
LOSS_MIN_EXPECTED = 20  # ... and at least this many packets
LOSS_MAX_SAMPLES = 64  # reports kept (browsers send a few to some tens a second)


class LossMeter:
    """A receiver's loss over the last second or so, from its reports' cumulative counters
    (highest sequence number, packets lost). Not a report's own fraction: browsers send a report
    with every NACK, over the few packets since the last one (one lost of two reads as 50 %)."""

    def __init__(self) -> None:
        # (time, extended highest sequence, cumulative lost); bounded: a receiver flooding reports
        # shortens its own window below LOSS_WINDOW_S (then no figure) and costs nothing more
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=LOSS_MAX_SAMPLES)
        self.loss: Loss | None = None

    def add(self, now: float, highest_sequence: int, cumulative_lost: int) -> Loss | None:
        """The loss over the window this report closes, or None when it says too little."""
        if self._samples and highest_sequence < self._samples[-1][1]:
            if self._samples[-1][1] - highest_sequence < 1 << 15:
                return None  # an older report that arrived late (reports cross a jittery link too)
            self._samples.clear()  # the counters restarted (a new source)
        self._samples.append((now, highest_sequence, cumulative_lost))
        while len(self._samples) > 1 and now - self._samples[1][0] >= LOSS_WINDOW_S:
            self._samples.popleft()  # keep the newest sample at least a window old as the base
        then, seq0, lost0 = self._samples[0]
        expected = highest_sequence - seq0
        if now - then < LOSS_WINDOW_S or expected < LOSS_MIN_EXPECTED:
            return None  # too little to say (a stream just started, or paused): no fresh figure
        self.loss = Loss(min(expected, max(0, cumulative_lost - lost0)), expected)
        return self.loss


QUEUE_DELAY_S = 0.05  # a round trip this much above the link's least: its queue is filling
DELAY_BASE_S = 10.0  # the least round trip of this long is the link's own (no queue)
DELAY_MAX_SAMPLES = 64  # round trips kept (a report or two a second; a flood shortens the window)


def round_trip(now: float, sent_at: float, dlsr: int) -> float | None:
    """Seconds from a receiver report: now, minus when the sender report it names (LSR) left,
    minus how long the receiver held that report (DLSR, in 1/65536 s). None when the figure
    cannot be a round trip (negative, or absurd)."""
    rtt = now - sent_at - dlsr / 65536
    return rtt if 0.0 <= rtt < 10.0 else None


class DelayMeter:
    """A receiver's round trips: the newest against the least of the last ``DELAY_BASE_S``.
    Each report is read once (``take``): adaptation rounds come faster than reports."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=DELAY_MAX_SAMPLES)
        self._fresh: float | None = None

    def add(self, now: float, rtt: float) -> None:
        self._samples.append((now, rtt))
        while self._samples and now - self._samples[0][0] > DELAY_BASE_S:
            self._samples.popleft()
        self._fresh = rtt - min(r for _, r in self._samples)

    def take(self) -> float | None:
        """The newest report's queueing delay (its round trip above the least), once."""
        fresh, self._fresh = self._fresh, None
        return fresh


PUBLISH_MIN_BPS = 150_000  # what a publisher is never asked to go below (its base layer keeps moving)
PUBLISH_MAX_BPS = {"camera": 2_500_000, "screen": 4_000_000}  # what it is asked for when nobody is constrained
CONSTRAINED_FOR_S = 10.0  # a subscriber that was congested this recently still caps what publishers send


def shares(budget_bps: float, offers: Sequence[Offer]) -> dict[Hashable, float]:
    """What each stream could have of a congested subscriber's budget, in priority order (audio
    first): what is left once the streams before it got theirs whole. A publisher that sends no
    more than this reaches this subscriber with every layer."""
    left = (budget_bps - AUDIO_BPS * sum(1 for o in offers if o.audio)) * HEADROOM
    out: dict[Hashable, float] = {}
    for offer in sorted(offers, key=lambda o: -o.priority):
        out[offer.key] = max(0.0, left)
        left -= min(offer.rates[-1] if offer.rates else 0.0, max(0.0, left))
    return out


def publisher_target(source: str, caps: Sequence[float | None]) -> float:
    """The bit rate to ask of one publisher: enough for its best-placed subscriber. ``caps``: per
    subscriber, its share of this stream (``shares``) while constrained, None when it takes all."""
    top = PUBLISH_MAX_BPS.get(source, PUBLISH_MAX_BPS["camera"])
    if not caps or any(c is None for c in caps):
        return top
    return max(PUBLISH_MIN_BPS, min(top, max(c for c in caps if c is not None)))


# What one publisher may send the MCU, whatever it was asked (a client that ignores the REMB, or
# floods): over this its packets are dropped before anything reads them, so that one participant
# cannot make the MCU forward N x its flood. Twice what it is ever asked for, a second of it as a
# burst (a screen's keyframe); packets bounded too (a flood of tiny packets costs per packet).
INGRESS_OVER_ASKED = 2.0
INGRESS_BURST_S = 1.0
INGRESS_MAX_BPS = {"audio": 256_000} | {source: INGRESS_OVER_ASKED * bps for source, bps in PUBLISH_MAX_BPS.items()}
INGRESS_MAX_PPS = {"audio": 200, "camera": 1_000, "screen": 1_500}  # Opus: 50-100/s; video at 4 Mbit/s: ~400/s


class IngressBudget:
    """One publisher's token buckets (``TokenBuckets``, one key), in bits and in packets."""

    def __init__(self, bps: float, pps: float) -> None:
        self.bps, self.pps = bps, pps
        self._bits = TokenBuckets(bps, bps * INGRESS_BURST_S, max_keys=1)
        self._packets = TokenBuckets(pps, pps * INGRESS_BURST_S, max_keys=1)
        self.dropped = 0

    @classmethod
    def of(cls, kind: str, source: str) -> IngressBudget:
        key = "audio" if kind == "audio" else source
        return cls(INGRESS_MAX_BPS.get(key, INGRESS_MAX_BPS["camera"]), INGRESS_MAX_PPS.get(key, INGRESS_MAX_PPS["camera"]))

    def admit(self, size: int, now: float) -> bool:
        """Whether a packet of ``size`` bytes is within the budget (and spend it)."""
        if self._packets.allow("", now) and self._bits.allow("", now, size * 8):
            return True
        self.dropped += 1
        return False


PACE_OVER_SENDING = 2.0  # a constrained subscriber's video is paced at no less than this x what it is sent
PACE_BURST_S = 0.01  # a packet may leave this much ahead of its paced time (no sleep for less)


@dataclass
class Pacer:
    """One subscriber's link as the MCU sends into it: while it is constrained (``rate_bps``
    set), its video packets leave no faster than that rate, so a keyframe (many times a delta
    frame) is spread over the link instead of overflowing its queue at once; audio never waits."""

    rate_bps: float | None = None
    free_at: float = 0.0  # when the link is free of what was already sent

    def reserve(self, now: float, size: int) -> float:
        """Seconds a packet of ``size`` bytes waits before it leaves (0: at once)."""
        if self.rate_bps is None or self.rate_bps <= 0:
            return 0.0
        start = max(now, self.free_at)
        self.free_at = start + size * 8 / self.rate_bps
        wait = start - now
        return wait if wait > PACE_BURST_S else 0.0


def pace_rate(link_bps: float, sending_bps: float) -> float:
    """The rate to pace a constrained subscriber at: what its link took, and never below twice
    what it is now sent: a keyframe's backlog drains within a fraction of a second, and a low
    reading of the link cannot build a queue in the MCU."""
    return max(link_bps, PACE_OVER_SENDING * sending_bps)
