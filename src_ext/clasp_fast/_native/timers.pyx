"""Timers of the router core: a heap of deadlines on the core's monotonic clock.

The core never sleeps: it tells the I/O edge its earliest deadline
(``on_timer``) and the edge calls ``run_due`` when that time has come.  A test
steps a ManualClock and calls ``run_due`` itself.
"""
import heapq


cdef class TimerQueue:
    """Deadlines in seconds of the monotonic clock; entries ``[deadline, seq, fn, args]``."""

    def __cinit__(self):
        self.heap = []

    def add(self, double deadline, fn, tuple args):
        """Runs ``fn(*args)`` at ``deadline``; returns a handle for ``cancel``."""
        entry = [deadline, self.seq, fn, args]
        self.seq += 1
        heapq.heappush(self.heap, entry)
        if self.heap[0] is entry and self.on_earliest is not None:
            self.on_earliest(deadline)
        return entry

    @staticmethod
    def cancel(entry):
        entry[2] = None

    def next_deadline(self):
        """The earliest pending deadline, or None."""
        while self.heap and self.heap[0][2] is None:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def run_due(self, double now):
        """Runs every timer whose deadline is at or before ``now``, earliest first."""
        while self.heap and self.heap[0][0] <= now:
            entry = heapq.heappop(self.heap)
            fn = entry[2]
            if fn is not None:
                fn(*entry[3])
