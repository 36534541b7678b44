# Timers of the router core (declarations; see timers.pyx).


cdef class TimerQueue:
    cdef list heap
    cdef unsigned long long seq
    cdef public object on_earliest      # called with a new earliest deadline
