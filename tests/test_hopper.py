"""The hopper's calling rules as properties over random lead histories, clocks and zones.

A plain driver dials through the hopper for a whole day at random times, with random
outcomes and call lengths, then every attempt is re-checked independently: the
lead's local wall clock from the tz database, caps per day and per rolling 7 days,
the minimum gap by last outcome, do-not-call, promised callbacks, and no lead in
two calls at once. The VALUE pick is compared with its plain-Python twin at every
step; "best time to collect" and callbacks get their own small cases.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs.scenario import PolicySpec
from configs.schema import RetryRules, within_calling_hours
from dialer import hopper
from dialer.state import contact_table, new_dialer
from smartdial.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from naive_dialer import naive_next_lead  # noqa: E402

ZONES = [
    "America/Mexico_City", "America/Tijuana", "America/Cancun", "America/Hermosillo",
    "America/Matamoros", "America/New_York", "Europe/Madrid", "Asia/Kolkata",
    "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns", "Pacific/Kiritimati",
]
LeadFacts = namedtuple(
    "LeadFacts", "region product network days_past_due attempts_7d dnc callback_s"
)
TICK_S = 30.0
HORIZON_MIN = 20 * 60  # the driver dials for 20 h: windows open and close in every zone


def build_world(small, zones, start_utc, retry, kind, seed, n_leads):
    """Operation with the given zones, its dialer state, and the hourly facts per minute."""
    op = small.operation
    regions = tuple(
        op.regions[i].model_copy(update={"timezone": z, "code": f"r{i}"})
        for i, z in enumerate(zones)
    )
    op = op.model_copy(update={"regions": regions})
    campaign = small.campaign_config.model_copy(update={"retry": retry})
    rng = np.random.default_rng(seed)
    n_r, n_p, n_n = len(regions), len(op.products), len(op.networks)
    callback_s = np.full(n_leads, -1.0)
    promised = rng.random(n_leads) < 0.08
    callback_s[promised] = rng.uniform(0, 60.0 * HORIZON_MIN, promised.sum())
    leads = LeadFacts(
        region=rng.integers(0, n_r, n_leads).astype(np.int16),
        product=rng.integers(0, n_p, n_leads).astype(np.int8),
        network=rng.integers(0, n_n, n_leads).astype(np.int8),
        days_past_due=rng.integers(1, 90, n_leads).astype(np.int16),
        attempts_7d=rng.integers(0, retry.max_attempts_per_7d + 1, n_leads).astype(np.int16),
        dnc=rng.random(n_leads) < 0.05,
        callback_s=callback_s,
    )
    d = new_dialer(op, campaign, PolicySpec(leads=kind), leads)
    region_open = np.zeros((n_r, HORIZON_MIN), bool)
    local_hour = np.zeros((n_r, HORIZON_MIN), np.int64)
    for r, region in enumerate(regions):
        windows = op.region_calling_hours(region)
        for m in range(HORIZON_MIN):
            local = (start_utc + dt.timedelta(minutes=m)).astimezone(region.tz)
            region_open[r, m] = within_calling_hours(windows, local)
            local_hour[r, m] = local.hour
    return op, d, leads, region_open, local_hour


def drive(d, region_open, local_hour, seed, twin=True):
    """Dial for HORIZON_MIN minutes; returns the attempts and the picks of every tick."""
    rng = np.random.default_rng(seed + 1)
    kind = int(d.kinds[2])
    attempts = []  # (lead, t_start, t_end, outcome)
    in_flight = []  # (t_end, lead, outcome)
    picks = []  # (t, lead)
    outcomes = np.arange(len(Outcome))
    p_outcome = np.array([0.1, 0.02, 0.15, 0.08, 0.5, 0.07, 0.03, 0.05])
    t = 0.0
    while t < 60.0 * HORIZON_MIN:
        minute = int(t // 60)
        # Outcomes arrive in time order, before the decision at t.
        in_flight.sort()
        while in_flight and in_flight[0][0] <= t:
            t_end, lead, outcome = in_flight.pop(0)
            r = int(d.group_region[d.group[lead]])
            hopper.after_attempt(
                d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, lead, outcome, t_end,
                d.attempts_day, d.attempts_7d, d.ready_at, d.state, d.rules,
                d.group, d.cell, d.n_ab, d.contact_p, d.contact_n, local_hour[r, minute],
                d.hop_params[hopper.H_PRIOR_N],
            )
        hopper.release_due(
            d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, d.group, d.ready_at, d.enq_t,
            d.state, t,
        )
        hopper.start_picks(kind, d.q_head, d.q_size, d.n_groups, d.group_region, region_open,
                           d.enq_t, d.ready_at, minute, t, d.pick_key, d.pick_tree)
        for _ in range(int(rng.integers(0, 6))):
            args = (
                kind, d.q_head, d.q_size, d.n_groups, d.group_region, region_open, d.enq_t,
                minute, t, d.ready_at, local_hour, d.contact_p, d.contact_n, d.value,
            )
            peak, hop = d.peak.copy(), d.hop.copy()
            q = hopper.next_lead(*args, d.peak, d.hop, d.hop_params)
            if twin:
                assert q == naive_next_lead(*args, peak, hop, d.hop_params)
            # The decision's picker (what the kernel asks) dequeues next_lead's pick.
            g, lead = hopper.pick(
                kind, d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, d.group_region,
                region_open, d.enq_t, minute, t, d.ready_at, local_hour, d.contact_p,
                d.contact_n, d.value, d.peak, d.hop, d.hop_params, d.pick_key, d.pick_tree,
            )
            assert g == q
            if q < 0:
                assert lead == -1
                break
            lead = int(lead)
            d.attempts_day[lead] += 1
            d.attempts_7d[lead] += 1
            d.state[lead] = hopper.IN_FLIGHT
            outcome = int(rng.choice(outcomes, p=p_outcome))
            length = float(rng.exponential(120.0))
            attempts.append((lead, t, t + length, outcome))
            in_flight.append((t + length, lead, outcome))
            picks.append((t, lead))
        t += TICK_S
    return attempts, picks


def check_rules(op, d, leads, start_utc, retry, attempts, picks, region_open):
    gaps = hopper.rules_from(retry)[hopper.R_GAP:]
    by_lead: dict[int, list] = {}
    for lead, t0, t1, outcome in attempts:
        by_lead.setdefault(lead, []).append((t0, t1, outcome))
        region = op.regions[int(leads.region[lead])]
        local = (start_utc + dt.timedelta(seconds=t0)).astimezone(region.tz)
        assert within_calling_hours(op.region_calling_hours(region), local), (lead, local)
        assert not leads.dnc[lead], lead
        if leads.callback_s[lead] >= 0:
            assert t0 >= by_lead[lead][0][0] >= leads.callback_s[lead], lead
    for lead, calls in by_lead.items():
        assert len(calls) <= retry.max_attempts_per_day, lead
        assert leads.attempts_7d[lead] + len(calls) <= retry.max_attempts_per_7d, lead
        for (_, end, outcome), (start, _, _) in itertools.pairwise(calls):
            assert start >= end, ("two calls at once", lead)
            assert start - end >= gaps[outcome], (lead, Outcome(outcome).name)
    # A due callback in an open region is dialled before any other lead.
    first = {lead: calls[0][0] for lead, calls in by_lead.items()}
    barred = leads.dnc | (leads.attempts_7d >= retry.max_attempts_per_7d)
    promised = np.flatnonzero((leads.callback_s >= 0) & ~barred)
    for t, lead in picks:
        if leads.callback_s[lead] >= 0 and first[lead] == t:
            continue
        minute = int(t // 60)
        for c in promised:
            due = leads.callback_s[c] <= t and region_open[leads.region[c], minute]
            assert not (due and first.get(int(c), np.inf) > t), ("callback late", t, lead, c)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=4),
    day=st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)),
    hour=st.integers(0, 23),
    max_day=st.integers(1, 4),
    extra_7d=st.integers(0, 4),
    gaps=st.lists(st.sampled_from([0.0, 60.0, 900.0, 3600.0]), min_size=5, max_size=5),
    stop=st.booleans(),
    kind=st.sampled_from(["oldest", "value"]),
    seed=st.integers(0, 2**31),
)
def test_no_attempt_breaks_a_calling_rule(
    small, zones, day, hour, max_day, extra_7d, gaps, stop, kind, seed
):
    retry = RetryRules(
        max_attempts_per_day=max_day, max_attempts_per_7d=max_day + extra_7d,
        min_gap_after_busy_s=gaps[0], min_gap_after_no_answer_s=gaps[1],
        min_gap_after_machine_s=gaps[2], min_gap_after_congestion_s=gaps[3],
        min_gap_after_abandoned_s=gaps[4], stop_after_contact=stop,
    )
    start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
    op, d, leads, region_open, local_hour = build_world(small, zones, start, retry, kind, seed, 250)
    attempts, picks = drive(d, region_open, local_hour, seed)
    check_rules(op, d, leads, start, retry, attempts, picks, region_open)


# ---------------------------------------------------------------- small cases


def one_region_arrays(n_groups, sizes, n_minutes=24 * 60):
    """Queues with `sizes[g]` leads per group, one region open all day, hour = minute // 60."""
    n_q = n_groups + hopper.N_RETRY + 1
    head = np.full(n_q, -1, np.int64)
    size = np.zeros(n_q, np.int64)
    lead = 0
    for g, s in enumerate(sizes):
        if s:
            head[g], size[g] = lead, s
            lead += s
    n_leads = max(lead, 1) + 1
    return dict(
        head=head, size=size, group_region=np.zeros(n_groups, np.int64),
        region_open=np.ones((1, n_minutes), bool),
        local_hour=np.repeat(np.arange(24), 60)[None, :n_minutes].astype(np.int64),
        enq_t=np.zeros(n_leads), ready_at=np.zeros(n_leads), value=np.ones(n_leads),
    )


