"""The query gate (issue 16): a bounded pool, a bounded queue, a deadline that
covers the wait, cancellation that really stops the work, and shutdown."""
import asyncio
import threading
import time

import pytest

from collector import cancel
from collector.query.errors import Timeout, Unavailable, Unprocessable
from collector.query.gate import QueryGate


def spin(seconds: float):
    """A pure-Python loop that checks its token, as the engine's loops do."""
    def fn():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cancel.check()
        return "done"
    return fn


def test_runs_off_the_event_loop_and_returns():
    gate = QueryGate(max_concurrent=2)

    async def main():
        loop_thread = threading.get_ident()
        return await gate.run(lambda: threading.get_ident() != loop_thread)

    assert asyncio.run(main()) is True


def test_over_its_timeout_a_query_stops_soon_after_the_deadline():
    gate = QueryGate(max_concurrent=1, timeout_s=0.3)

    async def main():
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            await gate.run(spin(30))
        return time.monotonic() - t0

    assert asyncio.run(main()) < 3.0   # not 30: stopped at its next check (a low-priority thread, a loaded CI)


def test_beyond_the_queue_queries_are_refused_at_once_and_queued_ones_wait_until_their_deadline():
    gate = QueryGate(max_concurrent=1, max_queued=1, timeout_s=3)

    async def main():
        running = asyncio.ensure_future(gate.run(spin(1.0)))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(gate.run(lambda: "late", timeout_s=0.3))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="too many queries"):
            await gate.run(lambda: "refused")
        refused_after = time.monotonic() - t0
        with pytest.raises(Timeout, match="query queue"):   # its deadline passed while it waited
            await queued
        assert await running == "done"
        return refused_after

    assert asyncio.run(main()) < 0.1


def test_the_api_timeout_parameter_shortens_but_never_extends():
    gate = QueryGate(timeout_s=0.2)
    assert gate.token(10).deadline - time.monotonic() < 0.3
    assert gate.token(0.05).deadline - time.monotonic() < 0.1


def test_close_cancels_running_and_queued_queries_and_refuses_new_ones():
    gate = QueryGate(max_concurrent=1, max_queued=5, timeout_s=30)

    async def main():
        running = asyncio.ensure_future(gate.run(spin(30)))
        queued = asyncio.ensure_future(gate.run(lambda: "never"))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        gate.close()
        for f in (running, queued):
            with pytest.raises(Unavailable):
                await f
        with pytest.raises(Unavailable, match="shutting down"):
            await gate.run(lambda: 1)
        return time.monotonic() - t0

    assert asyncio.run(main()) < 0.5


def test_a_sample_budget_refuses_with_422_and_memory_above_the_soft_limit_with_the_reason():
    gate = QueryGate(max_samples=1000, timeout_s=5)
    over_memory = QueryGate(timeout_s=5, memory_ok=lambda: False)

    async def main():
        with pytest.raises(Unprocessable, match="too many samples"):
            await gate.run(lambda: [cancel.charge(600) for _ in range(2)])
        with pytest.raises(Unprocessable, match="memory soft limit"):
            await over_memory.run(lambda: cancel.check_memory())

    asyncio.run(main())


def test_the_watchdog_interrupts_work_that_cannot_check_itself():
    token = cancel.Token(timeout_s=0.2)
    interrupted = threading.Event()
    with token.interrupts(interrupted.set):
        assert interrupted.wait(2), "the deadline passed and the interrupt hook was not called"
    assert token.reason == cancel.TIMEOUT


def test_the_answer_comes_at_the_deadline_even_when_the_thread_cannot_check_and_its_slot_waits_for_it():
    """A thread starved of CPU (or in a call that cannot check) does not hold up the
    answer; its slot is given back only when it has unwound, so at most
    max_concurrent queries ever run."""
    gate = QueryGate(max_concurrent=1, max_queued=4, timeout_s=5)

    async def main():
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            await gate.run(lambda: time.sleep(1.5), timeout_s=0.3)   # never checks its token
        answered = time.monotonic() - t0
        assert gate.running == 1                      # the thread is still busy
        t1 = time.monotonic()
        assert await gate.run(lambda: "next") == "next"
        return answered, time.monotonic() - t1

    answered, waited = asyncio.run(main())
    assert answered < 1.0
    assert waited > 0.5   # it got the slot only when the first thread was free
