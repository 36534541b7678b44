"""Per-subscription delivery gates: ``maxRate`` and ``epsilon`` (PROTOCOL.md).

A subscription with either option gets a ``SubscriptionGate``; the router asks
it, per matching message, whether to deliver.  State is kept per (subscription,
address), so a ``/mixer/*/fader`` subscription with ``maxRate: 30`` gets up to
30 updates per second of *each* fader.

* ``maxRate`` n: at most n deliveries per second; a message that comes too soon
  is held (latest wins) and delivered when the interval ends.
* ``epsilon`` e: a numeric SET whose value differs by less than e from the last
  value delivered is skipped.
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

    def admit(self, router, target, address: bytes, frame: bytes, number: Optional[float]) -> bool:
        """True: deliver ``frame`` (a WebSocket frame) to ``target`` now."""
        st = self.states.get(address)
        if st is None:
            st = self.states[address] = _AddressState()
        if self.epsilon and number is not None and st.last_value is not None \
                and abs(number - st.last_value) < self.epsilon:
            return False
        if self.interval:
            now = router.clock()
            if now - st.last_sent < self.interval:
                st.pending = frame
                if number is not None:
                    st.last_value = number
                if st.timer is None:
                    st.timer = router.call_later(st.last_sent + self.interval - now,
                                                 self._flush, router, target, st)
                return False
            st.last_sent = now
        if number is not None:
            st.last_value = number
        return True

    def _flush(self, router, target, st: _AddressState) -> None:
        st.timer = None
        if st.pending is not None and not target.closed:
            frame, st.pending = st.pending, None
            st.last_sent = router.clock()
            router.push_frame(target, frame)

    def close(self, router) -> None:
        for st in self.states.values():
            if st.timer is not None:
                router.cancel_timer(st.timer)
        self.states.clear()
