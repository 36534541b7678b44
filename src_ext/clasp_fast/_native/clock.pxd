# Time as an input to the router core: one clock pair, injected.
#
# The core never reads the system clocks itself: it asks its Clock.  `wall_us`
# is the server time written into params and WELCOME; `mono_s` drives TTL-free
# intervals (rate limits, 429/503 notices) and the timers.  The methods are
# cdef (a C call through the vtable, no Python call on the hot path), so a test
# can subclass Clock (ManualClock) and step time instead of sleeping.

from libc.stdint cimport uint64_t


cdef class Clock:
    cdef uint64_t wall_us(self) noexcept          # wall clock, µs since the Unix epoch
    cdef double mono_s(self) noexcept             # monotonic clock, seconds


cdef class ManualClock(Clock):
    cdef public double mono
    cdef public double wall
