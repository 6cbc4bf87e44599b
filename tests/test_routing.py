"""Carrier routing: shares tracked closely, trunk limits never exceeded, a defined fallback."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer import routing


def trunks(n=4, channels=1000, cps=1000.0, min_share=None, max_share=None):
    ch = np.full(n, channels, np.int64)
    c = np.full(n, cps, float)
    contract, launched = routing.new_contracts(
        np.zeros(n) if min_share is None else np.asarray(min_share, float),
        np.ones(n) if max_share is None else np.asarray(max_share, float),
    )
    return dict(
        contract=contract, launched=launched,
        channels_used=np.zeros(n, np.int64), channels=ch, enabled=np.ones(n, bool),
        coverage=np.ones((n, 1, 1), bool), window=routing.new_cps_window(c), cps=c,
        credit=np.zeros((1, 1, n)), rr=np.zeros(1, np.int64),
        cost_order=np.arange(n, dtype=np.int64)[::-1].copy(),
    )


def pick(t, weights, now, kind=routing.STATIC):
    """One pick; a launch is recorded, as the dialer does."""
    c = routing.pick_carrier(
        kind, 0, 0, 0, now, t["channels_used"], t["channels"], t["enabled"], t["coverage"],
        t["window"], t["cps"], weights, t["credit"], t["rr"], t["cost_order"],
        t["contract"], t["launched"],
    )
    if c >= 0:
        routing.record_launch(t["launched"], c)
    return c


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6), st.integers(50, 400))
def test_realised_shares_track_the_targets_within_two_calls_at_every_step(raw, n_calls):
    w = np.array(raw) / sum(raw)
    t = trunks(len(w))
    weights = w[None, None, :].copy()
    counts = np.zeros(len(w))
    for i in range(n_calls):
        counts[pick(t, weights, float(i))] += 1
        # Smooth weighted round robin: after k picks each carrier stays within a
        # call or two of its exact share (deficit bounded, no drift).
        assert np.abs(counts - w * (i + 1)).max() < 2.0


def test_a_carrier_that_is_full_disabled_or_not_covering_is_skipped_and_shares_resume():
    t = trunks(3)
    weights = np.array([[[0.5, 0.3, 0.2]]])
    t["enabled"][0] = False
    assert all(pick(t, weights, float(i)) != 0 for i in range(50))
    t["enabled"][0] = True
    t["coverage"][1, 0, 0] = False
    t["channels_used"][2] = t["channels"][2]
    assert all(pick(t, weights, 100.0 + i) == 0 for i in range(20))


def test_a_turn_its_carrier_cannot_take_goes_down_the_cells_shares_not_to_a_floor_route():
    # The optimiser's cell: carrier 0 planned, 1 next, 2 and 3 on floor shares only.
    weights = np.array([[[0.70, 0.26, 0.02, 0.02]]])
    t = trunks(4)
    t["channels_used"][0] = t["channels"][0]  # the planned route's trunk is full
    counts = np.bincount([pick(t, weights, float(i), routing.SEGMENTED) for i in range(500)],
                         minlength=4)
    # Carrier 0's turns pass to 1; the floor routes keep their own 2 % and no more
    # (spread over the usable ones by credit, they would take 7 % each).
    assert counts[1] >= 0.96 * 500 - 2
    assert (counts[2:] <= 0.02 * 500 + 2).all()
    # When 1 is full too, the turns of 0 and 1 go to the floor route with the larger share.
    weights[0, 0, 2] = 0.021
    t["channels_used"][1] = t["channels"][1]
    counts = np.bincount([pick(t, weights, 500.0 + i, routing.SEGMENTED) for i in range(500)],
                         minlength=4)
    assert counts[3] <= 0.02 * 500 + 2 and counts[2] == 500 - counts[3]
    # Static shares from config keep their own rule: a full carrier's turn is caught up later.
    t["channels_used"][:] = 0
    t["channels_used"][0] = t["channels"][0]
    counts = np.bincount([pick(t, weights, 1000.0 + i) for i in range(300)], minlength=4)
    assert counts[2] > 0.05 * 300


def test_when_no_weighted_carrier_can_take_the_call_the_cheapest_usable_one_does():
    t = trunks(4)
    weights = np.array([[[0.6, 0.4, 0.0, 0.0]]])  # carriers 2 and 3 have no share here
    t["channels_used"][:2] = t["channels"][:2]  # the weighted ones are full
    # cost_order is 3, 2, 1, 0: the cheapest usable is 3, then 2.
    assert pick(t, weights, 0.0) == 3
    t["enabled"][3] = False
    assert pick(t, weights, 0.0) == 2
    t["coverage"][2, 0, 0] = False
    assert pick(t, weights, 0.0) == -1  # nobody left: the lead goes back to its queue


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=4),
    st.lists(st.floats(0.5, 4.0), min_size=4, max_size=4),
    st.sampled_from([routing.STATIC, routing.ROUND_ROBIN, routing.CHEAPEST, routing.SEGMENTED]),
    st.integers(0, 2**31),
)
def test_channels_and_calls_per_second_are_never_exceeded(channels, cps, kind, seed):
    n = len(channels)
    t = trunks(n)
    t["channels"][:] = channels
    t["cps"] = np.array(cps[:n])
    t["window"] = routing.new_cps_window(t["cps"])
    weights = np.full((1, 1, n), 1.0 / n)
    rng = np.random.default_rng(seed)
    launches = [[] for _ in range(n)]
    ends = []
    now = 0.0
    for _ in range(400):
        now += float(rng.exponential(0.2))
        for e in [e for e in ends if e[0] <= now]:
            t["channels_used"][e[1]] -= 1
            ends.remove(e)
        c = pick(t, weights, now, kind)
        if c < 0:
            continue
        t["channels_used"][c] += 1
        assert t["channels_used"][c] <= t["channels"][c]
        routing.cps_record(t["window"], t["cps"], c, now)
        launches[c].append(now)
        ends.append((now + float(rng.exponential(2.0)), c))
    for c in range(n):
        k = max(1, int(np.floor(t["cps"][c])))
        s = np.array(launches[c])
        if s.size > k:
            assert (s[k:] - s[:-k] >= 1.0 - 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([routing.STATIC, routing.ROUND_ROBIN, routing.CHEAPEST, routing.SEGMENTED]),
    st.floats(0.05, 0.45), st.floats(0.05, 0.45), st.integers(30, 300),
)
def test_every_kind_keeps_each_carrier_inside_its_contract_at_every_launch(
    kind, floor, cap, n_calls
):
    # Carrier 0 (dearest in cost_order, no weight) owes a minimum share; carrier 3
    # (cheapest, most weight) is capped: every kind must still honour both.
    t = trunks(4, min_share=[floor, 0, 0, 0], max_share=[1, 1, 1, cap])
    weights = np.array([[[0.0, 0.1, 0.1, 0.8]]])
    counts = np.zeros(4)
    for i in range(n_calls):
        counts[pick(t, weights, float(i), kind)] += 1
        total = i + 1
        assert counts[3] <= cap * total + 1e-9
        assert counts[0] >= floor * total - 1.0  # at most one call behind
    assert np.array_equal(t["launched"], np.append(counts, n_calls))


def test_a_capped_carrier_is_skipped_even_when_it_is_the_only_weighted_one():
    t = trunks(2, max_share=[1.0, 0.25])
    weights = np.array([[[0.0, 1.0]]])
    picks = [pick(t, weights, float(i)) for i in range(40)]
    assert picks.count(1) == 10  # 25 %: the rest falls back to carrier 0
