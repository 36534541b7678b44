"""Per-subscription delivery gates: ``maxRate`` and ``epsilon`` (docs/protocol.md).

A subscription with either option gets a ``SubscriptionGate``.  State is kept
per (subscription, address), so a ``/mixer/*/fader`` subscription with
``maxRate: 30`` gets up to 30 updates per second of *each* fader.

* ``maxRate`` n: at most n deliveries per second; a message that comes too soon
  is held (latest wins) and delivered when the interval ends.
* ``epsilon`` e: a numeric SET whose value differs by less than e from the last
  value delivered is skipped.

A session whose several gated subscriptions match one message still gets it at
most once: ``admit`` decides for all of them together.
"""
from __future__ import annotations

from typing import Optional


class _AddressState:
    __slots__ = ("last_sent", "last_value", "pending", "timer")

    def __init__(self):
        self.last_sent = float("-inf")
        self.last_value: Optional[float] = None
        self.pending: Optional[bytes] = None
        self.timer = None


class SubscriptionGate:
    def __init__(self, max_rate: Optional[int], epsilon: Optional[float]):
        self.interval = 1.0 / max_rate if max_rate else 0.0
        self.epsilon = epsilon if epsilon else 0.0
        self.states: dict[bytes, _AddressState] = {}

    @classmethod
    def from_options(cls, options) -> Optional["SubscriptionGate"]:
        if options is None or not (options.max_rate or options.epsilon):
            return None
        return cls(options.max_rate, options.epsilon)

    def _state(self, address: bytes) -> _AddressState:
        st = self.states.get(address)
        if st is None:
            st = self.states[address] = _AddressState()
        return st

    def _skips(self, st: _AddressState, number: Optional[float]) -> bool:
        return bool(self.epsilon) and number is not None and st.last_value is not None \
            and abs(number - st.last_value) < self.epsilon

    def _wait(self, st: _AddressState, now: float) -> float:
        return max(0.0, st.last_sent + self.interval - now) if self.interval else 0.0

    def _cancel(self, router, st: _AddressState) -> None:
        st.pending = None
        if st.timer is not None:
            router.cancel_timer(st.timer)
            st.timer = None

    def _flush(self, router, target, address: bytes, st: _AddressState) -> None:
        st.timer = None
        if st.pending is not None and not target.closed:
            frame, st.pending = st.pending, None
            st.last_sent = router.clock()
            router.push_frame(target, frame)

    def close(self, router) -> None:
        for st in self.states.values():
            self._cancel(router, st)
        self.states.clear()


def admit(router, target, subs, address: bytes, frame: bytes, number: Optional[float]) -> bool:
    """Decides, for one receiver whose gated subscriptions ``subs`` match a message,
    whether to deliver ``frame`` now (True), hold it for a trailing delivery, or skip it."""
    now = router.clock()
    open_now, waiting = [], []
    for sub in subs:
        gate = sub.gate
        st = gate._state(address)
        if gate._skips(st, number):
            continue
        wait = gate._wait(st, now)
        (open_now if wait == 0.0 else waiting).append((wait, gate, st))
    if not open_now and not waiting:
        return False
    for _, gate, st in open_now + waiting:
        gate._cancel(router, st)        # whatever was held is now stale
        if number is not None:
            st.last_value = number
    if open_now:
        for _, gate, st in open_now:
            st.last_sent = now
        return True
    wait, gate, st = min(waiting, key=lambda w: w[0])
    st.pending = frame
    st.timer = router.call_later(wait, gate._flush, router, target, address, st)
    return False
