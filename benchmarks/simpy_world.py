"""The simulated campaign day written plainly in SimPy: the reference for `sim.kernel`.

It shares the world's arrays (truth tables, calling windows, staffing, incidents)
with the Numba kernel but draws its own randomness from `numpy.random.Generator`
streams and re-implements the policies in plain Python, so the two models agree
only statistically. It never calls the kernel or the dialer's Numba functions.
"""

from __future__ import annotations

import datetime as dt
from collections import deque

import numpy as np
import simpy

from configs.scenario import PolicySpec, Scenario
from configs.schema import AgentSchedule, AgentSlot
from dialer.state import coverage_matrix, static_shares
from sim import draws
from sim.kernel import (
    D_DETECT,
    D_FAIL,
    D_HANDLE,
    D_PATIENCE,
    D_RING,
    D_WRAP,
    W_ABANDON_AFTER,
    W_BUSY,
    W_DECAY,
    W_END,
    W_MACHINE,
    W_RING_TIMEOUT,
)
from sim.portfolio import generate
from sim.world import build_world, clock_for
from smartdial.billing import billed_cost_mxn
from smartdial.outcomes import Outcome

KPI_KEYS = ("attempts", "contacts", "contact_rate", "abandon_rate", "occupancy", "cost")

_OUT, _IDLE, _TALK, _WRAP = range(4)
_STREAMS = ("answer", "ring", "fail", "handle", "wrap", "patience", "detect")


def reduced(
    scenario: Scenario, agents: int, hours: float, leads: int, start: dt.time | None = None
) -> Scenario:
    """The scenario's world on a smaller floor: `agents` agents for `hours` from `start`
    (default: the campaign's first slot), `leads` leads. Incidents are kept as they are;
    those after the new end simply never happen."""
    op = scenario.operation
    campaign = op.campaign(scenario.campaign)
    start = start or campaign.agents.slots[0].start
    end = (dt.datetime.combine(scenario.date, start) + dt.timedelta(hours=hours)).time()
    sched = AgentSchedule(
        timezone=campaign.agents.timezone, end=end, slots=(AgentSlot(start=start, agents=agents),)
    )
    campaigns = tuple(
        c.model_copy(update={"agents": sched}) if c.name == campaign.name else c
        for c in op.campaigns
    )
    return scenario.model_copy(update={
        "operation": op.model_copy(update={"campaigns": campaigns}),
        "portfolio": scenario.portfolio.model_copy(update={"leads": leads}),
    })


class _Sampler:
    """Draws in seconds from a World.dists row (kind, mean_s, sd_s) with one Generator."""

    def __init__(self, row: np.ndarray, rng: np.random.Generator):
        self.kind, self.mean, self.sd = int(row[0]), float(row[1]), float(row[2])
        self.rng = rng
        if self.kind == draws.LOGNORMAL:
            s2 = np.log(1.0 + (self.sd / self.mean) ** 2)
            self.mu, self.sigma = np.log(self.mean) - 0.5 * s2, np.sqrt(s2)
        elif self.kind == draws.GAMMA:
            self.shape, self.scale = (self.mean / self.sd) ** 2, self.sd**2 / self.mean

    def __call__(self) -> float:
        if self.kind == draws.FIXED:
            return self.mean
        if self.kind == draws.EXPONENTIAL:
            return float(self.rng.exponential(self.mean))
        if self.kind == draws.LOGNORMAL:
            return float(self.rng.lognormal(self.mu, self.sigma))
        return float(self.rng.gamma(self.shape, self.scale))


