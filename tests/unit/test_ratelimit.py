from webmeeting.domain.ratelimit import TokenBuckets


def test_burst_then_refill_per_key() -> None:
    b = TokenBuckets(rate=2, burst=3)
    assert [b.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert b.allow("b", 0.0)  # other clients have their own bucket
    assert not b.allow("a", 0.4)  # 0.8 tokens
    assert b.allow("a", 0.5)  # 1 token after 0.5 s at 2/s
    assert [b.allow("a", 100.0) for _ in range(4)] == [True, True, True, False]  # never more than burst