def pick(a, contact_p, minute, kind=hopper.VALUE, params=None, now=None, contact_n=None):
    """next_lead on hand-made arrays; the table counts as evidence unless contact_n says not."""
    n_groups = contact_p.shape[0]
    return hopper.next_lead(
        kind, a["head"], a["size"], n_groups, a["group_region"], a["region_open"], a["enq_t"],
        minute, 60.0 * minute if now is None else now, a["ready_at"], a["local_hour"],
        contact_p, np.full(contact_p.shape, 50.0) if contact_n is None else contact_n,
        a["value"], np.zeros(n_groups), np.full(1, -1, np.int64),
        hopper.hop_params() if params is None else params,
    )


def test_value_order_dials_the_group_with_the_best_contact_probability_now():
    a = one_region_arrays(3, [5, 5, 5])
    p = np.full((3, 24), 0.10)
    p[2, 10] = 0.20
    p[1, :] = 0.15
    assert pick(a, p, minute=10 * 60) == 2
    assert pick(a, p, minute=11 * 60) == 1


def test_pacing_is_told_the_contact_probability_of_the_next_pick_once_it_has_evidence():
    a = one_region_arrays(3, [5, 5, 0])
    p = np.full((3, 24), 0.10)
    p[1, 10] = 0.20
    p[2, 10] = 0.40  # the best group is empty: never the next pick
    n = np.full(p.shape, 50.0)

    def p_next(contact_n, minute=10 * 60, arrays=a):
        return hopper.p_next(
            hopper.VALUE, arrays["head"], arrays["size"], 3, arrays["group_region"],
            arrays["region_open"], arrays["enq_t"], minute, 60.0 * minute, arrays["ready_at"],
            arrays["local_hour"], p, contact_n, arrays["value"], np.zeros(3),
            np.full(1, -1, np.int64), hopper.hop_params(),
        )

    assert p_next(n) == pytest.approx(0.20)
    assert p_next(n, minute=11 * 60) == pytest.approx(0.10)
    few = n.copy()
    few[1, 10] = hopper.P_NEXT_MIN_N - 1.0
    assert p_next(few) == -1.0  # too few attempts in that cell: unknown
    closed = dict(a, region_open=np.zeros_like(a["region_open"]))
    assert p_next(n, arrays=closed) == -1.0  # nothing to dial


