"""The optimiser's policy loop: from config, clock, lead supply and contact estimates to shares.

Builds the allocator's data for the rest of the day, re-plans when due (or when a carrier's
answer rate has changed) and turns the plan into the dialer's live carrier shares. Shared by
the live service and the simulator; pure: `now` and every datum are arguments, no I/O.

Axes: carriers ``c``, regions ``r``, lines ``q = product * n_networks + network`` (the
destination network matters as much as the product: coverage and route quality depend on it),
slots ``s`` of ``slot_s`` seconds from `now` to the end of the agents' day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from configs.schema import within_calling_hours
from optimizer.allocate import (
    AllocationData,
    AllocationResult,
    check_allocation,
    live_split,
    plan_day,
    plan_over_draws,
    route_values,
)
from optimizer.budget import DailyBudget

F64 = NDArray[np.float64]
N_HOURS = 24


@dataclass(frozen=True)
class CallTimes:
    """What an attempt costs in channel time and billing, beyond what the model estimates.

    Defaults are a collections floor's usual figures; `talk_cv` shapes the billed-duration
    expectation (coarse billing increments make short calls dear).
    """

    ring_answered_s: float = 9.0  # until a human or a machine answers
    no_answer_share: float = 0.85  # of the unanswered attempts that ring to the timeout
    fail_signal_s: float = 3.0  # busy, congestion, invalid: signalled quickly
    machine_detect_s: float = 3.5  # AMD decision time, billed
    wrap_s: float = 20.0  # agent wrap-up after a contact
    talk_s: float = 160.0  # mean talk time when the model has none yet
    talk_cv: float = 0.7


@dataclass(frozen=True, eq=False)
class DayFrame:
    """The static facts of one campaign day, per minute from the first agent slot.

    Built once from the configuration (`day_frame`); everything in it is known to ops.
    """

    operation: object
    campaign: object
    start_utc: dt.datetime
    end_s: float  # the agents' day ends here (seconds from start_utc)
    local_hour: NDArray[np.int64]  # (R, minutes) local hour of each region
    callable: NDArray[np.bool_]  # (R, minutes) inside the region's calling window and the day
    agents: F64  # (minutes,) scheduled agents
    coverage: NDArray[np.bool_]  # (C, R, N)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        op = self.operation
        return len(op.carriers), len(op.regions), len(op.products), len(op.networks)

    def minute(self, t_s: float) -> int:
        return int(min(max(t_s // 60.0, 0), self.local_hour.shape[1] - 1))


def day_frame(operation, campaign, date: dt.date, drain_minutes: int = 90) -> DayFrame:
    """The day of `campaign` on `date` (its agent schedule's first slot to its end)."""
    from dialer.state import coverage_matrix

    sched = campaign.agents
    tz = ZoneInfo(sched.timezone)
    start = dt.datetime.combine(date, sched.start, tzinfo=tz)
    end = dt.datetime.combine(date, sched.end, tzinfo=tz)
    end_s = (end - start).total_seconds()
    n_min = math.ceil(end_s / 60.0) + drain_minutes
    start_utc = start.astimezone(dt.UTC)
    times = [start_utc + dt.timedelta(minutes=i) for i in range(n_min)]
    n_r = len(operation.regions)
    hour = np.zeros((n_r, n_min), np.int64)
    ok = np.zeros((n_r, n_min), bool)
    for r, region in enumerate(operation.regions):
        windows = operation.region_calling_hours(region)
        for i, t in enumerate(times):
            local = t.astimezone(region.tz)
            hour[r, i] = local.hour
            ok[r, i] = i * 60.0 < end_s and within_calling_hours(windows, local)
    agents = np.array(
        [sched.agents_at(t.astimezone(tz).time()) if i * 60.0 < end_s else 0
         for i, t in enumerate(times)],
        float,
    )
    return DayFrame(operation, campaign, start_utc, end_s, hour, ok, agents,
                    coverage_matrix(operation))


# ----------------------------------------------------------------------------- supply


def lead_segments(frame: DayFrame, region, product, network) -> NDArray[np.int64]:
    """Flat (region, line) segment of each lead: ``r * n_lines + product * N + network``."""
    _, _, n_p, n_n = frame.shape
    line = np.asarray(product, np.int64) * n_n + np.asarray(network, np.int64)
    return np.asarray(region, np.int64) * (n_p * n_n) + line


def remaining_supply(frame: DayFrame, segment, alive, attempts_day, attempts_7d) -> F64:
    """(R, Q) attempts still allowed today: live leads × what their caps leave."""
    retry = frame.campaign.retry
    left = np.minimum(
        retry.max_attempts_per_day - np.asarray(attempts_day, np.int64),
        retry.max_attempts_per_7d - np.asarray(attempts_7d, np.int64),
    )
    w = np.where(alive, np.clip(left, 0, None), 0).astype(float)
    _, n_r, n_p, n_n = frame.shape
    return np.bincount(segment, weights=w, minlength=n_r * n_p * n_n).reshape(n_r, n_p * n_n)


# ----------------------------------------------------------------------------- data


def _expected_billed_s(carrier, mean_talk_s: float, cv: float, n: int = 64) -> float:
    """E[billed seconds] of a talk time lognormal(mean, cv), by quantile midpoints."""
    sigma2 = math.log1p(cv * cv)
    mu = math.log(max(mean_talk_s, 1.0)) - sigma2 / 2
    nd = statistics.NormalDist(mu, math.sqrt(sigma2))
    qs = [math.exp(nd.inv_cdf((i + 0.5) / n)) for i in range(n)]
    return sum(carrier.billed_seconds(t) for t in qs) / n


def build_data(
    frame: DayFrame,
    now_s: float,
    p_human_hour: F64,
    p_machine_hour: F64,
    supply: F64,
    *,
    slot_s: float = 900.0,
    talk_s: F64 | None = None,
    agents_now: float | None = None,
    enabled: NDArray[np.bool_] | None = None,
    cap_cps: F64 | None = None,
    done_per_carrier: F64 | None = None,
    expected_future_attempts: float | None = None,
    budget_mxn: float = math.inf,
    cost_weight: float = 1.0,
    queued: F64 | None = None,
    attempts_per_agent_s: float | None = None,
    times: CallTimes = CallTimes(),
    target_occupancy: float = 0.85,
) -> AllocationData:
    """The allocator's data for the rest of the day from `now_s` (seconds from frame start).

    p_human_hour, p_machine_hour: (C, R, P, N, 24) per attempt by the region's local hour.
    supply: (R, Q) attempts still allowed. talk_s: (P,) mean talk seconds per contact.
    agents_now: agents actually logged in (replaces the schedule for the current slot).
    enabled / cap_cps: ops overrides per carrier. done_per_carrier and
    expected_future_attempts turn the contracts' day shares into shares of the rest of the
    day (a carrier already over its minimum needs less of what is left).
    queued (R, Q) and attempts_per_agent_s: the dialer's lead queues and its pacing rate.
    Pacing, not the plan, decides how many lines are dialled, and the hopper which leads:
    given both, each segment's attempts per slot are capped at its share of what pacing will
    dial (rate × scheduled agents, spread over the queued leads of the regions open then),
    so the plan chooses carriers for the traffic that will really come.
    """
    op = frame.operation
    n_c, n_r, n_p, n_n = frame.shape
    n_q = n_p * n_n
    n_s = max(1, math.ceil((frame.end_s - now_s) / slot_s))
    starts = now_s + slot_s * np.arange(n_s)
    # Each slot is sampled at its minutes inside the day (the last one may be partial).
    minutes = [
        np.arange(int(a // 60), int(max(min(a + slot_s, frame.end_s), a + 60) // 60))
        for a in starts
    ]
    minutes = [np.clip(m, 0, frame.local_hour.shape[1] - 1) for m in minutes]
    mid = np.array([m[len(m) // 2] for m in minutes])
    hour = frame.local_hour[:, mid]  # (R, S)
    callable_ = frame.callable[:, mid]
    agents = np.array([frame.agents[m].mean() for m in minutes])
    if agents_now is not None:
        agents[0] = min(agents[0], float(agents_now))

    def by_slot(table: F64) -> F64:  # (C,R,P,N,24) -> (C,R,Q,S)
        t = np.asarray(table, float).reshape(n_c, n_r, n_q, N_HOURS)
        return np.take_along_axis(t, np.broadcast_to(hour[None, :, None, :], (n_c, n_r, n_q, n_s)),
                                  axis=3)

    ph = np.clip(by_slot(p_human_hour), 0.0, 1.0)
    pm = np.clip(by_slot(p_machine_hour), 0.0, 1.0 - ph)
    talk = np.full(n_p, times.talk_s) if talk_s is None else np.asarray(talk_s, float)
    talk = np.where(np.isfinite(talk) & (talk > 0), talk, times.talk_s)

    carriers = op.carriers
    rate = np.array([c.cost_per_minute_mxn for c in carriers]) / 60.0
    per_attempt = np.array([c.cost_per_attempt_mxn for c in carriers])
    billed_talk = np.array([[_expected_billed_s(c, t, times.talk_cv) for t in talk]
                            for c in carriers])  # (C, P)
    billed_machine = np.array([c.billed_seconds(times.machine_detect_s) for c in carriers])
    talk_cost = np.repeat(billed_talk, n_n, axis=1)  # (C, Q)
    cost = (per_attempt[:, None, None, None]
            + rate[:, None, None, None] * (ph * talk_cost[:, None, :, None]
                                           + pm * billed_machine[:, None, None, None]))
    talk_q = np.repeat(talk, n_n)  # (Q,)
    unanswered = 1.0 - ph - pm
    ring_other = (times.no_answer_share * frame.campaign.ring_timeout_s
                  + (1 - times.no_answer_share) * times.fail_signal_s)
    hold = ((ph + pm) * times.ring_answered_s + ph * talk_q[None, None, :, None]
            + pm * times.machine_detect_s + unanswered * ring_other)
    value = np.repeat([p.contact_value_mxn for p in op.products], n_n)

    min_share = np.array([c.min_share for c in carriers])
    max_share = np.array([c.max_share for c in carriers])
    if done_per_carrier is not None and expected_future_attempts:
        done = np.asarray(done_per_carrier, float)
        f = float(expected_future_attempts)
        total = done.sum() + f
        min_share = np.clip((min_share * total - done) / f, 0.0, 1.0)
        max_share = np.clip((max_share * total - done) / f, 0.0, 1.0)
        max_share = np.maximum(max_share, min_share)
    cov = np.repeat(frame.coverage[:, :, None, :], n_p, axis=2).reshape(n_c, n_r, n_q)
    per_slot = None
    if queued is not None and attempts_per_agent_s is not None:
        open_q = np.asarray(queued, float)[:, :, None] * callable_[:, None, :]  # (R,Q,S)
        tot = open_q.sum(axis=(0, 1))
        share = np.where(tot > 0, open_q / np.where(tot > 0, tot, 1.0), 0.0)
        per_slot = share * (attempts_per_agent_s * agents * slot_s)[None, None, :]
    return AllocationData(
        slot_s=slot_s,
        p_human=ph,
        value_mxn=value,
        cost_per_attempt_mxn=cost,
        hold_s=hold,
        handle_s=talk_q + times.wrap_s,
        cps=np.array([c.cps for c in carriers], float),
        channels=np.array([c.channels for c in carriers], float),
        coverage=cov,
        agents=agents,
        supply=supply,
        callable=callable_,
        enabled=np.array([c.enabled for c in carriers]) if enabled is None else enabled,
        cap_cps=cap_cps,
        target_occupancy=target_occupancy,
        min_share=min_share,
        max_share=max_share,
        budget_mxn=budget_mxn,
        cost_weight=cost_weight,
        supply_per_slot=per_slot,
        start=frame.start_utc + dt.timedelta(seconds=float(now_s)),
    )


# ----------------------------------------------------------------------------- the loop


@dataclass
class Planner:
    """Re-plans the day every `replan_s` (or when asked) and refreshes the live shares.

    `weights` (R, Q, C) are what the dialer's weighted round robin follows; every allowed
    carrier keeps at least `floor_share` of a segment's weight so that a full trunk never
    stalls a segment and every route keeps being measured.
    """

    frame: DayFrame
    slot_s: float = 900.0
    replan_s: float = 900.0
    time_limit_s: float = 2.0
    floor_share: float = 0.02
    times: CallTimes = field(default_factory=CallTimes)
    plan: AllocationResult | None = None
    data: AllocationData | None = None
    planned_at_s: float = -math.inf  # when the plan in force was made: its slot 0 starts then
    tried_at_s: float = -math.inf  # the last re-plan, kept or rejected
    n_plans: int = 0  # re-plans kept or rejected, once a first plan was kept
    problems: list[str] = field(default_factory=list)  # checker findings of rejected plans
    statuses: list[str] = field(default_factory=list)

    def due(self, now_s: float) -> bool:
        return self.plan is None or now_s - self.tried_at_s >= self.replan_s

    def replan(self, now_s: float, p_human_hour: F64, p_machine_hour: F64, supply: F64,
               budget: DailyBudget | None = None, draws: F64 | None = None,
               **kw) -> AllocationResult:
        """Solve the rest of the day (warm from the previous plan); keep it if it checks.

        With a `budget`, telecom cost is priced so that the rest of the day fits what is left.
        With `draws` (K, C, N), factors on each route's (carrier × network) rates drawn from
        the estimates' noise, the plan is the mean of the K plans that value contacts at the
        drawn rates, each under the same constraints (so the mean meets them too): a cell
        whose routes are within noise of each other is split between them about as often as
        each may be the best, rather than given whole to whichever reads a hair higher now.
        With both, the price is fitted on the plan at the estimates (the mean would take K
        more solves at every price tried), scaled by what the means cost against it before
        (`DailyBudget.averaged`), and the mean at that price is put in force.
        """
        data = build_data(self.frame, now_s, p_human_hour, p_machine_hour, supply,
                          slot_s=self.slot_s, times=self.times, **kw)
        previous = self.plan if self.plan is not None and self.plan.x.shape == data.shape else None

        def solve(d: AllocationData) -> AllocationResult:
            return plan_day(d, previous=previous, time_limit_s=self.time_limit_s)

        def averaged(d: AllocationData, r: AllocationResult) -> AllocationResult:
            if draws is None or not len(draws) or not r.status.usable:
                return r
            return self._mean_of_draws(d, r, draws)

        if budget is None:
            priced, result = None, averaged(data, solve(data))
        else:
            priced = budget.fit(now_s, data, solve)
            mean = averaged(priced.data, priced.result)
            if mean is not priced.result:
                priced = budget.averaged(priced, mean)
            result, data = priced.result, priced.data
        self.statuses.append(result.status.value)
        bad = check_allocation(data, result) if result.status.usable else [result.message]
        if bad:  # never publish what the checker rejects: keep the last good plan, on its clock
            self.problems.extend(bad[:5])
            if self.plan is None:
                return result
        else:
            self.plan, self.data, self.planned_at_s = result, data, now_s
            if priced is not None:
                budget.commit(priced)
        self.tried_at_s = now_s
        self.n_plans += 1
        return result

    def _mean_of_draws(self, data: AllocationData, result: AllocationResult,
                       draws: F64) -> AllocationResult:
        draws = np.asarray(draws, float)  # (K, C, N) -> (K, C, 1, Q, 1): networks vary fastest
        n_q = data.shape[2]
        factors = np.tile(draws, (1, 1, n_q // draws.shape[2]))[:, :, None, :, None]
        return plan_over_draws(data, result, factors, time_limit_s=self.time_limit_s)

    def expected_future_attempts(self, now_s: float) -> float | None:
        """The current plan's attempts from `now_s` to the end of the day."""
        if self.plan is None or self.data is None:
            return None
        s0 = int((now_s - self.planned_at_s) // self.slot_s)
        x = self.plan.x[..., max(s0, 0):]
        return float(x.sum()) if x.size else None

    def split(self, now_s: float, p_human_now: F64, mix: F64,
              allowed_now: NDArray[np.bool_], probe: F64 | None = None) -> F64:
        """Shares (R, Q, C) for the slot containing `now_s`.

        p_human_now: (C, R, Q) current estimates. mix: (R, Q) the traffic the dialer is about
        to send (what its lead queues hold): the plan's per-carrier volumes for this slot are
        re-filled with this demand, best marginal value first. allowed_now: (C, R, Q) carriers
        that may take the segment now (enabled and covering it). probe: (C, R, Q) minimum
        shares for routes the caller wants measured (exploration).
        """
        value = np.zeros(allowed_now.shape)
        if self.plan is None or self.data is None:
            w = allowed_now.astype(float)
        else:
            s = int(min(max((now_s - self.planned_at_s) // self.slot_s, 0),
                        self.data.shape[3] - 1))
            xs = self.plan.x[..., s]
            per_carrier = xs.sum(axis=(1, 2))
            allowed = self.data.allowed()[..., s] & allowed_now
            demand = np.where(allowed.any(axis=0), np.asarray(mix, float), 0.0)
            x_now = xs
            if per_carrier.sum() > 0 and demand.sum() > 0:
                # The plan's carrier volumes, filled with the traffic the queues will really
                # send: a table with both margins (iterative proportional fitting).
                demand = demand / demand.sum() * per_carrier.sum()
                x_now = allowed * (per_carrier[:, None, None] + 1e-9) * demand[None]
                for _ in range(30):
                    col = x_now.sum(axis=0)
                    x_now *= np.where(col > 0, demand / np.where(col > 0, col, 1.0), 0.0)[None]
                    row = x_now.sum(axis=(1, 2))
                    x_now *= np.where(row > 0, per_carrier / np.where(row > 0, row, 1.0),
                                      0.0)[:, None, None]
            plan_now = dataclasses.replace(self.plan, x=self.plan.x.copy())
            plan_now.x[..., s] = x_now
            w = live_split(plan_now, self.data, p_human_now, s).transpose(2, 0, 1)
            w = np.where(allowed_now, w, 0.0)
            value = route_values(self.plan, self.data, p_human_now, s)
        w = w + self._ranked_floor(value, allowed_now)
        if probe is not None:
            tot = w.sum(axis=0, keepdims=True)
            w = w / np.where(tot > 0, tot, 1.0)
            w = np.maximum(w, np.where(allowed_now, probe, 0.0))
        tot = w.sum(axis=0, keepdims=True)
        w = np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), 0.0)
        return np.ascontiguousarray(w.transpose(1, 2, 0))

    def _ranked_floor(self, value: F64, allowed: NDArray[np.bool_]) -> F64:
        """(C, R, Q) `floor_share` of each cell spread over its allowed carriers by value rank:
        of n, the best gets n parts, the next n − 1, the worst 1 (ties alike). The dialer
        passes a turn a carrier cannot take to the cell's largest share, so the ranking orders
        the overflow too: down the cell's own routes, not to any carrier with a floor share."""
        n_ok = allowed.sum(axis=0)
        better = (allowed[None] & (value[None] > value[:, None])).sum(axis=1)  # [c]: > c's
        steps = np.where(allowed, n_ok - better, 0)
        total = steps.sum(axis=0)
        return self.floor_share * steps / np.maximum(total, 1)
