"""The user-space link's rule for one direction (infra/impaired.py), with a hand-made clock."""

import pytest

from infra.impaired import Impairment


def test_a_clean_link_passes_everything_at_once() -> None:
    link = Impairment()
    assert [link.departure(t, 1200) for t in (1.0, 1.1, 1.2)] == [1.0, 1.1, 1.2]
    assert link.sent == 3 and link.lost == link.dropped == 0


def test_loss_is_near_its_rate_and_delay_and_jitter_never_reorder() -> None:
    link = Impairment(loss=0.03, delay_ms=50, jitter_ms=20, seed=7)
    out = [link.departure(i * 0.001, 1200) for i in range(20_000)]
    kept = [t for t in out if t is not None]
    assert 0.025 < link.lost / 20_000 < 0.035
    assert all(a < b for a, b in zip(kept, kept[1:], strict=False))  # strictly: timers due together fire in any order
    delays = [t - i * 0.001 for i, t in enumerate(out) if t is not None]
    assert min(delays) >= 0.05 and max(delays) <= 0.05 + 0.02 + 0.001


def test_a_rate_limit_queues_then_drops() -> None:
    link = Impairment(rate_kbps=1000, queue_ms=100)  # 1 Mbit/s: a 1250-byte packet takes 10 ms
    # 40 packets at once: the first ~11 fit the 100 ms queue, the rest are dropped
    out = [link.departure(0.0, 1250) for _ in range(40)]
    kept = [t for t in out if t is not None]
    assert kept[:3] == pytest.approx([0.01, 0.02, 0.03])
    assert len(kept) == 11 and link.dropped == 29
    # what it carries over a second is what the rate allows
    link = Impairment(rate_kbps=1000, queue_ms=100)
    carried = sum(1 for i in range(2000) if link.departure(i * 0.0005, 1250) is not None)  # 20 Mbit/s offered
    assert 100 <= carried <= 112  # 1 s at 1 Mbit/s = 100 packets, plus the queue's 10


def test_a_blackout_loses_everything_inside_it_only() -> None:
    link = Impairment(blackouts=[(10.0, 15.0)])
    assert link.departure(9.99, 100) == 9.99
    assert link.departure(10.0, 100) is None and link.departure(14.99, 100) is None
    assert link.departure(15.0, 100) == 15.0
    assert link.blacked_out == 2