def test_a_lead_waits_for_its_better_hour_while_other_supply_is_enough():
    p = np.full((2, 24), 0.10)
    p[0, :] = 0.15
    p[0, 18:21] = 0.40  # group 0 answers far better in the evening
    many = one_region_arrays(2, [500, 500])
    assert pick(many, p, minute=10 * 60) == 1  # held: enough other leads to dial
    few = one_region_arrays(2, [500, 20])
    assert pick(few, p, minute=10 * 60) == 0  # supply short: dial the best now
    no_hold = hopper.hop_params(hold_ratio=0.0)
    assert pick(many, p, minute=10 * 60, params=no_hold) == 0
    assert pick(many, p, minute=19 * 60) == 0  # its hour has come
    # A later hour nobody has evidence for (an untouched prior) holds nothing.
    unseen = np.full(p.shape, 50.0)
    unseen[0, 18:21] = 0.0
    assert pick(many, p, minute=10 * 60, contact_n=unseen) == 0


def test_a_due_callback_comes_before_every_ready_lead():
    a = one_region_arrays(2, [5, 5])
    cb = 2 + hopper.N_RETRY
    a["head"][cb], a["size"][cb] = 10, 1
    a["ready_at"][10] = 3600.0
    p = np.full((2, 24), 0.1)
    assert pick(a, p, minute=59, now=3599.0) != cb  # not yet
    assert pick(a, p, minute=60, now=3600.0) == cb
    a["region_open"][0, 60:] = False
    assert pick(a, p, minute=60, now=3600.0) == -1  # closed: neither the callback nor others
    assert pick(a, p, minute=60, now=3600.0, kind=hopper.OLDEST) == -1


