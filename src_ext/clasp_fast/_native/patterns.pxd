# Addresses, patterns and the subscription trie.
#
# One matcher: the Trie walk (`Trie._walk`, with `seg_match` for one segment).
# Live routing walks the trie of every subscription; one pattern against many
# addresses (snapshots, QUERY, `matches`) is a `Pattern`, a trie of that one
# pattern, so `**` and globs are expanded in one place and never disagree.
#
#   literal   exact, case-sensitive
#   *         exactly one segment
#   **        zero or more segments, anywhere in the pattern
#   zone*     a segment: `*` inside a segment matches any run of characters

from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from clasp_fast._native.bytesmap cimport BytesMap

cdef enum:
    MAX_SEGMENTS = 128

cdef enum:
    SEG_LITERAL = 0
    SEG_STAR = 1
    SEG_GLOBSTAR = 2
    SEG_GLOB = 3

# split_* error codes (negative return values)
cdef enum:
    ADDR_NO_SLASH = -1
    ADDR_EMPTY_SEGMENT = -2
    ADDR_TOO_DEEP = -3
    ADDR_WILDCARD = -4

cdef struct Seg:
    Py_ssize_t pos
    Py_ssize_t len
    int kind

# Splits "/a/b/c" into segments; returns their count or an ADDR_* code.
# An address may not contain '*'; a pattern may.
cdef int split_address(const char* p, Py_ssize_t n, Seg* segs) noexcept nogil
cdef int split_pattern(const char* p, Py_ssize_t n, Seg* segs) noexcept nogil
cdef str address_error(int code, str kind, str text)

cdef bint seg_match(const char* pat, Seg* ps, const char* addr, Seg* a) noexcept nogil


cdef class Subscription:
    cdef readonly object target         # who receives (a router Endpoint)
    cdef readonly uint32_t id
    cdef readonly str pattern
    cdef readonly uint8_t mask          # type filter; 0 and 0xFF both mean "all"
    cdef public object gate             # None, or a gate object applying maxRate/epsilon
    cdef bytes pat                      # pattern as UTF-8
    cdef Seg segs[MAX_SEGMENTS]
    cdef int nseg


cdef struct MatchEntry:
    PyObject* target        # borrowed: valid while the list's gen is current
    uint8_t mask            # union of the masks of ungated subscriptions
    uint8_t gated_mask      # union of the masks of gated subscriptions
    PyObject* gated         # owned list of gated Subscriptions, or NULL

# Everyone an address reaches, one entry per target (however many of its
# subscriptions match), valid for one trie generation.
cdef struct MatchList:
    uint64_t gen
    Py_ssize_t n
    MatchEntry* entries

cdef void matchlist_free(MatchList* ml) noexcept


cdef struct GlobEdge:
    char* pat
    Py_ssize_t len
    void* node

cdef struct Node:
    BytesMap children       # literal segment -> Node* (allocated on first child)
    char* key               # this node's literal segment (owned), if a literal child
    Py_ssize_t klen
    Node* star
    Node* globstar
    GlobEdge* globs
    int nglobs
    PyObject** subs         # owned references
    Py_ssize_t nsubs
    Py_ssize_t capsubs
    Py_ssize_t total        # subscriptions in this subtree


cdef struct Found:
    size_t target
    PyObject* sub

cdef class Trie:
    cdef Node* root
    cdef readonly uint64_t gen          # bumped on every change: cached MatchLists expire
    cdef readonly Py_ssize_t count
    cdef Found* found
    cdef Py_ssize_t nfound
    cdef Py_ssize_t capfound
    cdef int add(self, Subscription sub) except -1
    cdef bint remove(self, Subscription sub) except -1
    cdef MatchList* match(self, const char* addr, Seg* segs, int nseg) except NULL
    cdef int _found(self, Node* n) except -1
    cdef int _walk(self, Node* n, const char* addr, Seg* segs, int i, int nseg, bint first) except -1
    cdef bint reaches(self, const char* addr, Seg* segs, int nseg) except -1


cdef class Pattern:
    cdef Trie trie
    cdef bint matches(self, const char* addr, Seg* segs, int nseg) except -1
