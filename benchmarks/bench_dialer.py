"""Dialer decisions (Numba) beside straightforward pure-Python versions of the same logic.

- A predictive pacing decision on a 300-agent floor with 400 calls ringing
  (targets: ≤ 100 µs per decision).
- Picking the next lead (VALUE order, callbacks first) from 1 M leads in the
  mx operation's 2 432 groups, then taking it off its queue (target: ≤ 20 µs
  amortised, the once-a-minute refresh of the later-peak table included).

Both Numba sides run in a compiled loop, as the event loop calls them; the
pure-Python twins (benchmarks/naive_dialer.py) are called from Python. The
per-call time and the speed-up land in ``extra_info``. Run:
``pytest benchmarks/bench_dialer.py --benchmark-only``. Nothing asserts on wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from configs import load_scenario
from configs.schema import DialerSettings
from dialer import hopper, pacing
from dialer.state import new_dialer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive_dialer import naive_next_lead, naive_predictive_lines

ROOT = Path(__file__).resolve().parents[1]
N_LEADS = 1_000_000
DECISIONS = 1000  # per Numba round
PICKS = 2000  # per Numba round
PICKS_PER_MINUTE = 600  # ~10 launches per second on a 300-agent floor
NOW = 36_000.0

_per_call_us: dict[str, float] = {}


def _report(benchmark, name: str, calls: int, numba_name: str, python_name: str) -> None:
    us = benchmark.stats.stats.mean / calls * 1e6
    _per_call_us[name] = us
    benchmark.extra_info["us_per_call"] = round(us, 3)
    if numba_name in _per_call_us and python_name in _per_call_us:
        ratio = _per_call_us[python_name] / _per_call_us[numba_name]
        benchmark.extra_info["speedup_vs_pure_python"] = round(ratio, 1)
        print(f"\n{numba_name}: {_per_call_us[numba_name]:.2f} µs, "
              f"{python_name}: {_per_call_us[python_name]:.1f} µs, ratio {ratio:.0f}x")


# ---------------------------------------------------------------- pacing


@pytest.fixture(scope="module")
def floor():
    rng = np.random.default_rng(5)
    params = pacing.params_from(DialerSettings(), 0.03, 2.0, 25.0)
    memory = pacing.new_memory(params)
    t = NOW - 3600.0
    for _ in range(5000):
        t += 0.5
        u = rng.random()
        what = pacing.EV_HUMAN if u < 0.1 else (pacing.EV_MACHINE if u < 0.3 else
                                                 pacing.EV_NO_ANSWER)
        pacing.record(params, memory, what, rng.lognormal(2.0, 0.5), t)
        if u < 0.1:
            pacing.record(params, memory, pacing.EV_TALK, rng.lognormal(4.9, 0.6), t)
            pacing.record(params, memory, pacing.EV_WRAP, rng.lognormal(3.0, 0.4), t)
    n_agents = 300
    state = rng.choice([pacing.AG_IDLE, pacing.AG_TALK, pacing.AG_WRAP], n_agents,
                       p=[0.05, 0.85, 0.10]).astype(np.int8)
    since = NOW - rng.uniform(0, 300, n_agents)
    ring_t0 = np.full(1200, -1.0)
    ring_t0[rng.choice(1200, 400, replace=False)] = NOW - rng.uniform(0, 25, 400)
    obs = np.zeros(pacing.N_OBS)
    obs[pacing.O_LOGGED] = n_agents
    obs[pacing.O_IDLE] = (state == pacing.AG_IDLE).sum()
    obs[pacing.O_TALKING] = (state == pacing.AG_TALK).sum()
    obs[pacing.O_WRAPPING] = (state == pacing.AG_WRAP).sum()
    obs[pacing.O_RINGING] = 400
    return params, memory, obs, state, since, ring_t0


@njit(cache=True)
def _decide_many(k, params, memory, obs, now, state, since, ring_t0):
    total = 0
    for i in range(k):
        total += pacing.predictive_lines(params, memory, obs, now + 0.001 * i, state, since,
                                         ring_t0)
    return total


def test_pacing_decision_numba(benchmark, floor):
    params, memory, obs, state, since, ring_t0 = floor
    _decide_many(1, params, memory.copy(), obs, NOW, state, since, ring_t0)
    benchmark.pedantic(_decide_many, args=(DECISIONS, params, memory.copy(), obs, NOW, state,
                                           since, ring_t0), rounds=20, warmup_rounds=2)
    _report(benchmark, "pacing_numba", DECISIONS, "pacing_numba", "pacing_python")


def test_pacing_decision_pure_python(benchmark, floor):
    params, memory, obs, state, since, ring_t0 = floor
    m = memory.copy()
    benchmark.pedantic(naive_predictive_lines, args=(params, m, obs, NOW, state, since, ring_t0),
                       rounds=20, warmup_rounds=1)
    _report(benchmark, "pacing_python", 1, "pacing_numba", "pacing_python")


# ---------------------------------------------------------------- next lead


@pytest.fixture(scope="module")
def hopper_1m():
    from sim.portfolio import generate
    from sim.world import build_world, clock_for

    sc = load_scenario(ROOT / "configs/scenarios/mx-collections.yaml")
    sc = sc.model_copy(update={"portfolio": sc.portfolio.model_copy(update={"leads": N_LEADS})})
    leads = generate(sc, 1)
    clock = clock_for(sc)
    world = build_world(sc, leads, 1, clock)
    policy = sc.policies["predictive"]
    d = new_dialer(sc.operation, sc.campaign_config, policy, leads)
    rng = np.random.default_rng(3)
    d.contact_p[:] = rng.uniform(0.02, 0.3, d.contact_p.shape)  # a model's table
    d.contact_n[:] = 50.0
    # Time the regular path: a due callback returns after a scan of the regions
    # only, which would flatter the average.
    d.q_size[d.n_groups + hopper.N_RETRY:] = 0
    minute = int(clock.at(__import__("datetime").time(11)) // 60)
    return d, world.region_open, world.local_hour, minute


@njit(cache=True)
def _pick_many(k, per_minute, head, tail, size, nxt, n_groups, group_region, region_open,
               enq_t, minute, now, ready_at, local_hour, contact_p, contact_n, value, peak, hop,
               params):
    got = 0
    for i in range(k):
        if i % per_minute == 0:
            hop[0] = -1  # a new minute: the later-peak table is refreshed
        q = hopper.next_lead(1, head, size, n_groups, group_region, region_open, enq_t, minute,
                             now, ready_at, local_hour, contact_p, contact_n, value, peak, hop,
                             params)
        if q < 0:
            break
        hopper.dequeue(head, tail, size, nxt, q)
        got += 1
    return got


def _pick_args(h):
    d, region_open, local_hour, minute = h
    return (d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, d.group_region, region_open,
            d.enq_t, minute, 60.0 * minute, d.ready_at, local_hour, d.contact_p, d.contact_n,
            d.value,
            d.peak, d.hop, d.hop_params)


def test_next_lead_1m_numba(benchmark, hopper_1m):
    args = _pick_args(hopper_1m)
    assert _pick_many(1, PICKS_PER_MINUTE, *args) == 1
    got = benchmark.pedantic(_pick_many, args=(PICKS, PICKS_PER_MINUTE, *args), rounds=20,
                             warmup_rounds=1)
    assert got == PICKS
    benchmark.extra_info["groups"] = int(hopper_1m[0].n_groups)
    _report(benchmark, "pick_numba", PICKS, "pick_numba", "pick_python")


def test_next_lead_1m_pure_python(benchmark, hopper_1m):
    (head, _tail, size, nxt, n_groups, group_region, region_open, enq_t, minute, now, ready_at,
     local_hour, contact_p, contact_n, value, peak, hop, params) = _pick_args(hopper_1m)

    calls = [0]

    def pick_one():
        if calls[0] % PICKS_PER_MINUTE == 0:
            hop[0] = -1  # a new minute: the later-peak table is refreshed
        calls[0] += 1
        q = naive_next_lead(hopper.VALUE, head, size, n_groups, group_region, region_open,
                            enq_t, minute, now, ready_at, local_hour, contact_p, contact_n,
                            value, peak, hop, params)
        head[q], size[q] = nxt[head[q]], size[q] - 1
        return q

    benchmark.pedantic(pick_one, rounds=30, warmup_rounds=1)
    _report(benchmark, "pick_python", 1, "pick_numba", "pick_python")
