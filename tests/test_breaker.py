"""The API store's circuit breaker (graph/breaker.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from graph.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(cooldown_s=5.0, slow_s=3.0, clock=clock)


def _open(breaker: CircuitBreaker) -> None:
    assert breaker.admit() == (True, 0.0, False)
    breaker.failed(10.0, TimeoutError("silent"), trial=False)


def test_fast_failures_never_open_it(breaker):
    for _ in range(50):   # a refused connection, a stale pooled connection after a restart
        assert breaker.admit() == (True, 0.0, False)
        breaker.failed(0.01, ConnectionRefusedError(), trial=False)
    assert not breaker.is_open and breaker.rejected == 0


def test_a_slow_failure_fails_the_calls_after_it_at_once_until_the_cooldown(breaker, clock):
    _open(breaker)
    assert breaker.is_open and breaker.cause == "TimeoutError"
    clock.t += 2.0
    assert breaker.admit() == (False, 3.0, False)
    clock.t += 2.9
    go, wait, _ = breaker.admit()
    assert not go and wait == pytest.approx(0.1)
    assert breaker.rejected == 2


def test_after_the_cooldown_one_trial_at_a_time_and_its_success_closes_it(breaker, clock):
    _open(breaker)
    clock.t += 5.0
    assert breaker.admit() == (True, 0.0, True)
    assert breaker.admit() == (False, 0.0, False)   # the trial is out: the others still fail at once
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.admit() == (True, 0.0, False)


def test_a_failed_trial_opens_it_again_even_when_it_failed_fast(breaker, clock):
    _open(breaker)
    clock.t += 6.0
    assert breaker.admit()[2]
    breaker.failed(0.01, ConnectionRefusedError(), trial=True)
    assert breaker.is_open and breaker.cause == "ConnectionRefusedError"
    assert breaker.admit() == (False, 5.0, False)   # a whole cooldown from the trial's failure
    clock.t += 5.0
    assert breaker.admit() == (True, 0.0, True)


def test_a_call_let_through_before_it_opened_does_not_take_the_trials_place(breaker, clock):
    assert breaker.admit() == (True, 0.0, False)    # two calls go out, both into a stalled server
    assert breaker.admit() == (True, 0.0, False)
    breaker.failed(10.0, TimeoutError(), trial=False)   # the first opens it
    clock.t += 5.0
    assert breaker.admit() == (True, 0.0, True)     # the trial goes out
    breaker.failed(15.0, TimeoutError(), trial=False)   # the second fails late: changes nothing
    assert breaker.admit() == (False, 0.0, False)   # the trial is still the only one out
    breaker.succeeded()
    assert not breaker.is_open


def test_a_success_of_any_call_closes_it(breaker, clock):
    _open(breaker)
    breaker.succeeded()   # a call admitted before it opened came back with an answer: the server is there
    assert breaker.admit() == (True, 0.0, False)


@pytest.mark.parametrize("cooldown, slow", [(0.0, 1.0), (-1.0, 1.0), (5.0, -0.1)])
def test_nonsense_settings_are_refused_with_their_values(cooldown, slow):
    with pytest.raises(ValueError, match=str(cooldown)):
        CircuitBreaker(cooldown_s=cooldown, slow_s=slow)


def test_only_the_api_store_has_one_built_from_the_settings(tmp_path):
    from graph.connect import open_store
    from pymk.settings import Settings

    env = {"PYMK_DATA_DIR": str(tmp_path), "PYMK_NEO4J_CONNECT_TIMEOUT_S": "2", "PYMK_NEO4J_BREAKER_COOLDOWN_S": "7"}
    stores = [open_store(Settings.from_env(env), for_requests=True), open_store(Settings.from_env(env)),
              open_store(Settings.from_env({**env, "PYMK_NEO4J_BREAKER_COOLDOWN_S": "0"}), for_requests=True)]
    try:   # the driver connects lazily: nothing here needs a server
        api, batch, off = (s._breaker for s in stores)
        assert api.cooldown_s == 7.0 and api.slow_s == pytest.approx(1.8)
        assert batch is None and off is None
    finally:
        for s in stores:
            s.close()
