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


@njit
def _drain_with_lane(q, times, to_lane, delay, pops_after):
    # Event i is due at times[i] after the clock (the last event out), or, on the lane,
    # `delay` after it; pops_after[i] events come out after it goes in, then the rest.
    qt, qkey, meta, lt, lkey = q
    out_t = np.empty(times.shape[0])
    out_ref = np.empty(times.shape[0], np.int64)
    out_due = np.empty(times.shape[0])  # next_time just before each event came out
    n = 0
    clock = 0.0
    for i in range(times.shape[0]):
        if to_lane[i]:
            events.add_to_lane(lt, lkey, meta, clock + delay, 1, i)
        else:
            events.add(qt, qkey, meta, clock + times[i], 0, i)
        for _ in range(pops_after[i]):
            if events.pending(meta) > 0:
                out_due[n] = events.next_time(qt, meta, lt)
                clock, _, out_ref[n] = events.take(qt, qkey, meta, lt, lkey)
                out_t[n] = clock
                n += 1
    while events.pending(meta) > 0:
        out_due[n] = events.next_time(qt, meta, lt)
        clock, _, out_ref[n] = events.take(qt, qkey, meta, lt, lkey)
        out_t[n] = clock
        n += 1
    return out_t, out_ref, out_due


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6).map(float), st.booleans(), st.integers(0, 2)),
             max_size=200),
    st.integers(0, 4).map(float),
)
def test_a_lane_of_equal_delays_merges_with_the_heap_in_time_then_scheduling_order(evs, delay):
    times = np.array([e[0] for e in evs], np.float64)
    to_lane = np.array([e[1] for e in evs], np.bool_)
    pops = np.array([e[2] for e in evs], np.int64)
    q = events.new_queue(max(len(evs), 1), max(len(evs), 1))
    t, r, due = _drain_with_lane(q, times, to_lane, delay, pops)
    assert due.tolist() == t.tolist()
    # The same schedule through heapq, by (due time, order scheduled).
    heap, out, clock = [], [], 0.0
    for i, (dt_, lane, p) in enumerate(zip(times, to_lane, pops, strict=True)):
        heapq.heappush(heap, (clock + (delay if lane else dt_), i))
        for _ in range(p):
            if heap:
                clock, j = heapq.heappop(heap)
                out.append((clock, j))
    out += [heapq.heappop(heap) for _ in range(len(heap))]
    assert list(zip(t.tolist(), r.tolist(), strict=True)) == out
