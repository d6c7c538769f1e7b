"""The deadline runner under the API's store: answers pass through, a silent call costs its deadline only."""

from __future__ import annotations

import threading
import time

import pytest

from graph.deadline import DeadlineExceededError, DeadlineRunner, TooManyStuckError


def test_values_and_errors_pass_through_and_threads_are_reused():
    runner = DeadlineRunner()
    assert [runner.call(lambda i=i: i * i, 1.0) for i in range(50)] == [i * i for i in range(50)]
    with pytest.raises(KeyError, match="missing"):
        runner.call(lambda: {}["missing"], 1.0)
    assert runner._threads == 1 and runner.stuck == 0   # one caller at a time: one worker, reused


def test_a_call_past_its_deadline_costs_the_deadline_and_ends_in_the_background():
    runner = DeadlineRunner()
    release, ended = threading.Event(), threading.Event()

    def silent() -> str:
        release.wait(30)
        ended.set()
        return "late"

    start = time.perf_counter()
    with pytest.raises(DeadlineExceededError, match=r"no answer within 0\.2 s"):
        runner.call(silent, 0.2)
    assert 0.2 <= time.perf_counter() - start < 2 and runner.stuck == 1
    assert runner.call(lambda: "meanwhile", 1.0) == "meanwhile"   # another worker serves the next call
    release.set()
    assert ended.wait(5)
    for _ in range(100):
        if runner.stuck == 0:
            break
        time.sleep(0.01)
    assert runner.stuck == 0 and runner.call(lambda: "after", 1.0) == "after"


def test_calls_are_refused_at_once_while_too_many_are_stuck():
    runner = DeadlineRunner(max_stuck=2)
    release = threading.Event()
    for _ in range(2):
        with pytest.raises(DeadlineExceededError):
            runner.call(lambda: release.wait(30), 0.05)
    start = time.perf_counter()
    with pytest.raises(TooManyStuckError, match="2 earlier calls"):
        runner.call(lambda: "never run", 10.0)
    assert time.perf_counter() - start < 0.5 and runner._threads == 2   # no thread was started for it
    release.set()
    deadline = time.monotonic() + 5
    while runner.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.call(lambda: "served again", 1.0) == "served again"


def test_concurrent_callers_each_get_their_own_answer():
    runner = DeadlineRunner()
    results: dict[int, int] = {}

    def caller(i: int) -> None:
        results[i] = runner.call(lambda: (time.sleep(0.01), i)[1], 5.0)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i for i in range(16)} and runner.stuck == 0 and runner._threads <= 16


def test_while_a_call_is_out_past_its_deadline_others_wait_the_shorter_wary_deadline():
    runner = DeadlineRunner()
    release = threading.Event()
    assert runner.call(lambda: "quick", 5.0, wary_s=0.1) == "quick"   # nothing out: the full deadline applies
    with pytest.raises(DeadlineExceededError, match=r"within 0\.3 s"):
        runner.call(lambda: release.wait(30), 0.3, wary_s=0.05)   # the first waits its full deadline
    start = time.perf_counter()
    with pytest.raises(DeadlineExceededError, match=r"within 0\.05 s"):
        runner.call(lambda: release.wait(30), 5.0, wary_s=0.05)
    assert time.perf_counter() - start < 1 and runner.stuck == 2
    assert runner.call(lambda: "answers still come", 5.0, wary_s=0.5) == "answers still come"
    release.set()
    deadline = time.monotonic() + 5
    while runner.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.stuck == 0
    assert runner.call(lambda: (time.sleep(0.2), "full again")[1], 5.0, wary_s=0.05) == "full again"


def test_a_forked_child_starts_its_own_workers():
    """A process forked after the runner's threads started (a server that builds its app before forking
    workers) has none of them: without its own, every call would wait out its deadline."""
    import multiprocessing

    runner = DeadlineRunner()
    assert runner.call(lambda: "parent", 1.0) == "parent" and runner._threads == 1

    def child(conn) -> None:
        try:
            conn.send(runner.call(lambda: "child", 2.0))
        except Exception as exc:  # reported to the parent, which fails the test with it
            conn.send(repr(exc))

    ours, theirs = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=child, args=(theirs,))
    proc.start()
    assert ours.poll(10) and ours.recv() == "child"
    proc.join(10)
    assert runner.call(lambda: "parent again", 1.0) == "parent again"

