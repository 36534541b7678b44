"""Address and pattern syntax, the one segment matcher, and the subscription trie.

The trie is modelled on NATS' ``sublist``: one node per pattern segment, with
separate edges for literals (a hash map), ``*``, ``**`` and in-segment globs.
Matching an address walks it once and returns a ``MatchList`` (one entry per
receiver); callers cache that list per address and recompute it when
``Trie.gen`` moves on.
"""
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memcmp, memcpy

from clasp_fast._native.bytesmap cimport (BytesMap, bm_init, bm_free, bm_get, bm_put, bm_del,
                                         bm_hash)


# --- addresses and patterns ----------------------------------------------------

cdef inline int _split(const char* p, Py_ssize_t n, Seg* segs, bint allow_wild) noexcept nogil:
    cdef Py_ssize_t i = 1, start
    cdef int count = 0
    cdef bint star
    if n < 1 or p[0] != b'/':
        return ADDR_NO_SLASH
    while i < n:
        start = i
        star = False
        while i < n and p[i] != b'/':
            if p[i] == b'*':
                star = True
            i += 1
        if i == start:
            return ADDR_EMPTY_SEGMENT
        if star and not allow_wild:
            return ADDR_WILDCARD
        if count >= MAX_SEGMENTS:
            return ADDR_TOO_DEEP
        segs[count].pos = start
        segs[count].len = i - start
        if not star:
            segs[count].kind = SEG_LITERAL
        elif i - start == 1:
            segs[count].kind = SEG_STAR
        elif i - start == 2 and p[start] == b'*' and p[start + 1] == b'*':
            segs[count].kind = SEG_GLOBSTAR
        else:
            segs[count].kind = SEG_GLOB
        count += 1
        if i == n - 1:          # trailing '/'
            break
        i += 1
    return count


cdef int split_address(const char* p, Py_ssize_t n, Seg* segs) noexcept nogil:
    return _split(p, n, segs, False)


cdef int split_pattern(const char* p, Py_ssize_t n, Seg* segs) noexcept nogil:
    return _split(p, n, segs, True)


cdef str address_error(int code, str kind, str text):
    if code == ADDR_NO_SLASH:
        return f"invalid {kind} {text!r}: it must start with '/'"
    if code == ADDR_EMPTY_SEGMENT:
        return f"invalid {kind} {text!r}: empty segment ('//'); segments are separated by one '/'"
    if code == ADDR_TOO_DEEP:
        return f"invalid {kind} {text!r}: more than {MAX_SEGMENTS} segments"
    if code == ADDR_WILDCARD:
        return (f"invalid {kind} {text!r}: '*' is a wildcard and only allowed in "
                f"subscription and query patterns")
    return f"invalid {kind} {text!r}"


def check_address(str address):
    """None if ``address`` is a valid CLASP address, else the error text (ERROR 202)."""
    cdef bytes b = address.encode()
    cdef Seg segs[MAX_SEGMENTS]
    cdef int n = split_address(b, len(b), segs)
    return address_error(n, "address", address) if n < 0 else None


def check_pattern(str pattern):
    """None if ``pattern`` is a valid subscription pattern, else the error text."""
    cdef bytes b = pattern.encode()
    cdef Seg segs[MAX_SEGMENTS]
    cdef int n = split_pattern(b, len(b), segs)
    return address_error(n, "pattern", pattern) if n < 0 else None


cdef bint _glob(const char* p, Py_ssize_t pn, const char* s, Py_ssize_t sn) noexcept nogil:
    # '*' matches any run of characters (segments contain no '/')
    cdef Py_ssize_t pi = 0, si = 0, star_p = -1, star_s = 0
    while si < sn:
        if pi < pn and p[pi] == b'*':
            star_p = pi
            star_s = si
            pi += 1
        elif pi < pn and p[pi] == s[si]:
            pi += 1
            si += 1
        elif star_p >= 0:
            pi = star_p + 1
            star_s += 1
            si = star_s
        else:
            return False
    while pi < pn and p[pi] == b'*':
        pi += 1
    return pi == pn


cdef bint seg_match(const char* pat, Seg* ps, const char* addr, Seg* a) noexcept nogil:
    if ps.kind == SEG_STAR or ps.kind == SEG_GLOBSTAR:
        return True
    if ps.kind == SEG_LITERAL:
        return ps.len == a.len and memcmp(pat + ps.pos, addr + a.pos, a.len) == 0
    return _glob(pat + ps.pos, ps.len, addr + a.pos, a.len)


