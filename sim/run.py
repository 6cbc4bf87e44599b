"""Run one simulated day under one policy: build the world, loop, collect.

The thin Python shell around the Numba event loop: it builds the world and
the dialer's decision state, advances virtual time in epochs (showing
progress), grows buffers if ever needed, and returns the raw record of the day.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


class Controller(Protocol):
    """A policy hook run between epochs (`sim.controller`'s adapters to the optimiser service
    loop, `optimizer.service`): it may rewrite the dialer's decision arrays in place (e.g.
    `weights`); the event loop itself stays policy-free."""

    epoch_s: float  # how often it wants to be called, virtual seconds

    def on_epoch(self, now_s: float, finished, log: Log, n_launched: int,
                 dialer: Dialer, decided) -> None:
        """`finished`: indices of the log rows whose attempt ended since the last call;
        `decided`: those whose answer (human, machine or none) became known since then,
        most of them still up if answered (`kernel.UP_HUMAN`, `kernel.UP_MACHINE`)."""

    def close(self, now_s: float) -> None:
        """Called once when the day has drained (e.g. to save what it learnt)."""


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
    controller: Any = None  # the policy hook that ran, if any (its plans, model, alarms)


def _trim(log: Log, n: int) -> Log:
    return Log(*(a[:n] for a in log))


def simulate(
    scenario: Scenario,
    policy: PolicySpec | str | None = None,
    seed: int | None = None,
    progress: Callable[[float, float], None] | None = None,
    controller: Controller | None = None,
    history=None,
    checkpoint=None,
    budget_mxn: float | None = None,
) -> DayRecord:
    """Simulate the scenario's day under `policy` (a name of scenario.policies or a spec).

    Routing `optimizer` / `oracle` bring their controller (`sim.controller`); `history`
    (Parquet day files) warm-starts the optimiser's model; `checkpoint` (a path) restores
    it from an earlier run's checkpoint when the file exists, and saves it there (see
    `OptimizerController`); `budget_mxn` replaces the campaign's daily telecom budget (inf:
    none). A `controller` given here is used instead.
    """
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
    if controller is None and policy.routing in ("optimizer", "oracle"):
        from sim.controller import for_policy

        controller = for_policy(policy, scenario, leads, world, clock, history, seed,
                                checkpoint, budget_mxn)

    callable_leads = dialer.state != hopper.DONE
    cap = np.minimum(
        campaign.retry.max_attempts_per_day,
        campaign.retry.max_attempts_per_7d - dialer.attempts_7d.astype(np.int64),
    )
    log = kernel.new_log(int(np.clip(cap, 0, None)[callable_leads].sum()) + 16)
    log.outcome[:] = -1  # not decided yet (then UP_* while an answered call is up)
    max_calls = int(world.channels.sum()) + 16
    n_agents = int(world.agents_sched.max())
    floor = kernel.new_floor(n_agents, len(op.carriers), max_calls, clock.n_minutes, world.cps)
    events.push(floor.ev_t, floor.ev_key, floor.ev_meta, 0.0, kernel.E_MINUTE, 0)
    events.push(floor.ev_t, floor.ev_key, floor.ev_meta, 0.0, kernel.E_TICK, 0)

    structs = as_structs(world, dialer, floor, log)
    t = 0.0
    horizon = 60.0 * clock.n_minutes  # the day plus its drain margin
    epoch = EPOCH_S if controller is None else controller.epoch_s
    pending = np.zeros(0, np.int64)  # log rows launched, not yet finished
    ringing = np.zeros(0, np.int64)  # log rows launched, answer not known yet
    n_seen = 0
    if controller is not None:
        controller.on_epoch(0.0, pending, log, 0, dialer, decided=ringing)
    while events.n_pending(floor.ev_meta) > 0:
        t_stop = t + epoch
        if kernel.run_until(*structs, t_stop) < 0:
            raise RuntimeError("event heap or attempt log overflow: sizing bug")
        t = t_stop
        if controller is not None:
            n_now = int(floor.counters[kernel.K_LOG])
            new = np.arange(n_seen, n_now)
            pending = np.concatenate([pending, new])
            ringing = np.concatenate([ringing, new])
            n_seen = n_now
            done = log.outcome[pending] >= 0
            known = log.outcome[ringing] != -1
            controller.on_epoch(t, pending[done], log, n_now, dialer, decided=ringing[known])
            pending = pending[~done]
            ringing = ringing[~known]
        if progress is not None:
            progress(min(t, clock.end_s), clock.end_s)
        if t > horizon:
            raise RuntimeError("calls still up long after the end of the day")
    last = floor.agent_since.max() if floor.agent_since.size else clock.end_s
    t_close = float(max(clock.end_s, last))
    kernel.close_books(structs[2], t_close)
    if controller is not None:
        controller.close(t_close)
    return DayRecord(
        scenario=scenario, policy=policy, seed=seed, clock=clock, leads=leads, world=world,
        dialer=dialer, floor=floor, log=_trim(log, int(floor.counters[kernel.K_LOG])),
        t_close_s=t_close, controller=controller,
    )
