"""Gesture `move` throttling (docs/protocol.md, "gesture coalescing" row).

At most one ``move`` per interval per (session, address, gesture id) goes out;
a move that arrives sooner is held, replacing any held one, and the held move
is sent when the interval ends (a throttle with a trailing flush, not the
reference's debounce, which starves fast streams).  ``start``, ``end`` and
``cancel`` always pass at once; a held move is sent just before them, so the
order a subscriber sees is the order the sender sent.
"""
from __future__ import annotations

MOVE = 1
START = 0


class _Track:
    __slots__ = ("last", "pending", "timer")

    def __init__(self, last: float):
        self.last = last
        self.pending = None   # payload bytes of the held move
        self.timer = None


class GestureThrottle:
    def __init__(self, router, interval_s: float):
        self.router = router
        self.interval = interval_s
        self.tracks: dict = {}   # session -> {(address bytes, id): _Track}

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def admit(self, session, payload: bytes, address: bytes, gesture_id: int, phase: int) -> bool:
        """True: route this PUBLISH now.  False: it is held (or replaced a held one)."""
        key = (address, gesture_id)
        per_session = self.tracks.get(session)
        if phase != MOVE:
            track = per_session.get(key) if per_session else None
            if track is not None:
                self._flush(session, track)
                if phase != START:
                    self._forget(session, key, track)
            return True
        now = self.router.clock()
        if per_session is None:
            per_session = self.tracks[session] = {}
        track = per_session.get(key)
        if track is None:
            per_session[key] = _Track(now)
            return True
        if track.pending is None and now - track.last >= self.interval:
            track.last = now
            return True
        track.pending = payload
        if track.timer is None:
            track.timer = self.router.call_later(
                max(0.0, track.last + self.interval - now), self._on_timer, session, track)
        return False

    def _on_timer(self, session, track: _Track) -> None:
        track.timer = None
        if track.pending is not None and not session.closed:
            self._flush(session, track)

    def _flush(self, session, track: _Track) -> None:
        if track.timer is not None:
            self.router.cancel_timer(track.timer)
            track.timer = None
        if track.pending is not None:
            payload, track.pending = track.pending, None
            track.last = self.router.clock()
            self.router.forward_publish(session, payload)

    def _forget(self, session, key, track: _Track) -> None:
        per_session = self.tracks.get(session)
        if per_session is not None:
            per_session.pop(key, None)
            if not per_session:
                del self.tracks[session]

    def drop_session(self, session) -> None:
        for track in (self.tracks.pop(session, None) or {}).values():
            if track.timer is not None:
                self.router.cancel_timer(track.timer)
