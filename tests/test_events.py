import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from sim import events


@njit
def _drain(qt, qkey, meta, times, kinds, refs, pops_after):
    # Pushes the events in order, popping pops_after[i] events after the i-th push,
    # then drains the heap; returns what came out, in order.
    out_t = np.empty(times.shape[0])
    out_kind = np.empty(times.shape[0], np.int64)
    out_ref = np.empty(times.shape[0], np.int64)
    n = 0
    for i in range(times.shape[0]):
        events.add(qt, qkey, meta, times[i], kinds[i], refs[i])
        for _ in range(pops_after[i]):
            if meta[0] > 0:
                out_t[n], out_kind[n], out_ref[n] = events.pop(qt, qkey, meta)
                n += 1
    while meta[0] > 0:
        out_t[n], out_kind[n], out_ref[n] = events.pop(qt, qkey, meta)
        n += 1
    return out_t, out_kind, out_ref


def naive_drain(times, kinds, refs, pops_after):
    heap, out = [], []
    for seq, (t, k, r, p) in enumerate(zip(times, kinds, refs, pops_after, strict=True)):
        heapq.heappush(heap, (t, seq, k, r))
        for _ in range(p):
            if heap:
                t0, _, k0, r0 = heapq.heappop(heap)
                out.append((t0, k0, r0))
    while heap:
        t0, _, k0, r0 = heapq.heappop(heap)
        out.append((t0, k0, r0))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(
    st.tuples(st.integers(0, 20).map(float), st.integers(0, 15), st.integers(0, 1000),
              st.integers(0, 2)),
    max_size=200,
))
def test_events_come_out_in_time_then_scheduling_order(evs):
    times = np.array([e[0] for e in evs], np.float64)
    kinds = np.array([e[1] for e in evs], np.int64)
    refs = np.array([e[2] for e in evs], np.int64)
    pops = np.array([e[3] for e in evs], np.int64)
    q = events.new_queue(max(len(evs), 1))
    t, k, r = _drain(q.t, q.key, q.meta, times, kinds, refs, pops)
    assert list(zip(t.tolist(), k.tolist(), r.tolist(), strict=True)) == naive_drain(
        times.tolist(), kinds.tolist(), refs.tolist(), pops.tolist()
    )
