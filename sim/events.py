"""The discrete-event core: a binary min-heap of (time, seq, kind, ref) in arrays,
beside a FIFO lane for events scheduled at one constant delay.

After SimPy's Environment: the sequence number breaks ties so runs are
deterministic. It knows nothing of calls, agents or KPIs. Numba only.
"""

from collections import namedtuple

import numpy as np
from numba import njit

# The heap is two parallel arrays, t (float64) and key (int64), plus
# meta = [size, next_seq, lane head, lane tail]. key packs seq << 32 | kind << 28 | ref:
# seq is unique, so ordering by (t, key) is ordering by (t, seq), and a sift moves
# two words instead of four. Bounds: kind < 16, 0 <= ref < 2**28, seq < 2**31.
# The lane (lane_t, lane_key) is a ring of events added in (t, seq) order: events
# due one constant delay after a clock that never goes back come out of it in
# order, at O(1) a move instead of a heap's O(log n).
EventQueue = namedtuple("EventQueue", "t key meta lane_t lane_key")

_REF_BITS = 28
_REF_MASK = (1 << _REF_BITS) - 1
_KIND_MASK = 15


def new_queue(capacity: int, lane_capacity: int = 1) -> EventQueue:
    lane = 1 << max(lane_capacity - 1, 0).bit_length()  # a power of two: masks, not modulo
    return EventQueue(
        t=np.empty(capacity, np.float64),
        key=np.empty(capacity, np.int64),
        meta=np.zeros(4, np.int64),
        lane_t=np.empty(lane, np.float64),
        lane_key=np.empty(lane, np.int64),
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


@njit(cache=True, inline="always")
def add_to_lane(lt, lkey, meta, t, kind, ref):
    """`add` for an event due no earlier than every event added to the lane before it
    (one constant delay after the current time, say). Returns False when full."""
    if meta[3] - meta[2] >= lt.shape[0]:
        return False
    i = meta[3] & (lt.shape[0] - 1)
    lt[i] = t
    lkey[i] = (meta[1] << 32) | (np.int64(kind) << _REF_BITS) | np.int64(ref)
    meta[1] += 1
    meta[3] += 1
    return True


@njit(cache=True, inline="always")
def pending(meta):
    """Events waiting, in the heap and the lane."""
    return meta[0] + meta[3] - meta[2]


def n_pending(meta: np.ndarray) -> int:
    """`pending` for Python callers, which would otherwise compile it."""
    return int(meta[0] + meta[3] - meta[2])


@njit(cache=True, inline="always")
def next_time(qt, meta, lt):
    """When the earliest waiting event is due (inf when none is)."""
    t = qt[0] if meta[0] > 0 else np.inf
    if meta[2] < meta[3]:
        t = min(t, lt[meta[2] & (lt.shape[0] - 1)])
    return t


@njit(cache=True, inline="always")
def take(qt, qkey, meta, lt, lkey):
    """Remove the earliest event of the heap and the lane; returns (t, kind, ref).
    There must be one."""
    if meta[2] < meta[3]:
        j = meta[2] & (lt.shape[0] - 1)
        t = lt[j]
        key = lkey[j]
        if meta[0] == 0 or t < qt[0] or (t == qt[0] and key < qkey[0]):
            meta[2] += 1
            return t, (key >> _REF_BITS) & _KIND_MASK, key & _REF_MASK
    return pop(qt, qkey, meta)
