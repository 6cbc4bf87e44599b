"""Run one simulated day under one policy: build the world, loop, collect.

The thin Python shell around the Numba event loop: it builds the world and
the dialer's decision state, advances virtual time in epochs (showing
progress), grows buffers if ever needed, and returns the raw record of the day.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from configs.scenario import PolicySpec, Scenario
from dialer import hopper
from dialer.state import Dialer, new_dialer
from sim import events, kernel
from sim.kernel import Floor, Log, World
from sim.portfolio import Leads, generate
from sim.structs import as_structs
from sim.world import Clock, build_world, clock_for

EPOCH_S = 600.0  # virtual seconds between returns to Python (progress, policy hooks)


@dataclass
class DayRecord:
    """Everything a day left behind, for KPIs and reports."""

    scenario: Scenario
    policy: PolicySpec
    seed: int
    clock: Clock
    leads: Leads
    world: World
    dialer: Dialer
    floor: Floor
    log: Log  # one row per attempt, trimmed
    t_close_s: float  # when the last call ended


def _trim(log: Log, n: int) -> Log:
    return Log(*(a[:n] for a in log))


def simulate(
    scenario: Scenario,
    policy: PolicySpec | str | None = None,
    seed: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> DayRecord:
    """Simulate the scenario's day under `policy` (a name of scenario.policies or a spec)."""
    if policy is None:
        policy = scenario.default_policy
    if isinstance(policy, str):
        policy = scenario.policies[policy]
    seed = scenario.seed if seed is None else seed
    op = scenario.operation
    campaign = op.campaign(scenario.campaign)
    clock = clock_for(scenario)
    leads = generate(scenario, seed)
    world = build_world(scenario, leads, seed, clock)
    dialer = new_dialer(op, campaign, policy, leads)

    callable_leads = dialer.state != hopper.DONE
    cap = np.minimum(
        campaign.retry.max_attempts_per_day,
        campaign.retry.max_attempts_per_7d - dialer.attempts_7d.astype(np.int64),
    )
    log = kernel.new_log(int(np.clip(cap, 0, None)[callable_leads].sum()) + 16)
    max_calls = int(world.channels.sum()) + 16
    n_agents = int(world.agents_sched.max())
    floor = kernel.new_floor(n_agents, len(op.carriers), max_calls, clock.n_minutes, world.cps)
    events.push(floor.ev_t, floor.ev_key, floor.ev_meta, 0.0, kernel.E_MINUTE, 0)
    events.push(floor.ev_t, floor.ev_key, floor.ev_meta, 0.0, kernel.E_TICK, 0)

    structs = as_structs(world, dialer, floor, log)
    t = 0.0
    horizon = 60.0 * clock.n_minutes  # the day plus its drain margin
    while floor.ev_meta[0] > 0:
        t_stop = t + EPOCH_S
        if kernel.run_until(*structs, t_stop) < 0:
            raise RuntimeError("event heap or attempt log overflow: sizing bug")
        t = t_stop
        if progress is not None:
            progress(min(t, clock.end_s), clock.end_s)
        if t > horizon:
            raise RuntimeError("calls still up long after the end of the day")
    last = floor.agent_since.max() if floor.agent_since.size else clock.end_s
    t_close = float(max(clock.end_s, last))
    kernel.close_books(structs[2], t_close)
    return DayRecord(
        scenario=scenario, policy=policy, seed=seed, clock=clock, leads=leads, world=world,
        dialer=dialer, floor=floor, log=_trim(log, int(floor.counters[kernel.K_LOG])),
        t_close_s=t_close,
    )