class SimpyDay:
    """One campaign day as SimPy processes: a staffing clock, a dialer ticking every
    `tick_s`, and one process per call (ring → outcome → wait for an agent → talk → wrap)."""

    def __init__(self, scenario: Scenario, policy: PolicySpec, seed: int):
        if policy.pacing not in ("ratio", "progressive"):
            raise ValueError(f"the SimPy twin paces ratio or progressive, not {policy.pacing}")
        if policy.routing not in ("static", "round_robin"):
            raise ValueError(f"the SimPy twin routes static or round_robin, not {policy.routing}")
        op = scenario.operation
        self.op = op
        self.campaign = campaign = op.campaign(scenario.campaign)
        self.policy = policy
        self.clock = clock_for(scenario)
        self.leads = generate(scenario, seed)
        self.w = build_world(scenario, self.leads, seed, self.clock)
        w = self.w
        self.end_s = float(w.scalars[W_END])
        self.n_minutes = self.clock.n_minutes
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0x51A9]).spawn(7)]
        self.rng = dict(zip(_STREAMS, rngs, strict=True))
        self.ring_time = _Sampler(w.dists[D_RING], self.rng["ring"])
        self.fail_time = _Sampler(w.dists[D_FAIL], self.rng["fail"])
        self.handle_time = _Sampler(w.dists[D_HANDLE], self.rng["handle"])
        self.wrap_time = _Sampler(w.dists[D_WRAP], self.rng["wrap"])
        self.patience = _Sampler(w.dists[D_PATIENCE], self.rng["patience"])
        self.detect_time = _Sampler(w.dists[D_DETECT], self.rng["detect"])
        # Python scalars and lists: the hot paths below are plain Python.
        self.region = w.region.tolist()
        self.product = w.product.tolist()
        self.network = w.network.tolist()
        self.mult = w.mult.tolist()
        self.invalid = w.invalid.tolist()
        self.open_at = w.region_open.T.tolist()  # [minute][region]
        self.agents_sched = w.agents_sched.tolist()

        # Dialer settings and rules.
        rules = campaign.retry
        self.tick_s = campaign.dialer.tick_s
        self.dial_ratio = campaign.dialer.dial_ratio if policy.pacing == "ratio" else 1.0
        self.max_day, self.max_7d = rules.max_attempts_per_day, rules.max_attempts_per_7d
        o = Outcome
        self.gap = {
            o.CONTACT: np.inf if rules.stop_after_contact else 0.0,
            o.ABANDONED: rules.min_gap_after_abandoned_s,
            o.MACHINE: rules.min_gap_after_machine_s,
            o.BUSY: rules.min_gap_after_busy_s,
            o.NO_ANSWER: rules.min_gap_after_no_answer_s,
            o.CONGESTION: rules.min_gap_after_congestion_s,
            o.INVALID: np.inf,
            o.FAILED: rules.min_gap_after_congestion_s,
        }
        self.attempts_day = [0] * len(self.region)
        self.attempts_7d = self.leads.attempts_7d.astype(int).tolist()

        # Hopper, oldest first: per region a FIFO of fresh leads, oldest debt first, then
        # retried leads in the order they became ready; the wait key of a fresh lead is
        # -days_past_due, of a retried one the time it became ready.
        n_r = len(op.regions)
        dpd = self.leads.days_past_due.astype(np.int64)
        callable_ = ~(self.leads.dnc | (self.leads.attempts_7d >= self.max_7d))
        order = np.lexsort((np.arange(dpd.size), -dpd, self.leads.region))
        order = order[callable_[order]]
        self.ready = [deque() for _ in range(n_r)]
        for lead in order.tolist():
            self.ready[self.region[lead]].append(lead)
        self.key = (-dpd).astype(float).tolist()
        self.retry = {oc: deque() for oc in Outcome}  # (ready_at, lead), FIFO in ready time

        # Routing: the dialer's own view of the trunks.
        nc = len(op.carriers)
        self.coverage = coverage_matrix(op).tolist()  # [carrier][region][network]
        self.enabled = [c.enabled for c in op.carriers]
        self.channels = [c.channels for c in op.carriers]
        self.cps_slots = [max(1, int(np.floor(c.cps))) for c in op.carriers]
        self.shares = static_shares(op).tolist()
        # Contracts: each carrier's share of the day's launches within [min, max].
        self.min_share = [c.min_share if c.enabled else 0.0 for c in op.carriers]
        self.max_share = [c.max_share for c in op.carriers]
        self.launched = [0] * nc
        self.launched_total = 0
        self.credit: dict[tuple[int, int], list[float]] = {}
        self.rr = 0
        self.dialer_used = [0] * nc
        self.dialer_launches = [deque(maxlen=k) for k in self.cps_slots]
        # The carriers' side: what they really enforce, and whether they are up.
        self.trunk_used = [0] * nc
        self.trunk_launches = [deque(maxlen=k) for k in self.cps_slots]
        self.up_at = w.carrier_up.T.tolist()  # [minute][carrier]

        # Agents: idle ones wait in a Store, longest idle first; answered calls queue
        # for them in answer order.
        self.env = env = simpy.Environment()
        n_agents = int(max(self.agents_sched)) if self.agents_sched else 0
        self.idle = simpy.Store(env)
        self.agent_state = [_OUT] * n_agents
        self.agent_since = [0.0] * n_agents
        self.agent_time = np.zeros((n_agents, 4))
        self.n_state = [n_agents, 0, 0, 0]
        self.pending_logoff = 0
        self.ringing = self.waiting = 0
        self.minute = 0
        # Attempt log.
        self.log_lead: list[int] = []
        self.launch_lead: list[int] = []  # in launch order (the log is in end order)
        self.log_carrier: list[int] = []
        self.log_outcome: list[int] = []
        self.log_wait: list[float] = []
        self.log_conn: list[float] = []

    # ------------------------------------------------------------ agents

    def _move(self, a: int, state: int) -> None:
        now = self.env.now
        old = self.agent_state[a]
        self.agent_time[a, old] += now - self.agent_since[a]
        self.n_state[old] -= 1
        self.n_state[state] += 1
        self.agent_state[a] = state
        self.agent_since[a] = now

    def _staff(self, target: int) -> None:
        have = self.n_state[_IDLE] + self.n_state[_TALK] + self.n_state[_WRAP] - self.pending_logoff
        if target > have:
            cancel = min(self.pending_logoff, target - have)
            self.pending_logoff -= cancel
            need = target - have - cancel
            for a in range(len(self.agent_state)):
                if need == 0:
                    break
                if self.agent_state[a] == _OUT:
                    self._move(a, _IDLE)
                    self.idle.put(a)
                    need -= 1
        elif target < have:
            extra = have - target
            while extra > 0 and self.idle.items:
                self._move(self.idle.items.pop(0), _OUT)
                extra -= 1
            self.pending_logoff += extra

    def _agent_ready(self, a: int) -> None:
        if self.pending_logoff > 0:
            self.pending_logoff -= 1
            self._move(a, _OUT)
            return
        self._move(a, _IDLE)
        self.idle.put(a)  # hands the agent straight to the longest-waiting call, if any

    def staffing(self):
        m = 0
        while True:
            self.minute = min(m, self.n_minutes - 1)
            now = self.env.now
            self._staff(self.agents_sched[self.minute] if now < self.end_s else 0)
            if now >= self.end_s:
                return
            m += 1
            yield self.env.timeout(60.0)

    # ------------------------------------------------------------ dialer

    def _release_due(self, now: float) -> None:
        for q in self.retry.values():
            while q and q[0][0] <= now:
                t, lead = q.popleft()
                self.key[lead] = t
                self.ready[self.region[lead]].append(lead)

    def _next_region(self) -> int:
        best, best_key = -1, np.inf
        is_open = self.open_at[self.minute]
        for r, q in enumerate(self.ready):
            if q and is_open[r] and self.key[q[0]] < best_key:
                best, best_key = r, self.key[q[0]]
        return best

    def _cps_ok(self, launches: deque, k: int, now: float) -> bool:
        return len(launches) < k or launches[0] <= now - 1.0

    def _usable(self, c: int, r: int, n: int, now: float) -> bool:
        return (
            self.enabled[c]
            and self.coverage[c][r][n]
            and self.dialer_used[c] < self.channels[c]
            and self._cps_ok(self.dialer_launches[c], self.cps_slots[c], now)
            and self.launched[c] + 1 <= self.max_share[c] * (self.launched_total + 1) + 1e-9
        )

    def _carrier(self, lead: int, now: float) -> int:
        r, n = self.region[lead], self.network[lead]
        nc = len(self.channels)
        # A carrier behind its minimum share takes the call first.
        owed, most = -1, 0.0
        for c in range(nc):
            behind = self.min_share[c] * (self.launched_total + 1) - self.launched[c]
            if behind > most and self._usable(c, r, n, now):
                owed, most = c, behind
        if owed >= 0:
            return owed
        if self.policy.routing == "round_robin":
            for step in range(nc):
                c = (self.rr + step) % nc
                if self._usable(c, r, n, now):
                    self.rr = (c + 1) % nc
                    return c
            return -1
        # Smooth weighted round robin over the carriers that can take the call now.
        credit = self.credit.setdefault((r, self.product[lead]), [0.0] * nc)
        total, best = 0.0, -1
        for c in range(nc):
            share = self.shares[c]
            if share <= 0.0 or not self._usable(c, r, n, now):
                continue
            credit[c] += share
            total += share
            if best < 0 or credit[c] > credit[best]:
                best = c
        if best >= 0:
            credit[best] -= total
        return best

    def dialer(self):
        env = self.env
        while env.now < self.end_s:
            now = env.now
            self._release_due(now)
            logged = self.n_state[_IDLE] + self.n_state[_TALK] + self.n_state[_WRAP]
            if logged - self.pending_logoff > 0:
                idle = len(self.idle.items)
                lines = max(int(np.floor(self.dial_ratio * idle + 1e-9)) - self.ringing, 0)
                for _ in range(lines):
                    r = self._next_region()
                    if r < 0:
                        break
                    lead = self.ready[r].popleft()
                    c = self._carrier(lead, now)
                    if c < 0:
                        self.ready[r].appendleft(lead)
                        break
                    self._launch(lead, c, now)
            yield env.timeout(self.tick_s)

    # ------------------------------------------------------------ calls

    def _p_human(self, lead: int, c: int, attempts_before: int) -> float:
        w, r, net = self.w, self.region[lead], self.network[lead]
        p = (
            w.p_base[self.product[lead], r, w.local_hour[r, self.minute]]
            * self.mult[lead]
            * w.net_factor[net]
            * w.carrier_q[c, net]
            * w.carrier_factor[c, self.minute]
            * w.scalars[W_DECAY] ** attempts_before
        )
        return min(p, 0.95)

    def _launch(self, lead: int, c: int, now: float) -> None:
        att = self.attempts_7d[lead]
        self.launch_lead.append(lead)
        self.attempts_day[lead] += 1
        self.attempts_7d[lead] += 1
        self.dialer_used[c] += 1
        self.dialer_launches[c].append(now)
        self.launched[c] += 1
        self.launched_total += 1
        self.trunk_used[c] += 1
        self.ringing += 1
        w = self.w
        timeout = w.scalars[W_RING_TIMEOUT]
        k = self.cps_slots[c]
        if (
            not self.up_at[self.minute][c]
            or self.trunk_used[c] > self.channels[c]
            or not self._cps_ok(self.trunk_launches[c], k, now)
        ):
            outcome, ring = Outcome.CONGESTION, 0.0  # rejected by the trunk at once
        else:
            self.trunk_launches[c].append(now)
            u = self.rng["answer"].random()
            p_fail = w.fail_rate[c]
            if self.invalid[lead]:
                outcome = Outcome.INVALID
            elif u < p_fail:
                outcome = Outcome.CONGESTION
            elif u < p_fail + (1.0 - p_fail) * w.scalars[W_BUSY]:
                outcome = Outcome.BUSY
            else:
                v = self.rng["answer"].random()
                p_h = self._p_human(lead, c, att)
                if v < p_h:
                    outcome = Outcome.CONTACT
                elif v < p_h + (1.0 - p_h) * w.scalars[W_MACHINE]:
                    outcome = Outcome.MACHINE
                else:
                    outcome = Outcome.NO_ANSWER
            if outcome in (Outcome.CONTACT, Outcome.MACHINE):
                ring = self.ring_time()
                if ring >= timeout:
                    ring, outcome = timeout, Outcome.NO_ANSWER
            elif outcome == Outcome.NO_ANSWER:
                ring = timeout
            else:
                ring = min(self.fail_time(), timeout)
        self.env.process(self._call(lead, c, outcome, ring))

    def _finish(self, lead: int, c: int, outcome: Outcome, wait_s: float, conn_s: float) -> None:
        now = self.env.now
        self.dialer_used[c] -= 1
        self.trunk_used[c] -= 1
        self.log_lead.append(lead)
        self.log_carrier.append(c)
        self.log_outcome.append(int(outcome))
        self.log_wait.append(wait_s)
        self.log_conn.append(conn_s)
        gap = self.gap[outcome]
        if (
            np.isfinite(gap)
            and self.attempts_day[lead] < self.max_day
            and self.attempts_7d[lead] < self.max_7d
        ):
            self.retry[outcome].append((now + gap, lead))

    def _call(self, lead: int, c: int, outcome: Outcome, ring: float):
        env = self.env
        yield env.timeout(ring)
        self.ringing -= 1
        if outcome == Outcome.MACHINE:
            detect = self.detect_time()
            yield env.timeout(detect)
            self._finish(lead, c, outcome, 0.0, detect)
            return
        if outcome != Outcome.CONTACT:
            self._finish(lead, c, outcome, 0.0, 0.0)
            return
        answered = env.now
        get = self.idle.get()
        if not get.triggered:
            self.waiting += 1
            yield get | env.timeout(self.patience())
            self.waiting -= 1
            if not get.triggered:
                get.cancel()
                wait = env.now - answered
                self._finish(lead, c, Outcome.ABANDONED, wait, wait)
                return
        agent = get.value
        self._move(agent, _TALK)
        wait = env.now - answered
        talk = self.handle_time()
        yield env.timeout(talk)
        self._finish(lead, c, Outcome.CONTACT, wait, wait + talk)
        self._move(agent, _WRAP)
        yield env.timeout(self.wrap_time())
        self._agent_ready(agent)

    # ------------------------------------------------------------ day

    def run(self) -> dict:
        self.env.process(self.staffing())
        self.env.process(self.dialer())
        self.env.run()
        for a in range(len(self.agent_state)):
            self._move(a, self.agent_state[a])  # close the open spells
        return self.kpis()

    def kpis(self) -> dict:
        outcome = np.array(self.log_outcome, np.int64)
        wait = np.array(self.log_wait)
        contact = outcome == int(Outcome.CONTACT)
        human = contact | (outcome == int(Outcome.ABANDONED))
        abandoned = (outcome == int(Outcome.ABANDONED)) | (
            contact & (wait > self.w.scalars[W_ABANDON_AFTER])
        )
        t = self.agent_time
        logged_s = t[:, _IDLE].sum() + t[:, _TALK].sum() + t[:, _WRAP].sum()
        n = int(outcome.size)
        carrier = np.array(self.log_carrier, np.int64)
        cost = billed_cost_mxn(np.array(self.log_conn), carrier, self.op)
        return {
            "attempts": n,
            "contacts": int(contact.sum()),
            "contact_rate": float(contact.sum() / n) if n else 0.0,
            "abandon_rate": float(abandoned.sum() / human.sum()) if human.any() else 0.0,
            "occupancy": float((t[:, _TALK].sum() + t[:, _WRAP].sum()) / logged_s)
            if logged_s else 0.0,
            "cost": float(cost.sum()),
        }


def simulate_simpy(
    scenario: Scenario, policy: PolicySpec | str | None = None, seed: int | None = None
) -> dict:
    """KPIs (`KPI_KEYS`) of the scenario's day under `policy`, simulated in SimPy."""
    if policy is None:
        policy = scenario.default_policy
    if isinstance(policy, str):
        policy = scenario.policies[policy]
    seed = scenario.seed if seed is None else seed
    return SimpyDay(scenario, policy, seed).run()
