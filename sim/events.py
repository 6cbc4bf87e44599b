"""The discrete-event core: a binary min-heap of (time, seq, kind, ref) in arrays.

After SimPy's Environment: the sequence number breaks ties so runs are
deterministic. It knows nothing of calls, agents or KPIs. Numba only.
"""

from collections import namedtuple

import numpy as np
from numba import njit

EventQueue = namedtuple("EventQueue", "t seq kind ref meta")  # meta = [size, next_seq]


def new_queue(capacity: int) -> EventQueue:
    return EventQueue(
        t=np.empty(capacity, np.float64),
        seq=np.empty(capacity, np.int64),
        kind=np.empty(capacity, np.int64),
        ref=np.empty(capacity, np.int64),
        meta=np.zeros(2, np.int64),
    )


@njit(cache=True)
def _before(q, i, j):
    return q.t[i] < q.t[j] or (q.t[i] == q.t[j] and q.seq[i] < q.seq[j])


@njit(cache=True)
def _swap(q, i, j):
    q.t[i], q.t[j] = q.t[j], q.t[i]
    q.seq[i], q.seq[j] = q.seq[j], q.seq[i]
    q.kind[i], q.kind[j] = q.kind[j], q.kind[i]
    q.ref[i], q.ref[j] = q.ref[j], q.ref[i]


@njit(cache=True)
def push(q, t, kind, ref):
    """Schedule event `kind` about `ref` at time t. Returns False when full."""
    n = q.meta[0]
    if n >= q.t.shape[0]:
        return False
    q.t[n] = t
    q.seq[n] = q.meta[1]
    q.kind[n] = kind
    q.ref[n] = ref
    q.meta[0] = n + 1
    q.meta[1] += 1
    while n > 0:
        parent = (n - 1) >> 1
        if not _before(q, n, parent):
            break
        _swap(q, n, parent)
        n = parent
    return True


@njit(cache=True)
def peek_time(q):
    return q.t[0] if q.meta[0] > 0 else np.inf


@njit(cache=True)
def pop(q):
    """Remove the earliest event; returns (t, kind, ref). The queue must not be empty."""
    t, kind, ref = q.t[0], q.kind[0], q.ref[0]
    n = q.meta[0] - 1
    q.meta[0] = n
    if n > 0:
        q.t[0], q.seq[0], q.kind[0], q.ref[0] = q.t[n], q.seq[n], q.kind[n], q.ref[n]
        i = 0
        while True:
            left = 2 * i + 1
            if left >= n:
                break
            child = left
            if left + 1 < n and _before(q, left + 1, left):
                child = left + 1
            if not _before(q, child, i):
                break
            _swap(q, i, child)
            i = child
    return t, kind, ref
