"""Day plan benchmark: plan_day (column generation) beside the same LP in SciPy/HiGHS-IPM.

Instance: 20 carriers × 32 regions × 8 products × 48 slots of 15 min (245,760 variables),
generated from a seed. Run: ``pytest benchmarks/bench_allocate.py --benchmark-only``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from optimizer.allocate import (
    AllocationData,
    AllocationStatus,
    check_allocation,
    live_split,
    plan_day,
    plan_over_draws,
)

SEED = 20240611


def realistic_instance(
    seed: int = SEED, n_c: int = 20, n_r: int = 32, n_p: int = 8, n_s: int = 48
) -> AllocationData:
    """A Mexican collections day from 08:00 Mexico City time, 15-min slots.

    Regions sit in 4 UTC offsets (−5, −6, −7, −8) and may be called 08:00–21:00 local time;
    carriers differ in quality (contact rate), price and size; 5 carriers cover only part of
    the country; 2 carriers have contract shares; agents ramp up, peak and thin out.
    """
    rng = np.random.default_rng(seed)
    slot_s = 900.0
    central_h = 8.0 + np.arange(n_s) * slot_s / 3600  # start of slot, UTC−6 hours
    offset = rng.choice([1.0, 0.0, -1.0, -2.0], size=n_r, p=[0.1, 0.6, 0.2, 0.1])  # vs UTC−6
    local_h = central_h[None, :] + offset[:, None]  # (R,S)
    callable_ = (local_h >= 8.0) & (local_h + slot_s / 3600 <= 21.0)
    # Contact rates: best in the early evening, a dip after lunch.
    hour_curve = (
        0.8
        + 0.25 * np.exp(-(((local_h - 19.0) / 1.5) ** 2))
        - 0.15 * np.exp(-(((local_h - 15.0) / 1.0) ** 2))
    )
    base_p = rng.uniform(0.03, 0.09, n_p)
    region_f = rng.lognormal(0.0, 0.25, n_r)
    carrier_f = rng.uniform(0.6, 1.2, n_c)
    noise = rng.lognormal(0.0, 0.15, (n_c, n_r, 1, n_s))
    p_human = (
        carrier_f[:, None, None, None]
        * region_f[None, :, None, None]
        * base_p[None, None, :, None]
        * hour_curve[None, :, None, :]
        * noise
    )
    p_human = np.clip(p_human, 0.001, 0.6)
    p_machine = 0.15
    talk_s = rng.uniform(150.0, 260.0, n_p)
    per_min = rng.uniform(0.12, 0.45, n_c)  # MXN per connected minute
    per_attempt = rng.uniform(0.0, 0.04, n_c)  # MXN per attempt (setup / SIP charge)
    connected_s = p_human * talk_s[None, None, :, None] + p_machine * 20.0
    cost = per_min[:, None, None, None] * connected_s / 60.0 + per_attempt[:, None, None, None]
    hold = 25.0 * (1 - p_human - p_machine) + connected_s + 8.0 * (p_human + p_machine)
    coverage = np.ones((n_c, n_r), bool)
    for c in rng.choice(n_c, 5, replace=False):
        coverage[c] = rng.random(n_r) < rng.uniform(0.4, 0.7)
    enabled = np.ones(n_c, bool)
    enabled[rng.integers(n_c)] = False
    cap_cps = np.full(n_c, np.inf)
    cap_cps[rng.integers(n_c)] = 0.5
    min_share = np.zeros(n_c)
    max_share = np.ones(n_c)
    contracted = rng.choice(np.flatnonzero(enabled & coverage.all(axis=1)), 2, replace=False)
    min_share[contracted[0]] = 0.10
    max_share[contracted[1]] = 0.15
    ramp = np.interp(central_h, [8, 10, 13, 14, 18, 20], [40, 120, 120, 80, 110, 60])
    supply = np.round(rng.lognormal(7.0, 0.8, (n_r, n_p)))
    return AllocationData(
        slot_s=slot_s,
        p_human=p_human,
        value_mxn=rng.uniform(40.0, 160.0, n_p),
        cost_per_attempt_mxn=cost,
        hold_s=hold,
        handle_s=talk_s[None, :] + 35.0 + rng.uniform(-20, 20, (n_r, n_p)),
        cps=rng.uniform(0.5, 3.0, n_c),
        channels=np.round(rng.uniform(10, 60, n_c)),
        coverage=coverage,
        agents=np.round(ramp),
        supply=supply,
        callable=callable_,
        enabled=enabled,
        cap_cps=cap_cps,
        target_occupancy=0.85,
        min_share=min_share,
        max_share=max_share,
        budget_mxn=float(supply.sum() * 0.35),
    )


def straightforward_lp(data: AllocationData) -> tuple[float, np.ndarray, float]:
    """The same decision problem as one flat LP over all C·R·P·S variables, SciPy HiGHS-IPM.

    Forbidden cells get bounds (0, 0); shares are dense rows over every variable.
    Returns (objective MXN, x, seconds).
    """
    t0 = time.perf_counter()
    n_c, n_r, n_p, n_s = data.shape
    n = n_c * n_r * n_p * n_s
    c_idx, r_idx, p_idx, s_idx = np.unravel_index(np.arange(n), data.shape)
    ph = data.p_human.ravel()
    profit = ph * data.value_mxn[p_idx] - data.cost_per_attempt_mxn.ravel()
    rows, cols, vals, ub = [], [], [], []
    n_rows = 0

    def add(row_of_var, coef, rhs):
        nonlocal n_rows
        rows.append(row_of_var + n_rows)
        cols.append(np.arange(n))
        vals.append(coef)
        ub.append(rhs)
        n_rows += len(rhs)

    cps = np.where(data.enabled, np.minimum(data.cps, data.cap_cps), 0.0)
    add(c_idx * n_s + s_idx, np.ones(n), np.repeat(cps * data.slot_s, n_s))
    chan = np.where(data.enabled, data.channels, 0.0)
    add(c_idx * n_s + s_idx, data.hold_s.ravel(), np.repeat(chan * data.slot_s, n_s))
    add(s_idx, ph * data.handle_s[r_idx, p_idx], data.agents * data.slot_s * data.target_occupancy)
    add(r_idx * n_p + p_idx, np.ones(n), data.supply.ravel())
    for c in range(n_c):
        mine = (c_idx == c).astype(float)
        if data.min_share[c] > 0:  # min·Σx − Σx_c ≤ 0
            add(np.zeros(n, int), data.min_share[c] - mine, np.zeros(1))
        if data.max_share[c] < 1:  # Σx_c − max·Σx ≤ 0
            add(np.zeros(n, int), mine - data.max_share[c], np.zeros(1))
    if np.isfinite(data.budget_mxn):
        add(np.zeros(n, int), data.cost_per_attempt_mxn.ravel(), np.array([data.budget_mxn]))
    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n)
    )
    a.eliminate_zeros()
    bounds = np.zeros((n, 2))
    bounds[:, 1] = np.where(data.allowed().ravel(), np.inf, 0.0)
    res = linprog(-profit, A_ub=a, b_ub=np.concatenate(ub), bounds=bounds, method="highs-ipm")
    elapsed = time.perf_counter() - t0
    assert res.status == 0, res.message
    return float(-res.fun), res.x.reshape(data.shape), elapsed


@pytest.fixture(scope="module")
def instance() -> AllocationData:
    return realistic_instance()


_BASELINE: dict[str, tuple[float, np.ndarray, float]] = {}


def _baseline(data: AllocationData) -> tuple[float, np.ndarray, float]:
    if "lp" not in _BASELINE:
        _BASELINE["lp"] = straightforward_lp(data)
    return _BASELINE["lp"]


def test_highs_ipm_baseline(benchmark, instance):
    """(b) the straightforward LP, once (it takes tens of seconds)."""
    benchmark.pedantic(
        lambda: _BASELINE.update(lp=straightforward_lp(instance)), rounds=1, iterations=1
    )
    obj, _, seconds = _BASELINE["lp"]
    benchmark.extra_info.update({"objective_mxn": obj, "seconds": seconds})


def test_plan_day_vs_highs_ipm(benchmark, instance):
    """(a) plan_day including model build, against (b): ≥ 8× faster, same optimum."""
    plan_day(instance, time_limit_s=30.0)  # compile / load the Numba cache
    result = benchmark.pedantic(
        plan_day, args=(instance,), kwargs={"time_limit_s": 30.0}, rounds=5, iterations=1
    )
    assert result.status is AllocationStatus.OPTIMAL
    assert check_allocation(instance, result, tol=1e-6) == []
    base_obj, _, base_s = _baseline(instance)
    rel = abs(result.objective_mxn - base_obj) / max(1.0, abs(base_obj))
    mean_s = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {
            "variables": int(np.prod(instance.shape)),
            "plan_day_objective_mxn": result.objective_mxn,
            "highs_ipm_objective_mxn": base_obj,
            "objective_rel_diff": rel,
            "plan_day_mean_s": mean_s,
            "highs_ipm_s": base_s,
            "speedup_vs_highs_ipm": base_s / mean_s,
            "cg_rounds": result.rounds,
            "master_columns": result.n_columns,
        }
    )
    assert rel <= 1e-3  # same optimum (agreement, not timing)


def test_plan_day_warm_start(benchmark, instance):
    """Re-plan after the contact estimates of two carriers drifted (a spam flag, a bad route)."""
    first = plan_day(instance, time_limit_s=30.0)
    ph = instance.p_human.copy()
    ph[[3, 7]] *= 0.6
    drifted = instance.replace(p_human=ph)
    cold = plan_day(drifted, time_limit_s=30.0)
    result = benchmark.pedantic(
        plan_day,
        args=(drifted,),
        kwargs={"previous": first, "time_limit_s": 30.0},
        rounds=5,
        iterations=1,
    )
    assert result.status is AllocationStatus.OPTIMAL
    assert abs(result.objective_mxn - cold.objective_mxn) <= 1e-6 * abs(cold.objective_mxn)
    benchmark.extra_info.update({"warm_rounds": result.rounds, "cold_rounds": cold.rounds})


def test_replan_over_draws(benchmark, instance):
    """The learning loop's re-plan after the drift above: the plan at the estimates, warm from
    the last one, then the mean of 4 plans at carrier rates drawn within 5 % (each warm from
    it), against one HiGHS-IPM solve of a single plan."""
    first = plan_day(instance, time_limit_s=30.0)
    ph = instance.p_human.copy()
    ph[[3, 7]] *= 0.6
    drifted = instance.replace(p_human=ph)
    n_c, _, n_p, _ = instance.shape
    factors = np.exp(0.05 * np.random.default_rng(2).standard_normal((4, n_c, 1, n_p, 1)))

    def replan():
        return plan_over_draws(drifted, plan_day(drifted, previous=first, time_limit_s=30.0),
                               factors, time_limit_s=30.0)

    result = benchmark.pedantic(replan, rounds=3, iterations=1)
    assert check_allocation(drifted, result) == []
    _, _, base_s = _baseline(instance)
    mean_s = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {"replan_mean_s": mean_s, "highs_ipm_s": base_s, "speedup_vs_highs_ipm": base_s / mean_s}
    )


def test_live_split(benchmark, instance):
    plan = plan_day(instance, time_limit_s=30.0)
    slot = 20
    est = instance.p_human[..., slot] * np.random.default_rng(1).lognormal(
        0, 0.2, instance.shape[:3]
    )
    live_split(plan, instance, est, slot)  # compile / load the Numba cache
    shares = benchmark(live_split, plan, instance, est, slot)
    benchmark.extra_info["live_split_mean_ms"] = benchmark.stats.stats.mean * 1e3
    assert np.allclose(shares.sum(axis=2)[shares.sum(axis=2) > 0], 1.0)


def test_live_split_under_a_budget(benchmark, instance):
    """The same split with telecom cost priced (a daily budget): the priced costs add a pass."""
    priced = instance.replace(cost_weight=50.0)
    plan = plan_day(priced, time_limit_s=30.0)
    slot = 20
    est = instance.p_human[..., slot] * np.random.default_rng(1).lognormal(
        0, 0.2, instance.shape[:3]
    )
    live_split(plan, priced, est, slot)
    shares = benchmark(live_split, plan, priced, est, slot)
    benchmark.extra_info["live_split_mean_ms"] = benchmark.stats.stats.mean * 1e3
    assert np.allclose(shares.sum(axis=2)[shares.sum(axis=2) > 0], 1.0)
