"""DeadlineWatch: many waits with deadlines on one lazily re-armed timer."""

from __future__ import annotations

import asyncio

import pytest

from harmony_dimse.net.errors import DicomTimeout
from harmony_dimse.net.link import Channel, DeadlineWatch


async def test_only_the_late_wait_times_out() -> None:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    short: asyncio.Future[None] = loop.create_future()
    long: asyncio.Future[None] = loop.create_future()
    watch.add(long, 5.0, "long wait")
    watch.add(short, 0.05, "short wait")
    with pytest.raises(DicomTimeout) as caught:
        await short
    assert "short wait" in str(caught.value)
    assert not long.done()
    watch.discard(long)
    watch.close()


async def test_a_finished_wait_never_times_out_and_the_timer_rearms() -> None:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop)
    first: asyncio.Future[None] = loop.create_future()
    watch.add(first, 0.03, "first")
    first.set_result(None)
    watch.discard(first)
    second: asyncio.Future[None] = loop.create_future()
    watch.add(second, 0.08, "second")
    await asyncio.sleep(0.05)  # the timer fired for "first", found nothing due, re-armed
    assert not second.done()
    with pytest.raises(DicomTimeout):
        await second


async def test_channel_wait_times_out_calls_on_timeout_and_names_the_context() -> None:
    loop = asyncio.get_running_loop()
    aborted: list[bool] = []
    channel = Channel(loop, lambda: aborted.append(True), DeadlineWatch(loop))
    with pytest.raises(DicomTimeout) as caught:
        await channel.get(0.02, "waiting for the C-ECHO response")
    assert caught.value.timer == "dimse"
    assert "C-ECHO" in str(caught.value)
    assert aborted == [True]


def test_a_deadline_fires_once_even_on_a_millisecond_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    fired = 0
    real_fire = DeadlineWatch._fire

    def counting_fire(self: DeadlineWatch) -> None:
        nonlocal fired
        fired += 1
        real_fire(self)

    monkeypatch.setattr(DeadlineWatch, "_fire", counting_fire)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        watch = DeadlineWatch(loop)
        for timeout in (0.0503, 0.0207, 0.0311):
            waiter: asyncio.Future[None] = loop.create_future()
            watch.add(waiter, timeout, "wait")
            with pytest.raises(DicomTimeout):
                await waiter

    uvloop.run(scenario())
    assert fired <= 6  # once per expiry, give or take an early wake; not a spin of hundreds
