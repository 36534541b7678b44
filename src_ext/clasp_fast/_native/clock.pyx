"""The clock the router core reads time from (see clock.pxd).

``Clock()`` reads the system clocks (CLOCK_REALTIME, CLOCK_MONOTONIC);
``ManualClock`` only moves when told to (``advance``), for tests and
simulations.  Calling a clock returns its monotonic time in seconds, so a
clock is also the monotonic callable the timers and the I/O edge use.
"""
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME, CLOCK_MONOTONIC


cdef class Clock:
    """The system clocks."""

    cdef uint64_t wall_us(self) noexcept:
        cdef timespec ts
        clock_gettime(CLOCK_REALTIME, &ts)
        return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>(ts.tv_nsec // 1000)

    cdef double mono_s(self) noexcept:
        cdef timespec ts
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec + ts.tv_nsec * 1e-9

    def monotonic(self) -> float:
        """Monotonic time in seconds."""
        return self.mono_s()

    def wall_time_us(self) -> int:
        """Wall-clock time in microseconds since the Unix epoch."""
        return self.wall_us()

    def __call__(self) -> float:
        return self.mono_s()


cdef class ManualClock(Clock):
    """A clock that moves only by ``advance``: both readings step together."""

    def __init__(self, double monotonic=1000.0, double wall=1_800_000_000.0):
        self.mono = monotonic
        self.wall = wall

    cdef uint64_t wall_us(self) noexcept:
        return <uint64_t>(self.wall * 1e6)

    cdef double mono_s(self) noexcept:
        return self.mono

    def advance(self, double seconds):
        """Moves both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; advance({seconds}) is negative")
        self.mono += seconds
        self.wall += seconds
