"""Connection limits and the failed-HELLO throttle, shared by every worker process.

The supervisor maps the table (``MAP_SHARED | MAP_ANONYMOUS``) before it forks
the workers, so every worker sees the same bytes.  A worker admits a
connection only while holding the table's spinlock (an atomic
compare-and-swap), so the limits are exact even when a connection storm hits
all workers at once.

Counts are kept per worker ("shares"): the total is the sum of the shares, an
IP's count the sum of its per-worker counts.  When a worker dies, the
supervisor takes its share back with ``reclaim(worker)``; it also breaks the
lock if the dead worker held it.  nginx's ``limit_conn`` shared zone is the
model.
"""
import ipaddress

from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t, uint64_t
from libc.string cimport memcmp, memcpy, memset
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS, MAP_FAILED

from clasp_fast.limits import refusal_text

cdef extern from "sched.h":
    int sched_yield() nogil

cdef extern from *:
    """
    static inline int cf_trylock(volatile unsigned int* l, unsigned int me) {
        unsigned int expected = 0;
        return __atomic_compare_exchange_n(l, &expected, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    }
    static inline void cf_unlock(volatile unsigned int* l) {
        __atomic_store_n(l, 0, __ATOMIC_RELEASE);
    }
    static inline unsigned int cf_load(volatile unsigned int* l) {
        return __atomic_load_n(l, __ATOMIC_ACQUIRE);
    }
    static inline int cf_cas(volatile unsigned int* l, unsigned int expected, unsigned int desired) {
        return __atomic_compare_exchange_n(l, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
    """
    int cf_trylock(volatile uint32_t* l, uint32_t me) nogil
    void cf_unlock(volatile uint32_t* l) nogil
    uint32_t cf_load(volatile uint32_t* l) nogil
    int cf_cas(volatile uint32_t* l, uint32_t expected, uint32_t desired) nogil

cdef enum:
    MAXW = 64


cdef void* _map_shared(size_t size, str what) except NULL:
    """``size`` zeroed bytes shared with the processes forked after this call."""
    cdef void* mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
    if mem == MAP_FAILED:
        raise MemoryError(f"cannot map the shared {what} table")
    memset(mem, 0, size)
    return mem


cdef void _unmap(void* mem, size_t size) noexcept:
    if mem != NULL and mem != MAP_FAILED:
        munmap(mem, size)

cdef struct Header:
    uint32_t lock           # 0 = free, else (worker index + 1) of the holder
    uint32_t nworkers
    uint32_t nslots
    int64_t max_total       # 0 = unlimited
    int64_t max_per_ip      # 0 = unlimited
    int64_t share[MAXW]     # connections each worker has admitted and not released

cdef struct Slot:
    uint8_t used            # the slot has been given to an IP (chains end at unused slots)
    uint8_t addr_len
    uint8_t addr[16]
    int32_t count[MAXW]