def matches(str pattern, str address):
    """Whether ``pattern`` matches ``address`` (both must be valid; else ValueError)."""
    cdef bytes pb = pattern.encode(), ab = address.encode()
    cdef Seg ps[MAX_SEGMENTS]
    cdef Seg as_[MAX_SEGMENTS]
    cdef int np = split_pattern(pb, len(pb), ps)
    cdef int na = split_address(ab, len(ab), as_)
    if np < 0:
        raise ValueError(address_error(np, "pattern", pattern))
    if na < 0:
        raise ValueError(address_error(na, "address", address))
    return Pattern(pattern).matches(ab, as_, na)


# --- subscriptions -------------------------------------------------------------

cdef class Subscription:
    """One SUBSCRIBE of one receiver: id, pattern, type mask, optional gate."""

    def __cinit__(self, object target, uint32_t id, str pattern, uint8_t mask=0xFF, gate=None):
        self.target = target
        self.id = id
        self.pattern = pattern
        self.mask = 0xFF if mask == 0 else mask
        self.gate = gate
        self.pat = pattern.encode()
        self.nseg = split_pattern(self.pat, len(self.pat), self.segs)
        if self.nseg < 0:
            raise ValueError(address_error(self.nseg, "pattern", pattern))

    def __repr__(self):
        return f"Subscription(id={self.id}, pattern={self.pattern!r}, mask=0x{self.mask:02x})"


cdef void matchlist_free(MatchList* ml) noexcept:
    cdef Py_ssize_t i
    if ml == NULL:
        return
    for i in range(ml.n):
        if ml.entries[i].gated != NULL:
            Py_DECREF(<object>ml.entries[i].gated)
    free(ml.entries)
    free(ml)


# --- the trie -------------------------------------------------------------------

cdef Node* _node_new() except NULL:
    cdef Node* n = <Node*>calloc(1, sizeof(Node))
    if n == NULL:
        raise MemoryError()
    return n


cdef void _node_free(Node* n) noexcept:
    """Frees a node whose subtree holds no subscription."""
    cdef Py_ssize_t i
    if n == NULL:
        return
    if n.children.slots != NULL:
        for i in range(n.children.mask + 1):
            if n.children.slots[i].key != NULL:
                _node_free(<Node*>n.children.slots[i].value)
        bm_free(&n.children)
    _node_free(n.star)
    _node_free(n.globstar)
    for i in range(n.nglobs):
        _node_free(<Node*>n.globs[i].node)
        free(n.globs[i].pat)
    free(n.globs)
    for i in range(n.nsubs):
        Py_DECREF(<object>n.subs[i])
    free(n.subs)
    free(n.key)
    free(n)


cdef Node* _child(Node* n, const char* pat, Seg* s, bint create) except? NULL:
    cdef Node* c
    cdef uint64_t h
    cdef int i
    cdef GlobEdge* g
    if s.kind == SEG_STAR:
        if n.star == NULL and create:
            n.star = _node_new()
        return n.star
    if s.kind == SEG_GLOBSTAR:
        if n.globstar == NULL and create:
            n.globstar = _node_new()
        return n.globstar
    if s.kind == SEG_GLOB:
        for i in range(n.nglobs):
            if n.globs[i].len == s.len and memcmp(n.globs[i].pat, pat + s.pos, s.len) == 0:
                return <Node*>n.globs[i].node
        if not create:
            return NULL
        g = <GlobEdge*>realloc(n.globs, (n.nglobs + 1) * sizeof(GlobEdge))
        if g == NULL:
            raise MemoryError()
        n.globs = g
        g = &n.globs[n.nglobs]
        g.pat = <char*>malloc(s.len + 1)
        memcpy(g.pat, pat + s.pos, s.len)
        g.len = s.len
        g.node = _node_new()
        n.nglobs += 1
        return <Node*>g.node
    h = bm_hash(pat + s.pos, s.len)
    if n.children.slots != NULL:
        c = <Node*>bm_get(&n.children, pat + s.pos, s.len, h)
        if c != NULL or not create:
            return c
    elif not create:
        return NULL
    else:
        bm_init(&n.children, 4)
    c = _node_new()
    c.key = <char*>malloc(s.len + 1)
    memcpy(c.key, pat + s.pos, s.len)
    c.klen = s.len
    bm_put(&n.children, c.key, c.klen, h, c)
    return c


