"""The daily telecom budget, kept by a price on each telecom peso.

Pacing, not the plan, decides how many lines are dialled, so a budget cannot cap the
plan's volume: an attempt the plan leaves out is dialled anyway. It buys cheaper routes
instead. The plan weighs telecom cost by `weight` (contact-value pesos per telecom peso);
at each re-plan the weight is moved until what is spent plus the plan's expected cost of
the traffic still to come fits the budget. Spending is counted from finished attempts, and
the projection is scaled by what was really spent against what the plans projected for the
same hours (a forecast of pacing's volume or of the bill per attempt that runs high or low
is corrected as the day goes). Pure: no I/O, no clocks; `now_s` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from optimizer.allocate import AllocationData, AllocationResult
from optimizer.history import OutcomeBatch
from smartdial.billing import billed_cost_mxn
from smartdial.outcomes import ABANDONED, CONTACT, MACHINE


def attempt_cost_mxn(batch: OutcomeBatch, operation, *, machine_detect_s: float,
                     abandon_after_s: float, talk_s: float) -> np.ndarray:
    """What each finished attempt of `batch` was billed: a contact its talk time (`talk_s`
    where unknown), a machine the AMD decision, an abandoned call the silence before the
    hang-up, anything else only the per-attempt charge."""
    talk = np.where(np.isfinite(batch.talk_s), batch.talk_s, talk_s)
    conn = np.select([batch.outcome == CONTACT, batch.outcome == MACHINE,
                      batch.outcome == ABANDONED], [talk, machine_detect_s, abandon_after_s], 0.0)
    return billed_cost_mxn(conn, batch.carrier, operation)


def projected_cost_mxn(data: AllocationData, result: AllocationResult) -> np.ndarray:
    """(S,) expected telecom cost per slot of the rest of the day under `result`'s carrier mix.

    The traffic is pacing's forecast (`data.supply_per_slot`) when the plan has one, else the
    plan's own volume; each slot's traffic costs the plan's mean cost per attempt in that slot
    (the live split keeps the plan's per-carrier volumes), or the cheapest allowed route's
    where the plan left the slot empty.
    """
    x = result.x
    cost = data.cost_per_attempt_mxn
    planned = x.sum(axis=(0, 1, 2))
    spend = (x * cost).sum(axis=(0, 1, 2))
    traffic = planned if data.supply_per_slot is None else data.supply_per_slot.sum(axis=(0, 1))
    traffic = np.where(np.isfinite(traffic), traffic, planned)
    cheapest = np.where(data.allowed(), cost, np.inf).min(axis=(0, 1, 2))
    mean = np.where(planned > 0, spend / np.where(planned > 0, planned, 1.0),
                    np.where(np.isfinite(cheapest), cheapest, 0.0))
    return traffic * mean


class Priced(NamedTuple):
    """A plan solved at one price: what `DailyBudget.fit` proposes and `commit` takes."""

    at_s: float
    weight: float
    result: AllocationResult
    data: AllocationData
    cost: float  # projected rest of the day, calibrated
    fits: bool
    per_slot: np.ndarray  # uncalibrated projection per slot
    draw_ratio: float  # the budget's running ratio once this plan is committed


@dataclass
class DailyBudget:
    """A day's telecom budget and the price that keeps to it.

    `fit` solves the plan at the current weight, then moves the weight (steps of 4×, then
    bisection in log space, at most `max_solves` solves) until the projected cost is within
    `tolerance` of what is left, or fits at weight 1. The search spans [1, `max_weight`],
    or only `max_step`× either way when the current weight's projection is within `near`
    of the mark, so that forecast noise does not swing the routes. Past a few hundred
    contact-pesos per telecom peso routes are chosen on price alone and the cost per contact
    rises again (measured on mx-collections), hence `max_weight`: a budget that cannot be
    kept is reported (`over`), not chased. `fit` only proposes; the caller `commit`s the
    plan it puts in force, so a plan the checker rejects leaves the state as it was.
    """

    budget_mxn: float
    spent_mxn: float = 0.0
    weight: float = 1.0
    max_weight: float = 300.0
    max_step: float = 2.0
    near: float = 0.1
    tolerance: float = 0.02
    max_solves: int = 6
    projected_mxn: float = math.nan  # spent + the last plan's projected rest of the day
    # What the mean over draws projects against the plan at the estimates it came from, at
    # the same price (running mean): the fit prices the plan at the estimates as that share
    # of its own cost, so that the mean put in force is what fits.
    draw_ratio: float = 1.0
    draw_ratio_memory: float = 0.5
    n_fits: int = 0  # plans committed
    calibration_half_life_s: float = 7200.0
    # Decayed sums of what was spent and what the plans in force projected for the same time.
    _actual: float = 0.0
    _expected: float = 0.0
    _in_force: tuple[float, float, np.ndarray] | None = None  # planned at, slot_s, per slot
    _counted: tuple[float, float] = (0.0, 0.0)  # time and spend the sums reach

    def __post_init__(self) -> None:
        if not self.budget_mxn > 0:
            raise ValueError(f"daily budget must be > 0 MXN, got {self.budget_mxn}")

    @property
    def left_mxn(self) -> float:
        return self.budget_mxn - self.spent_mxn

    @property
    def over(self) -> bool:
        """The last plan, even at the highest price, expects to spend more than the budget."""
        return self.projected_mxn > self.budget_mxn * (1.0 + self.tolerance)

    def record(self, cost_mxn: np.ndarray) -> None:
        self.spent_mxn += float(np.sum(cost_mxn))

    @property
    def calibration(self) -> float:
        """Spent / projected over the past hours (decayed); 1 until there is enough of both."""
        if self._expected <= 0.0 or self._actual <= 0.0:
            return 1.0
        return float(np.clip(self._actual / self._expected, 0.5, 2.0))

    def _calibrate(self, now_s: float) -> None:
        if self._in_force is None:
            return
        t_from, spent_from = self._counted
        self._counted = (now_s, self.spent_mxn)
        # The first plan comes before pacing has dialled: its volume is a guess, not a forecast.
        if self.n_fits < 2 or now_s <= t_from:
            return
        # What the plan in force projected for [t_from, now): its slots, pro rata.
        t0, slot_s, per_slot = self._in_force
        starts = t0 + np.arange(len(per_slot)) * slot_s
        covered = np.clip(np.minimum(starts + slot_s, now_s) - np.maximum(starts, t_from),
                          0.0, slot_s) / slot_s
        decay = 0.5 ** ((now_s - t_from) / self.calibration_half_life_s)
        self._expected = self._expected * decay + float((per_slot * covered).sum())
        self._actual = self._actual * decay + (self.spent_mxn - spent_from)

    def fit(self, now_s: float, data: AllocationData,
            solve: Callable[[AllocationData], AllocationResult]) -> Priced:
        """Propose the plan, and its data, at the weight that fits the rest of the day in the
        budget (an unusable solve comes back with `fits` False); `commit` what is put in force."""
        self._calibrate(now_s)
        left = self.left_mxn
        k = self.calibration
        w = min(max(self.weight, 1.0), self.max_weight)
        w_min, w_max = 1.0, self.max_weight
        lo = hi = math.nan  # the highest price known too low, the lowest known high enough
        best = None
        for i in range(self.max_solves):
            d = data.replace(cost_weight=w)
            r = solve(d)
            if not r.status.usable:
                break
            per_slot = projected_cost_mxn(d, r)
            cost = k * self.draw_ratio * float(per_slot.sum())
            fits = cost <= left * (1.0 + self.tolerance)
            if i == 0 and abs(cost - left) <= self.near * max(left, 0.0):
                # Near the mark: a small correction, so forecast noise does not swing routes.
                w_min = max(w / self.max_step, 1.0)
                w_max = min(w * self.max_step, self.max_weight)
            # The fitting plan at the lowest price (the most contacts), else the cheapest plan.
            if best is None or (fits and (not best.fits or w < best.weight)) \
                    or (not fits and not best.fits and cost < best.cost):
                best = Priced(now_s, w, r, d, cost, fits, per_slot, self.draw_ratio)
            if fits and (cost >= left * (1.0 - self.tolerance) or w <= w_min):
                break  # tight enough, or as cheap a price as this plan may take
            if not fits and w >= w_max:
                break
            if fits:
                hi = w
            else:
                lo = w
            # Four times (a quarter of) the price until bracketed, then the geometric midpoint.
            if not math.isnan(lo) and not math.isnan(hi):
                w = math.sqrt(lo * hi)
            elif fits:
                w = max(w / 4.0, w_min)
            else:
                w = min(w * 4.0, w_max)
        if best is None:  # no usable plan: nothing to commit
            return Priced(now_s, self.weight, r, d, math.nan, False, np.zeros(d.shape[3]),
                          self.draw_ratio)
        return best

    def averaged(self, priced: Priced, mean: AllocationResult) -> Priced:
        """`priced` with the mean over draws at its price in place of its plan (the plan the
        caller puts in force), projected on its own; the running ratio of the two
        projections moves towards this one's (it takes effect when committed)."""
        per_slot = projected_cost_mxn(priced.data, mean)
        cost = self.calibration * float(per_slot.sum())
        base = float(priced.per_slot.sum())
        ratio = float(per_slot.sum()) / base if base > 0 else 1.0
        m = self.draw_ratio_memory
        return priced._replace(
            result=mean, per_slot=per_slot, cost=cost,
            fits=cost <= self.left_mxn * (1.0 + self.tolerance),
            draw_ratio=float(np.clip(m * self.draw_ratio + (1 - m) * ratio, 0.5, 2.0)),
        )

    def commit(self, priced: Priced) -> None:
        """`priced` is the plan in force from now on: take its price and projection."""
        self.n_fits += 1
        self.weight = priced.weight
        self.draw_ratio = priced.draw_ratio
        self.projected_mxn = self.spent_mxn + priced.cost
        self._in_force = (priced.at_s, priced.data.slot_s, priced.per_slot)
        self._counted = (priced.at_s, self.spent_mxn)