cdef class SharedLimits:
    """``max_connections`` and ``max_connections_per_ip`` across all workers.

    Same interface as ``clasp_fast.limits.LocalLimits``: ``try_admit(ip)``
    returns None (admitted and counted) or the reason for refusing;
    ``release(ip)`` gives the slot back."""

    cdef void* mem
    cdef size_t size
    cdef Header* h
    cdef Slot* slots
    cdef readonly int worker

    def __cinit__(self, int64_t max_connections, int64_t max_connections_per_ip, int nworkers,
                  int nslots=16384):
        if not 1 <= nworkers <= MAXW:
            raise ValueError(f"workers = {nworkers}: at most {MAXW} workers share one limits table")
        self.size = sizeof(Header) + nslots * sizeof(Slot)
        self.mem = _map_shared(self.size, "connection-limits")
        self.h = <Header*>self.mem
        self.slots = <Slot*>(<char*>self.mem + sizeof(Header))
        self.h.nworkers = nworkers
        self.h.nslots = nslots
        self.h.max_total = max_connections
        self.h.max_per_ip = max_connections_per_ip
        self.worker = 0

    def __dealloc__(self):
        _unmap(self.mem, self.size)

    def bind(self, int worker):
        """In a worker process after the fork: count this process's connections as ``worker``."""
        if not 0 <= worker < self.h.nworkers:
            raise ValueError(f"worker {worker} out of range 0..{self.h.nworkers - 1}")
        self.worker = worker

    cdef void _lock(self) noexcept nogil:
        cdef uint32_t me = self.worker + 1
        cdef int spins = 0
        while not cf_trylock(&self.h.lock, me):
            spins += 1
            if spins > 64:
                sched_yield()

    cdef void _unlock(self) noexcept nogil:
        cf_unlock(&self.h.lock)

    cdef Slot* _slot(self, const uint8_t* a, uint8_t n, bint create) noexcept nogil:
        cdef uint32_t i, start, k, w
        cdef Slot* s
        cdef Slot* reuse = NULL
        cdef int64_t total
        start = <uint32_t>(_ip_hash(a, n) % self.h.nslots)
        for k in range(self.h.nslots):
            i = (start + k) % self.h.nslots
            s = &self.slots[i]
            if not s.used:
                if not create:
                    return NULL
                if reuse == NULL:
                    reuse = s
                break
            if s.addr_len == n and memcmp(s.addr, a, n) == 0:
                return s
            if create and reuse == NULL:
                total = 0
                for w in range(self.h.nworkers):
                    total += s.count[w]
                if total == 0:
                    reuse = s           # a free slot inside the chain: safe to take over
        if reuse != NULL:
            memset(reuse, 0, sizeof(Slot))
            reuse.used = 1
            reuse.addr_len = n
            memcpy(reuse.addr, a, n)
        return reuse

    cdef int64_t _total(self) noexcept nogil:
        cdef int64_t t = 0
        cdef uint32_t w
        for w in range(self.h.nworkers):
            t += self.h.share[w]
        return t

    cdef int64_t _ip_count(self, Slot* s) noexcept nogil:
        cdef int64_t t = 0
        cdef uint32_t w
        if s == NULL:
            return 0
        for w in range(self.h.nworkers):
            t += s.count[w]
        return t

    def try_admit(self, str ip):
        """Admits and counts a connection from ``ip``, or returns why not."""
        cdef bytes a = _packed(ip)
        cdef const uint8_t* ap = a
        cdef uint8_t an = len(a)
        cdef Slot* s
        cdef int verdict = 0
        with nogil:
            self._lock()
            if self.h.max_total and self._total() >= self.h.max_total:
                verdict = 1
            else:
                s = self._slot(ap, an, True)
                if s == NULL:
                    verdict = 3
                elif self.h.max_per_ip and self._ip_count(s) >= self.h.max_per_ip:
                    verdict = 2
                else:
                    s.count[self.worker] += 1
                    self.h.share[self.worker] += 1
            self._unlock()
        if verdict == 0:
            return None
        if verdict == 1:
            return refusal_text("total", self.h.max_total, ip)
        if verdict == 2:
            return refusal_text("ip", self.h.max_per_ip, ip)
        return (f"connection limit table full ({self.h.nslots} client IPs): try again later")

    def release(self, str ip):
        """A connection this worker admitted from ``ip`` has closed."""
        cdef bytes a = _packed(ip)
        cdef const uint8_t* ap = a
        cdef uint8_t an = len(a)
        cdef Slot* s
        with nogil:
            self._lock()
            s = self._slot(ap, an, False)
            if s != NULL and s.count[self.worker] > 0:
                s.count[self.worker] -= 1
            if self.h.share[self.worker] > 0:
                self.h.share[self.worker] -= 1
            self._unlock()

    def reclaim(self, int worker):
        """Supervisor: ``worker`` died; its connections no longer count.  Breaks the lock
        if the dead worker held it."""
        cdef uint32_t i
        cdef uint32_t me = self.worker + 1
        if not 0 <= worker < self.h.nworkers:
            return
        cf_cas(&self.h.lock, worker + 1, 0)     # the dead process can no longer release it
        with nogil:
            self._lock()
            self.h.share[worker] = 0
            for i in range(self.h.nslots):
                if self.slots[i].used:
                    self.slots[i].count[worker] = 0
            self._unlock()

    def count(self, str ip=None):
        """Connections counted now, in total or for ``ip``."""
        cdef bytes a = _packed(ip) if ip is not None else b""
        cdef const uint8_t* ap = a
        cdef uint8_t an = len(a)
        cdef int64_t n
        cdef bint total = ip is None
        with nogil:
            self._lock()
            n = self._total() if total else self._ip_count(self._slot(ap, an, False))
            self._unlock()
        return n

    def shares(self):
        """Connections counted per worker."""
        return [self.h.share[w] for w in range(self.h.nworkers)]