def test_the_contact_table_is_learned_from_outcomes(small):
    leads = LeadFacts(
        region=np.zeros(4, np.int16), product=np.zeros(4, np.int8),
        network=np.zeros(4, np.int8), days_past_due=np.ones(4, np.int16),
        attempts_7d=np.zeros(4, np.int16), dnc=np.zeros(4, bool), callback_s=np.full(4, -1.0),
    )
    d = new_dialer(small.operation, small.campaign_config, PolicySpec(leads="value"), leads)
    table = contact_table(d)
    assert table.shape == (len(small.operation.regions), len(small.operation.products),
                           len(small.operation.networks), hopper.N_ATTEMPT_BUCKETS, 24)
    before = table[0, 0, 0, 0, 10]
    for _ in range(50):
        hopper.learn(d.contact_p, d.contact_n, 0, 10, True, 30.0)
    assert table[0, 0, 0, 0, 10] > before + 0.4
    assert table[0, 0, 0, 0, 11] == before


@pytest.mark.slow
def test_value_order_pick_matches_its_twin_on_a_big_random_history(small):
    retry = RetryRules()
    start = dt.datetime(2026, 11, 23, 14, tzinfo=dt.UTC)
    op, d, leads, region_open, local_hour = build_world(
        small, ZONES[:6], start, retry, "value", 7, 5000
    )
    attempts, picks = drive(d, region_open, local_hour, 7)
    check_rules(op, d, leads, start, retry, attempts, picks, region_open)
    assert len(attempts) > 1000
