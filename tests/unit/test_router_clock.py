"""Router core: time is an input.  The core reads only the Clock it is given
(wall time for writes and WELCOME, monotonic time for rate windows and timers)."""
from __future__ import annotations

import pytest

from clasp_fast.protocol import messages as M
from clasp_fast.router import Clock, ManualClock, Router, RouterConfig

from .test_router_support import Net, msgs, only


def test_welcome_time_and_write_timestamps_come_from_the_clock():
    net = Net()
    s = net.open()
    net.send(s, M.Hello(name="c"))
    welcome = msgs(s)[0]
    assert welcome.time == net.wall_us()
    net.advance(2.5)
    w = net.connect()
    net.set(w, "/t", 1)
    assert net.router.get("/t").timestamp == net.wall_us()


def test_the_rate_window_moves_with_the_monotonic_clock():
    net = Net(max_messages_per_second=3)
    s = net.connect()
    for _ in range(5):
        net.send(s, M.Ping())
    assert [type(m) for m in msgs(s)] == [M.Pong] * 3 + [M.Error]
    net.advance(0.5)                       # same window: still limited, no second 429
    net.send(s, M.Ping())
    assert msgs(s) == []
    net.advance(0.6)                       # a new window
    net.send(s, M.Ping())
    only(s, M.Pong)


def test_timers_run_on_the_clock():
    net = Net()
    fired = []
    net.router.call_later(1.0, fired.append, "x")
    assert net.router.next_deadline() == pytest.approx(net.now + 1.0)
    net.advance(0.9)
    assert fired == []
    net.advance(0.2)
    assert fired == ["x"]


def test_manual_clock_moves_only_forward():
    clock = ManualClock(10.0, 100.0)
    clock.advance(1.5)
    assert clock.monotonic() == 11.5 and clock() == 11.5
    assert clock.wall_time_us() == 101_500_000
    with pytest.raises(ValueError, match="negative"):
        clock.advance(-1)


def test_the_default_clock_is_the_system_clock_and_a_callable_is_refused():
    import time
    r = Router(RouterConfig())
    assert isinstance(r.clock, Clock) and not isinstance(r.clock, ManualClock)
    assert abs(r.clock.wall_time_us() - time.time_ns() // 1000) < 5_000_000
    with pytest.raises(TypeError, match="Clock"):
        Router(RouterConfig(), clock=time.monotonic)
