"""The discrete-event core: a binary min-heap of (time, seq, kind, ref) in arrays.

After SimPy's Environment: the sequence number breaks ties so runs are
deterministic. It knows nothing of calls, agents or KPIs. Numba only.
"""

from collections import namedtuple

import numpy as np
from numba import njit

# The heap is two parallel arrays, t (float64) and key (int64), plus
# meta = [size, next_seq]. key packs seq << 32 | kind << 28 | ref: seq is
# unique, so ordering by (t, key) is ordering by (t, seq), and a sift moves two
# words instead of four. Bounds: kind < 16, 0 <= ref < 2**28, seq < 2**31.
EventQueue = namedtuple("EventQueue", "t key meta")

_REF_BITS = 28
_REF_MASK = (1 << _REF_BITS) - 1
_KIND_MASK = 15


def new_queue(capacity: int) -> EventQueue:
    return EventQueue(
        t=np.empty(capacity, np.float64),
        key=np.empty(capacity, np.int64),
        meta=np.zeros(2, np.int64),
    )


# The functions take the arrays rather than the namedtuple: a tuple argument
# costs a reference-count update per array per call, which dominated the loop.


# The kernel's calls are inlined: no call per event, and the heap's arrays
# stay in registers across the event loop.
@njit(cache=True, inline="always")
def add(qt, qkey, meta, t, kind, ref):
    """`push` for Numba callers."""
    n = meta[0]
    if n >= qt.shape[0]:
        return False
    key = (meta[1] << 32) | (np.int64(kind) << _REF_BITS) | np.int64(ref)
    meta[0] = n + 1
    meta[1] += 1
    while n > 0:
        parent = (n - 1) >> 1
        pt = qt[parent]
        if not (t < pt or (t == pt and key < qkey[parent])):
            break
        qt[n] = pt
        qkey[n] = qkey[parent]
        n = parent
    qt[n] = t
    qkey[n] = key
    return True


# Explicit signature: Python calls it with differently typed (literal, int,
# np.int64) arguments; one compiled version serves them all.
@njit("boolean(float64[::1], int64[::1], int64[::1], float64, int64, int64)", cache=True)
def push(qt, qkey, meta, t, kind, ref):
    """Schedule event `kind` about `ref` at time t. Returns False when full."""
    return add(qt, qkey, meta, t, kind, ref)


@njit(cache=True, inline="always")
def pop(qt, qkey, meta):
    """Remove the earliest event; returns (t, kind, ref). The queue must not be empty."""
    t0 = qt[0]
    key0 = qkey[0]
    n = meta[0] - 1
    meta[0] = n
    if n > 0:
        # Sift the last entry down from the root.
        t = qt[n]
        key = qkey[n]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n:
                lt = qt[child]
                lk = qkey[child]
                rt = qt[child + 1]
                rk = qkey[child + 1]
                # The earlier child, chosen without a branch: which one is earlier is a
                # coin toss the branch predictor misses half the time.
                child += np.int64((rt < lt) | ((rt == lt) & (rk < lk)))
            ct = qt[child]
            ck = qkey[child]
            if not (ct < t or (ct == t and ck < key)):
                break
            qt[i] = ct
            qkey[i] = ck
            i = child
        qt[i] = t
        qkey[i] = key
    return t0, (key0 >> _REF_BITS) & _KIND_MASK, key0 & _REF_MASK