cdef void _unlink_child(Node* n, Node* c) noexcept:
    cdef int i
    if n.star == c:
        n.star = NULL
    elif n.globstar == c:
        n.globstar = NULL
    elif c.key != NULL and n.children.slots != NULL:
        bm_del(&n.children, c.key, c.klen, bm_hash(c.key, c.klen))
    else:
        for i in range(n.nglobs):
            if n.globs[i].node == <void*>c:
                free(n.globs[i].pat)
                n.globs[i] = n.globs[n.nglobs - 1]
                n.nglobs -= 1
                break
    _node_free(c)


cdef int _cmp_target(const void* a, const void* b) noexcept nogil:
    cdef size_t tx = (<Found*>a).target
    cdef size_t ty = (<Found*>b).target
    return -1 if tx < ty else (1 if tx > ty else 0)


cdef class Trie:
    """Every subscription of every receiver, indexed by pattern segment."""

    def __cinit__(self):
        self.root = _node_new()
        self.gen = 1
        self.count = 0
        self.capfound = 64
        self.found = <Found*>malloc(self.capfound * sizeof(Found))
        if self.found == NULL:
            raise MemoryError()

    def __dealloc__(self):
        _node_free(self.root)
        free(self.found)

    cdef int add(self, Subscription sub) except -1:
        cdef Node* n = self.root
        cdef int i
        cdef PyObject** subs
        n.total += 1
        for i in range(sub.nseg):
            n = _child(n, sub.pat, &sub.segs[i], True)
            n.total += 1
        if n.nsubs == n.capsubs:
            n.capsubs = n.capsubs * 2 if n.capsubs else 2
            subs = <PyObject**>realloc(n.subs, n.capsubs * sizeof(PyObject*))
            if subs == NULL:
                raise MemoryError()
            n.subs = subs
        Py_INCREF(sub)
        n.subs[n.nsubs] = <PyObject*>sub
        n.nsubs += 1
        self.count += 1
        self.gen += 1
        return 0

    cdef bint remove(self, Subscription sub) except -1:
        cdef Node* path[MAX_SEGMENTS + 1]
        cdef Node* n = self.root
        cdef int i, depth
        cdef Py_ssize_t j
        path[0] = n
        for i in range(sub.nseg):
            n = _child(n, sub.pat, &sub.segs[i], False)
            if n == NULL:
                return False
            path[i + 1] = n
        for j in range(n.nsubs):
            if n.subs[j] == <PyObject*>sub:
                break
        else:
            return False
        n.subs[j] = n.subs[n.nsubs - 1]
        n.nsubs -= 1
        for depth in range(sub.nseg + 1):
            path[depth].total -= 1
        # prune the deepest empty nodes
        for depth in range(sub.nseg, 0, -1):
            if path[depth].total == 0:
                _unlink_child(path[depth - 1], path[depth])
                break
        Py_DECREF(sub)
        self.count -= 1
        self.gen += 1
        return True

    cdef int _found(self, Node* n) except -1:
        cdef Py_ssize_t i
        cdef Found* f
        if self.nfound + n.nsubs > self.capfound:
            while self.nfound + n.nsubs > self.capfound:
                self.capfound *= 2
            f = <Found*>realloc(self.found, self.capfound * sizeof(Found))
            if f == NULL:
                raise MemoryError()
            self.found = f
        for i in range(n.nsubs):
            f = &self.found[self.nfound + i]
            f.sub = n.subs[i]
            f.target = <size_t><PyObject*>(<Subscription>n.subs[i]).target
        self.nfound += n.nsubs
        return 0

    cdef int _walk(self, Node* n, const char* addr, Seg* segs, int i, int nseg, bint first) except -1:
        """The one matcher: collects the subscriptions of every node that segments
        ``i``.. of the address reach from ``n``.  ``first``: stop (return 1) at the first
        node with subscriptions instead (``reaches``, ``Pattern.matches``)."""
        cdef Node* c
        cdef int j
        cdef Seg* s
        cdef Seg gp
        if n.globstar != NULL:
            # `**`: zero or more segments, so the rest of the pattern is tried from every
            # position i..nseg
            for j in range(i, nseg + 1):
                if self._walk(n.globstar, addr, segs, j, nseg, first):
                    return 1
        if i == nseg:
            if n.nsubs:
                if first:
                    return 1
                self._found(n)
            return 0
        s = &segs[i]
        if n.children.slots != NULL:
            c = <Node*>bm_get(&n.children, addr + s.pos, s.len, bm_hash(addr + s.pos, s.len))
            if c != NULL and self._walk(c, addr, segs, i + 1, nseg, first):
                return 1
        if n.star != NULL and self._walk(n.star, addr, segs, i + 1, nseg, first):
            return 1
        for j in range(n.nglobs):
            gp.pos = 0
            gp.len = n.globs[j].len
            gp.kind = SEG_GLOB
            if seg_match(n.globs[j].pat, &gp, addr, s) and \
                    self._walk(<Node*>n.globs[j].node, addr, segs, i + 1, nseg, first):
                return 1
        return 0

    cdef bint reaches(self, const char* addr, Seg* segs, int nseg) except -1:
        """Whether any subscription matches ``addr`` (stops at the first)."""
        return self._walk(self.root, addr, segs, 0, nseg, True)

    cdef MatchList* match(self, const char* addr, Seg* segs, int nseg) except NULL:
        """Everyone subscribed to ``addr``: a new MatchList owned by the caller."""
        cdef MatchList* ml = <MatchList*>calloc(1, sizeof(MatchList))
        cdef Py_ssize_t i, k, ngroups = 0
        cdef MatchEntry* e
        cdef Subscription sub
        cdef object prev_target = None
        if ml == NULL:
            raise MemoryError()
        ml.gen = self.gen
        self.nfound = 0
        if self.root.total:
            self._walk(self.root, addr, segs, 0, nseg, False)
        if self.nfound == 0:
            return ml
        if self.nfound > 1:
            qsort(self.found, self.nfound, sizeof(Found), _cmp_target)
        ml.entries = <MatchEntry*>calloc(self.nfound, sizeof(MatchEntry))
        if ml.entries == NULL:
            free(ml)
            raise MemoryError()
        e = NULL
        for i in range(self.nfound):
            sub = <Subscription>self.found[i].sub
            if e == NULL or sub.target is not prev_target:
                e = &ml.entries[ngroups]
                ngroups += 1
                e.target = <PyObject*>sub.target
                prev_target = sub.target
            if sub.gate is None:
                e.mask |= sub.mask
            else:
                e.gated_mask |= sub.mask
                if e.gated == NULL:
                    lst = []
                    Py_INCREF(lst)
                    e.gated = <PyObject*>lst
                if sub not in <list>e.gated:
                    (<list>e.gated).append(sub)
        ml.n = ngroups
        return ml

    # Python surface (tests, QUERY tooling)
    def subscribe(self, Subscription sub):
        self.add(sub)

    def unsubscribe(self, Subscription sub):
        return self.remove(sub)

    def lookup(self, str address):
        """[(target, mask, gated_mask, [gated subs])] for ``address`` (testing aid)."""
        cdef bytes b = address.encode()
        cdef Seg segs[MAX_SEGMENTS]
        cdef int n = split_address(b, len(b), segs)
        cdef MatchList* ml
        if n < 0:
            raise ValueError(address_error(n, "address", address))
        ml = self.match(b, segs, n)
        try:
            return [(<object>ml.entries[i].target, ml.entries[i].mask, ml.entries[i].gated_mask,
                     list(<object>ml.entries[i].gated) if ml.entries[i].gated != NULL else [])
                    for i in range(ml.n)]
        finally:
            matchlist_free(ml)


def matches_signal(str pattern, str address):
    """Whether a QUERY ``pattern`` matches an announced signal address.

    Announced addresses may themselves contain ``*`` (``/lumen/cue/*``); here
    those characters are taken literally."""
    cdef bytes pb = pattern.encode(), ab = address.encode()
    cdef Seg ps[MAX_SEGMENTS]
    cdef Seg as_[MAX_SEGMENTS]
    cdef int i
    cdef int np = split_pattern(pb, len(pb), ps)
    cdef int na = split_pattern(ab, len(ab), as_)
    if np < 0 or na < 0:
        return False
    for i in range(na):
        as_[i].kind = SEG_LITERAL
    return Pattern(pattern).matches(ab, as_, na)


cdef class Pattern:
    """One pattern, matched against many addresses (snapshots, QUERY, ``matches``):
    a trie holding that one pattern, so it matches exactly as live routing does."""

    def __cinit__(self, str pattern):
        self.trie = Trie()
        self.trie.add(Subscription(None, 0, pattern))

    cdef bint matches(self, const char* addr, Seg* segs, int nseg) except -1:
        return self.trie.reaches(addr, segs, nseg)
