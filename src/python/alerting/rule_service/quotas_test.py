import pytest

from alerting.rule_service.quotas import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_then_one_request_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 10  # refills up to the burst, not beyond
    assert [limiter.acquire("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_keys_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_the_least_recently_used_bucket_goes_when_there_are_too_many() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock(), max_keys=2)
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("a")  # b is now the least recently used
    limiter.acquire("c")
    assert limiter.acquire("b") == 0.0  # forgotten: a full bucket again
    assert limiter.acquire("c") > 0


def test_a_limit_that_admits_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1, clock=Clock())


def test_wait_says_when_a_token_is_free_and_takes_none() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=2, clock=clock)
    assert limiter.wait("never seen") == 0.0
    limiter.acquire("a")
    assert limiter.wait("a") == 0.0 and limiter.wait("a") == 0.0  # one token left, still there
    limiter.acquire("a")
    assert limiter.wait("a") == pytest.approx(0.5)
    clock.now += 0.25
    assert limiter.wait("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.wait("a") == 0.0 and limiter.acquire("a") == 0.0