cdef inline uint64_t _ip_hash(const uint8_t* a, uint8_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL          # FNV-1a
    cdef uint8_t k
    for k in range(n):
        h = (h ^ a[k]) * 1099511628211ULL
    return h


cdef struct HelloHeader:
    uint32_t lock           # 0 = free, else (worker index + 1) of the holder
    uint32_t nslots
    uint32_t max_failures   # 0 = never block
    double window           # seconds over which failures are counted
    double block            # seconds an IP is refused once it has max_failures

cdef struct HelloSlot:
    uint8_t used
    uint8_t addr_len
    uint8_t addr[16]
    uint32_t failures       # in the window that ends at window_end
    double window_end
    double blocked_until


cdef class FailedHellos:
    """Failed HELLOs (bad token) per client IP, shared by every worker: an IP with
    ``max_failures`` within ``window`` seconds is refused for ``block`` seconds.

    Same scheme as ``SharedLimits``: one anonymous shared mapping made before the
    workers fork, changed only under its spinlock.  Times are ``time.monotonic()``
    seconds (one clock for every process of the machine), passed in by the caller.
    A full table forgets nothing it holds: new IPs are then not tracked (fail open)."""

    cdef void* mem
    cdef size_t size
    cdef HelloHeader* h
    cdef HelloSlot* slots
    cdef readonly int worker

    def __cinit__(self, uint32_t max_failures, double window, double block, int nslots=4096):
        self.size = sizeof(HelloHeader) + nslots * sizeof(HelloSlot)
        self.mem = _map_shared(self.size, "failed-HELLO")
        self.h = <HelloHeader*>self.mem
        self.slots = <HelloSlot*>(<char*>self.mem + sizeof(HelloHeader))
        self.h.nslots = nslots
        self.h.max_failures = max_failures
        self.h.window = window
        self.h.block = block

    def __dealloc__(self):
        _unmap(self.mem, self.size)

    def bind(self, int worker):
        """In a worker process after the fork (so a dead holder's lock can be broken)."""
        self.worker = worker

    def reclaim(self, int worker):
        """Supervisor: ``worker`` died; break the lock if it held it."""
        cf_cas(&self.h.lock, worker + 1, 0)

    cdef void _lock(self) noexcept nogil:
        cdef int spins = 0
        while not cf_trylock(&self.h.lock, self.worker + 1):
            spins += 1
            if spins > 64:
                sched_yield()

    cdef HelloSlot* _slot(self, const uint8_t* a, uint8_t n, bint create, double now) noexcept nogil:
        cdef uint32_t i, k
        cdef uint32_t start = <uint32_t>(_ip_hash(a, n) % self.h.nslots)
        cdef HelloSlot* s
        cdef HelloSlot* reuse = NULL
        for k in range(self.h.nslots):
            i = (start + k) % self.h.nslots
            s = &self.slots[i]
            if not s.used:
                if create and reuse == NULL:
                    reuse = s
                break
            if s.addr_len == n and memcmp(s.addr, a, n) == 0:
                return s
            if create and reuse == NULL and s.window_end <= now and s.blocked_until <= now:
                reuse = s           # a stale slot inside the chain: safe to take over
        if reuse != NULL and create:
            memset(reuse, 0, sizeof(HelloSlot))
            reuse.used = 1
            reuse.addr_len = n
            memcpy(reuse.addr, a, n)
            return reuse
        return NULL

    def blocked_for(self, str ip, double now):
        """Seconds ``ip`` stays refused (0.0: it may connect)."""
        cdef bytes a = _packed(ip)
        cdef const uint8_t* ap = a
        cdef uint8_t an = len(a)
        cdef HelloSlot* s
        cdef double left = 0.0
        if self.h.max_failures == 0:
            return 0.0
        with nogil:
            self._lock()
            s = self._slot(ap, an, False, now)
            if s != NULL and s.blocked_until > now:
                left = s.blocked_until - now
            cf_unlock(&self.h.lock)
        return left

    def failed(self, str ip, double now):
        """Counts a failed HELLO from ``ip``; True when ``ip`` is refused from now on."""
        cdef bytes a = _packed(ip)
        cdef const uint8_t* ap = a
        cdef uint8_t an = len(a)
        cdef HelloSlot* s
        cdef bint blocked = False
        if self.h.max_failures == 0:
            return False
        with nogil:
            self._lock()
            s = self._slot(ap, an, True, now)
            if s != NULL:
                if s.window_end <= now:
                    s.failures = 0
                    s.window_end = now + self.h.window
                s.failures += 1
                if s.failures >= self.h.max_failures:
                    s.failures = 0
                    s.window_end = now
                    s.blocked_until = now + self.h.block
                    blocked = True
            cf_unlock(&self.h.lock)
        return blocked


cdef bytes _packed(str ip):
    try:
        return ipaddress.ip_address(ip).packed
    except ValueError:
        return ip.encode()[:16]
