"""The day plan: hand-solved LPs, the independent checker, column generation vs the full LP,
soft-constraint relaxation, the live split and the allocation message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.allocate import (
    AllocationData,
    AllocationResult,
    AllocationStatus,
    build_allocation,
    check_allocation,
    live_split,
    plan_day,
    solve,
    to_message,
)
from smartdial.errors import ProtocolError
from telephony.messages import AllocationMessage


def tiny(n_c=2, n_r=1, n_p=1, n_s=1, **kw) -> AllocationData:
    """Slots of 100 s; per attempt p_human 0.1, value 100 MXN, cost 1 MXN → 9 MXN profit."""
    shape = (n_c, n_r, n_p, n_s)
    base = dict(
        slot_s=100.0,
        p_human=np.full(shape, 0.1),
        value_mxn=np.full(n_p, 100.0),
        cost_per_attempt_mxn=np.full(shape, 1.0),
        hold_s=np.full(shape, 10.0),
        handle_s=np.full(n_p, 100.0),
        cps=np.full(n_c, 10.0),
        channels=np.full(n_c, 1000.0),
        coverage=np.ones((n_c, n_r), bool),
        agents=np.full(n_s, 1000.0),
        supply=np.full((n_r, n_p), 50.0),
        callable=np.ones((n_r, n_s), bool),
        target_occupancy=1.0,
    )
    base.update(kw)
    return AllocationData(**base)


def both(data: AllocationData) -> tuple[AllocationResult, AllocationResult]:
    model, _ = build_allocation(data)
    return solve(model, time_limit_s=30), plan_day(data, time_limit_s=30)


# ----------------------------------------------------------------------------- known optima


def test_single_carrier_takes_the_whole_supply():
    full, fast = both(tiny(n_c=1))
    for r in (full, fast):
        assert r.status is AllocationStatus.OPTIMAL
        assert r.x.sum() == pytest.approx(50)
        assert r.objective_mxn == pytest.approx(450)


def test_cps_limited_best_carrier_spills_over_to_the_next():
    cost = np.zeros((2, 1, 1, 1))
    cost[0], cost[1] = 1.0, 5.0  # profit 9 vs 5 MXN per attempt
    data = tiny(cost_per_attempt_mxn=cost, cps=np.array([0.3, 10.0]))  # carrier 0: 30 per slot
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[:, 0, 0, 0] == pytest.approx([30, 20])
        assert r.objective_mxn == pytest.approx(30 * 9 + 20 * 5)
        assert r.duals["cps"][0, 0] == pytest.approx(4.0)  # one more attempt moves 9 − 5


def test_channels_bound_by_littles_law():
    data = tiny(n_c=1, hold_s=np.full((1, 1, 1, 1), 50.0), channels=np.array([10.0]))
    _, fast = both(data)
    assert fast.x.sum() == pytest.approx(10 * 100 / 50)  # 10 channels × 100 s / 50 s


def test_agents_bound_the_contacts_per_slot():
    data = tiny(n_c=1, agents=np.array([1.0]))  # 100 agent-s, 10 agent-s per attempt
    full, fast = both(data)
    for r in (full, fast):
        assert r.x.sum() == pytest.approx(10)


def test_contract_min_share_forces_traffic_to_the_worse_carrier():
    cost = np.zeros((2, 1, 1, 1))
    cost[0], cost[1] = 1.0, 5.0
    data = tiny(cost_per_attempt_mxn=cost, cps=np.array([0.3, 10.0]), min_share=[0.0, 0.5])
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[:, 0, 0, 0] == pytest.approx([25, 25])
        assert r.objective_mxn == pytest.approx(25 * 9 + 25 * 5)
        assert check_allocation(data, r) == []


def test_contract_max_share_caps_the_best_carrier():
    cost = np.zeros((2, 1, 1, 1))
    cost[0], cost[1] = 1.0, 5.0
    data = tiny(cost_per_attempt_mxn=cost, max_share=[0.2, 1.0])
    _, fast = both(data)
    assert fast.x[:, 0, 0, 0] == pytest.approx([10, 40])


def test_budget_buys_the_most_profitable_attempts_first():
    cost = np.zeros((2, 1, 1, 1))
    cost[0], cost[1] = 1.0, 5.0
    data = tiny(cost_per_attempt_mxn=cost, budget_mxn=20.0)
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[:, 0, 0, 0] == pytest.approx([20, 0])
        assert r.duals["budget"] == pytest.approx(9.0)


def test_disabled_carrier_gets_nothing():
    data = tiny(enabled=[False, True])
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[0].sum() == 0
        assert r.x[1].sum() == pytest.approx(50)


def test_region_outside_its_calling_window_gets_nothing():
    callable_ = np.array([[True, False], [False, False]])  # region 1 is never callable
    data = tiny(n_r=2, n_s=2, callable=callable_)
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[:, 1].sum() == 0
        assert r.x[:, 0, :, 1].sum() == 0
        assert r.x[:, 0, :, 0].sum() == pytest.approx(50)


def test_uncovered_region_gets_nothing_on_that_carrier():
    cov = np.array([[True, False], [True, True]])
    cost = np.ones((2, 2, 1, 1))
    cost[1] = 3.0  # carrier 1 is worse, but the only one into region 1
    data = tiny(n_r=2, coverage=cov, cost_per_attempt_mxn=cost)
    _, fast = both(data)
    assert fast.x[0, 1].sum() == 0
    assert fast.x[1, 1].sum() == pytest.approx(50)


def test_per_slot_supply_cap():
    data = tiny(n_c=1, n_s=2, supply_per_slot=np.array([[[10.0, np.inf]]]))
    full, fast = both(data)
    for r in (full, fast):
        assert r.x[0, 0, 0, 0] <= 10 + 1e-9
        assert r.x.sum() == pytest.approx(50)


# ----------------------------------------------------------------------------- the checker


def test_checker_names_every_broken_constraint_family():
    cost = np.zeros((2, 1, 1, 1))
    cost[0], cost[1] = 1.0, 5.0
    data = tiny(cost_per_attempt_mxn=cost, cps=np.array([0.3, 10.0]), min_share=[0.0, 0.4])
    good = plan_day(data)
    assert check_allocation(data, good) == []

    def broken(x):
        return AllocationResult(AllocationStatus.OPTIMAL, 0.0, x)

    x = good.x.copy()
    x[0] += 1.0
    assert any(m.startswith("cps[0,0]") for m in check_allocation(data, broken(x)))
    assert any(
        m.startswith("channels")
        for m in check_allocation(data.replace(channels=np.array([1.0, 1000.0])), good)
    )
    assert any(
        m.startswith("agents") for m in check_allocation(data.replace(agents=np.array([1.0])), good)
    )
    assert any(
        m.startswith("supply")
        for m in check_allocation(data.replace(supply=np.array([[10.0]])), good)
    )
    assert any(
        m.startswith("min_share[1]")
        for m in check_allocation(data.replace(min_share=np.array([0.0, 0.9])), good)
    )
    assert any(
        m.startswith("max_share[0]")
        for m in check_allocation(data.replace(max_share=np.array([0.1, 1.0])), good)
    )
    assert any(m.startswith("budget") for m in check_allocation(data.replace(budget_mxn=1.0), good))
    assert any(
        m.startswith("disabled")
        for m in check_allocation(data.replace(enabled=np.array([True, False])), good)
    )
    assert any(
        m.startswith("uncovered")
        for m in check_allocation(data.replace(coverage=np.array([[True], [False]])), good)
    )
    assert any(
        m.startswith("outside calling window")
        for m in check_allocation(data.replace(callable=np.array([[False]])), good)
    )
    assert any(m.startswith("negative") for m in check_allocation(data, broken(-good.x)))
    assert any(
        m.startswith("supply_per_slot")
        for m in check_allocation(data.replace(supply_per_slot=np.array([[[1.0]]])), good)
    )


# ----------------------------------------------------------------------------- CG == full LP


@st.composite
def instances(draw) -> AllocationData:
    n_c = draw(st.integers(1, 4))
    n_r = draw(st.integers(1, 3))
    n_p = draw(st.integers(1, 2))
    n_s = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (n_c, n_r, n_p, n_s)
    p = rng.uniform(0.01, 0.3, shape)
    min_share = np.zeros(n_c)
    max_share = np.ones(n_c)
    if n_c > 1 and draw(st.booleans()):
        min_share[0] = rng.uniform(0.05, 0.4)
    if n_c > 1 and draw(st.booleans()):
        max_share[-1] = rng.uniform(0.2, 0.6)
    return AllocationData(
        slot_s=900.0,
        p_human=p,
        value_mxn=rng.uniform(10, 100, n_p),
        cost_per_attempt_mxn=rng.uniform(0.1, 8.0, shape),
        hold_s=rng.uniform(10, 80, shape),
        handle_s=rng.uniform(100, 300, (n_r, n_p)),
        cps=rng.uniform(0.1, 2.0, n_c),
        channels=rng.uniform(5, 50, n_c),
        coverage=rng.random((n_c, n_r)) < 0.8,
        agents=rng.integers(1, 20, n_s).astype(float),
        supply=rng.uniform(0, 3000, (n_r, n_p)),
        callable=rng.random((n_r, n_s)) < 0.8,
        enabled=rng.random(n_c) < 0.9,
        min_share=min_share,
        max_share=max_share,
        budget_mxn=float(rng.uniform(100, 5000)) if draw(st.booleans()) else np.inf,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_column_generation_matches_the_full_lp(data):
    model, _ = build_allocation(data)
    full = solve(model, time_limit_s=30)
    fast = plan_day(data, time_limit_s=30)
    assert full.status is AllocationStatus.OPTIMAL
    assert fast.status in (AllocationStatus.OPTIMAL, AllocationStatus.RELAXED)
    if fast.status is AllocationStatus.OPTIMAL:
        scale = max(1.0, abs(full.objective_mxn))
        assert abs(fast.objective_mxn - full.objective_mxn) <= 1e-6 * scale
        assert check_allocation(data, fast) == []
    assert check_allocation(data, full) == []


def test_identical_segments_are_solved_once_and_split_by_supply():
    data = tiny(n_r=3, supply=np.array([[10.0], [20.0], [30.0]]), cps=np.array([0.2, 0.2]))
    full, fast = both(data)  # 40 attempts of capacity for 60 of supply
    assert fast.objective_mxn == pytest.approx(full.objective_mxn)
    per_region = fast.x.sum(axis=(0, 2, 3))
    assert per_region == pytest.approx([40 / 6, 80 / 6, 120 / 6])
    assert check_allocation(data, fast) == []


def test_warm_start_after_drift_reaches_the_cold_optimum():
    rng = np.random.default_rng(3)
    data = tiny(
        n_c=4,
        n_r=3,
        n_p=2,
        n_s=6,
        p_human=rng.uniform(0.02, 0.3, (4, 3, 2, 6)),
        cps=np.full(4, 0.2),
        agents=np.full(6, 5.0),
    )
    first = plan_day(data)
    ph = data.p_human.copy()
    ph[1] *= 0.5
    drifted = data.replace(p_human=ph)
    warm = plan_day(drifted, previous=first)
    cold = plan_day(drifted)
    assert warm.status is AllocationStatus.OPTIMAL
    assert warm.objective_mxn == pytest.approx(cold.objective_mxn, rel=1e-9)


def test_pricing_kernel_matches_a_naive_reduced_cost():
    from optimizer._pricing import _price

    rng = np.random.default_rng(0)
    n_c, n_k, n_s = 3, 4, 5
    shp = (n_c, n_k, n_s)
    profit, hold, agent, cost = (rng.normal(size=shp) for _ in range(4))
    allowed = rng.random(shp) < 0.8
    in_master = rng.random(shp) < 0.3
    y = dict(
        cps=rng.random((n_c, n_s)),
        chan=rng.random((n_c, n_s)),
        agent=rng.random(n_s),
        supply=rng.random(n_k),
        slot=rng.random((n_k, n_s)),
        carrier=rng.normal(size=n_c),
    )
    add = np.zeros(shp, bool)
    rc = np.empty(shp)
    _price(
        profit,
        hold,
        agent,
        cost,
        allowed,
        in_master,
        y["cps"],
        y["chan"],
        y["agent"],
        y["supply"],
        y["slot"],
        y["carrier"],
        0.3,
        0.0,
        1,
        add,
        rc,
    )
    naive = (
        profit
        - y["cps"][:, None, :]
        - y["chan"][:, None, :] * hold
        - y["agent"][None, None, :] * agent
        - y["supply"][None, :, None]
        - y["slot"][None]
        - y["carrier"][:, None, None]
        - 0.3 * cost
    )
    assert np.allclose(rc[allowed], naive[allowed])
    out = allowed & ~in_master
    best = np.where(out, naive, -np.inf).max(axis=0)
    expect = out & (naive == best[None]) & (best[None] > 0)
    assert (add == expect).all()


# ----------------------------------------------------------------------------- 3 a.m.


def test_min_share_on_a_carrier_that_covers_nothing_callable_is_relaxed_not_raised():
    data = tiny(n_r=2, coverage=np.array([[True, True], [False, False]]), min_share=[0.0, 0.3])
    result = plan_day(data)
    assert result.status is AllocationStatus.RELAXED
    assert result.relaxed == ["min_share[1]"]
    assert any("carrier 1 can carry no attempt" in c for c in result.conflicts)
    assert result.x.sum() == pytest.approx(100)  # not collapsed to zero traffic
    assert check_allocation(data, result) == []


def test_overspent_budget_is_relaxed_first_to_zero_spend():
    data = tiny(budget_mxn=-5.0, min_share=[0.0, 0.3])
    result = plan_day(data)
    assert result.status is AllocationStatus.RELAXED
    assert result.relaxed[0] == "budget"
    assert result.x.sum() == pytest.approx(0)


def test_unsolvable_data_returns_the_previous_plan_with_a_named_status():
    data = tiny()
    previous = plan_day(data)
    bad = data.replace(p_human=np.full(data.shape, np.nan))
    result = plan_day(bad, previous=previous)
    assert result.status is AllocationStatus.PREVIOUS
    assert np.array_equal(result.x, previous.x)
    assert plan_day(bad).status is AllocationStatus.NO_PLAN


# ----------------------------------------------------------------------------- live split


def test_live_split_rows_sum_to_one_and_respect_coverage():
    rng = np.random.default_rng(5)
    n_c, n_r, n_p, n_s = 4, 3, 2, 3
    cov = np.ones((n_c, n_r), bool)
    cov[2, 0] = False
    data = tiny(
        n_c=n_c,
        n_r=n_r,
        n_p=n_p,
        n_s=n_s,
        coverage=cov,
        p_human=rng.uniform(0.02, 0.3, (n_c, n_r, n_p, n_s)),
        enabled=[True, True, True, False],
        cps=np.full(n_c, 0.3),
    )
    plan = plan_day(data)
    est = data.p_human[..., 1] * rng.uniform(0.5, 1.5, (n_c, n_r, n_p))
    shares = live_split(plan, data, est, slot=1)
    assert shares.shape == (n_r, n_p, n_c)
    assert np.allclose(shares.sum(axis=2), 1.0)
    assert (shares[:, :, 3] == 0).all()  # disabled
    assert (shares[0, :, 2] == 0).all()  # uncovered
    assert (shares >= 0).all()


def test_live_split_follows_the_new_estimates():
    cost = np.zeros((2, 2, 1, 1))
    data = tiny(
        cost_per_attempt_mxn=cost, cps=np.array([0.2, 0.2]), n_r=2, value_mxn=np.array([100.0])
    )
    plan = plan_day(data)  # 20 attempts per carrier, 40 of 100 supply
    est = np.full((2, 2, 1), 0.1)
    est[1, 0] = 0.3  # carrier 1 now answers far better in region 0
    shares = live_split(plan, data, est, slot=0)
    assert shares[0, 0, 1] == pytest.approx(1.0)


def test_live_split_gives_zero_rows_where_nothing_is_callable():
    data = tiny(n_r=2, callable=np.array([[True], [False]]))
    plan = plan_day(data)
    shares = live_split(plan, data, data.p_human[..., 0], slot=0)
    assert (shares[1] == 0).all()
    assert shares[0].sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- message


def test_allocation_message_validates():
    data = tiny(n_c=2, n_r=2, n_p=1, cps=np.array([0.2, 0.2]))
    plan = plan_day(data)
    now = datetime(2024, 6, 11, 15, 0, tzinfo=UTC)
    msg = to_message(
        plan,
        data,
        "cobranza-a",
        "m-7",
        now + timedelta(minutes=15),
        now,
        carrier_names=["telcel-1", "att-2"],
        region_codes=["CDMX", "SON"],
        product_names=["tarjeta"],
        pacing={"target_abandon_rate": 0.03},
    )
    parsed = AllocationMessage.parse(msg)
    assert parsed.schema_ == "smartdial.allocation/1"
    assert parsed.to_dict()["schema"] == "smartdial.allocation/1"
    for products in parsed.shares.values():
        for row in products.values():
            assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
    assert parsed.carriers["telcel-1"].cps_budget == pytest.approx(0.2)


def test_a_bad_allocation_message_raises_a_clear_protocol_error():
    now = datetime(2024, 6, 11, 15, 0, tzinfo=UTC)
    msg = {
        "schema": "smartdial.allocation/2",
        "campaign": "c",
        "version": 1,
        "created_at": now.isoformat(),
        "valid_until": now.isoformat(),
        "model_version": "m",
        "shares": {"CDMX": {"tarjeta": {"telcel": 0.7}}},
        "carriers": {},
    }
    with pytest.raises(ProtocolError, match="schema"):
        AllocationMessage.parse(msg)
    msg["schema"] = "smartdial.allocation/1"
    with pytest.raises(ProtocolError, match=r"sum to 0\.7"):
        AllocationMessage.parse({**msg, "valid_until": (now + timedelta(1)).isoformat()})


def test_live_split_prices_agent_time_when_the_plan_is_agent_bound():
    """Carrier 0 answers more, carrier 1 costs less per contact (0.5 / 0.2 = 2.5 MXN against
    3 / 0.3 = 10 in region 0). With free agents the better answer rate wins region 0; when the
    plan's agent row binds (dual 0.9 MXN per agent-second), a contact is worth 100 − 90 MXN, so
    region 0 goes to the cheaper route per contact."""
    cost = np.zeros((2, 2, 1, 1))
    cost[0], cost[1] = 3.0, 0.5
    data = tiny(n_r=2, cost_per_attempt_mxn=cost)
    x = np.full((2, 2, 1, 1), 10.0)  # each carrier 20 attempts, each region 20
    est = np.array([[[0.30], [0.12]], [[0.20], [0.10]]])  # (C, R, P)
    free = AllocationResult(AllocationStatus.OPTIMAL, 0.0, x, duals={"agents": np.zeros(1)})
    bound = AllocationResult(AllocationStatus.OPTIMAL, 0.0, x, duals={"agents": np.full(1, 0.9)})
    assert live_split(free, data, est, slot=0)[0, 0] == pytest.approx([1.0, 0.0])
    assert live_split(bound, data, est, slot=0)[0, 0] == pytest.approx([0.0, 1.0])
