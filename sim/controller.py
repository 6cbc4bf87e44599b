"""The simulator's adapters to the optimiser service loop (`optimizer.service`).

The optimiser feeds the shared `LearningLoop` the attempt log's rows as `OutcomeBatch`es:
each attempt once its answer is decided (most calls still up), and again when it has
finished (for its talk time); the oracle runs the same `AllocationLoop` on the hidden world's true
probabilities (the upper bound). Also turns a simulated day's log into outcome history
(Parquet) for warm starts. No policy lives here.
"""

from __future__ import annotations

import math
from os import PathLike

import numpy as np

from optimizer.checkpoint import Checkpoints, restore
from optimizer.history import OutcomeBatch, write_day
from optimizer.policy import DayFrame, day_frame
from optimizer.service import N_ATTEMPT_BUCKETS, AllocationLoop, LearningLoop, model_shape
from sim.kernel import UP_HUMAN, UP_MACHINE
from smartdial.outcomes import CONTACT, MACHINE


def _frame(scenario) -> DayFrame:
    op = scenario.operation
    return day_frame(op, op.campaign(scenario.campaign), scenario.date)


class _SimHook:
    """`sim.run.Controller` for a service loop: log rows in, `step` of the loop."""

    def wants_outcomes(self) -> bool:
        """The loop learns from finished attempts, or counts what they cost."""
        return self.budget is not None

    def batch(self, finished: np.ndarray, log) -> OutcomeBatch:
        if not self.wants_outcomes():
            return OutcomeBatch.empty()
        return outcome_batch(self.frame, self.leads, log, finished, self.t0_unix)

    def answers(self, decided: np.ndarray, log) -> OutcomeBatch | None:
        return None

    def on_epoch(self, now_s: float, finished: np.ndarray, log, n_launched: int,
                 dialer, decided: np.ndarray) -> None:
        self.step(now_s, self.batch(finished, log), log.t_start[:n_launched],
                  log.carrier[:n_launched], dialer, answers=self.answers(decided, log))

    def close(self, now_s: float) -> None:
        """The day has drained."""


class OracleController(_SimHook, AllocationLoop):
    """The allocator fed the world's true probabilities: what perfect knowledge buys."""

    def __init__(self, scenario, leads, world, clock, **kw) -> None:
        super().__init__(_frame(scenario), clock.start_utc.timestamp(), leads.region,
                         leads.product, leads.network, **kw)
        self.leads = leads
        self.world = world
        self.truth = scenario.truth

    def estimates(self, now_s, dialer):
        w = self.world
        m = self.frame.minute(now_s)
        decay = w.scalars[2] ** dialer.attempts_7d.astype(float)
        lead_f = self._lead_weights(dialer, w.mult * decay * ~w.invalid)  # (R,P,N)
        lead_f = np.nan_to_num(lead_f)
        base = np.transpose(w.p_base, (1, 0, 2))  # (R, P, 24)
        carrier = w.carrier_q * (w.carrier_factor[:, m] * w.carrier_up[:, m])[:, None]  # (C,N)
        p_raw = (base[None, :, :, None, :] * lead_f[None, :, :, :, None]
                 * w.net_factor[None, None, None, :, None] * carrier[:, None, None, :, None])
        p_raw = np.minimum(p_raw, 0.95)
        through = ((1.0 - w.fail_rate) * (1.0 - w.scalars[1]))[:, None, None, None, None]
        ph = through * p_raw
        pm = through * (1.0 - p_raw) * w.scalars[0]
        talk = np.full(self.frame.shape[2], self.truth.handle_time.mean_s)
        return ph, pm, talk


class OptimizerController(_SimHook, LearningLoop):
    """The service's learning loop, fed the attempt log's decided and finished rows.

    With `checkpoint` (a path), the model starts from the file when it exists (re-dated by
    whole days when it was saved later in the calendar, as by an earlier run of the same
    scenario), is saved there every `checkpoint_every_s` simulated seconds and once more
    when the day has drained: runs chained on one path learn day after day.
    """

    def __init__(self, scenario, leads, clock, checkpoint=None,
                 checkpoint_every_s: float = 300.0, **kw) -> None:
        frame = _frame(scenario)
        t0 = clock.start_utc.timestamp()
        self.checkpoints = None
        if checkpoint is not None:
            kw["model"] = restore(checkpoint, model_shape(frame), t0, redate=True)
            self.checkpoints = Checkpoints(checkpoint, checkpoint_every_s)
        super().__init__(frame, t0, leads.region, leads.product, leads.network, **kw)
        self.leads = leads

    def wants_outcomes(self) -> bool:
        return True

    def answers(self, decided, log) -> OutcomeBatch:
        return outcome_batch(self.frame, self.leads, log, decided, self.t0_unix, at_answer=True)

    def on_epoch(self, now_s, finished, log, n_launched, dialer, decided) -> None:
        super().on_epoch(now_s, finished, log, n_launched, dialer, decided)
        if self.checkpoints is not None:
            self.checkpoints.maybe_save(self.model, now_s)

    def close(self, now_s: float) -> None:
        if self.checkpoints is not None:
            self.checkpoints.save(self.model, now_s)


# ----------------------------------------------------------------------------- history


def outcome_batch(frame: DayFrame, leads, log, rows: np.ndarray, t0_unix: float,
                  at_answer: bool = False) -> OutcomeBatch:
    """Finished attempt-log rows as model outcomes (times in Unix seconds).

    `at_answer`: rows whose answer is known, maybe still up, as of the answer: timed at the
    end of the ring, a call still up as CONTACT (human) or MACHINE, no talk time.
    """
    rows = np.asarray(rows, np.int64)
    lead = log.lead[rows].astype(np.int64)
    region = leads.region[lead].astype(np.int64)
    t_start = log.t_start[rows]
    minute = np.clip((t_start // 60).astype(np.int64), 0, frame.local_hour.shape[1] - 1)
    outcome = log.outcome[rows].astype(np.int64)
    conn = log.conn_s[rows].astype(float)
    ring = log.ring_s[rows].astype(float)
    if at_answer:
        outcome = np.select([outcome == UP_HUMAN, outcome == UP_MACHINE],
                            [int(CONTACT), int(MACHINE)], outcome)
        conn = np.zeros_like(ring)
    return OutcomeBatch(
        carrier=log.carrier[rows],
        region=region,
        product=leads.product[lead],
        network=leads.network[lead],
        slot=frame.local_hour[region, minute],
        attempt_bucket=np.minimum(log.attempt[rows], N_ATTEMPT_BUCKETS - 1),
        outcome=outcome,
        t_s=t0_unix + t_start + ring + conn,
        ring_s=ring,
        talk_s=np.where((outcome == int(CONTACT)) & (not at_answer), conn, np.nan),
    )


def day_history(rec, days_before: int = 1) -> OutcomeBatch:
    """A simulated day's outcomes as history, dated `days_before` days before the scenario."""
    frame = _frame(rec.scenario)
    t0 = rec.clock.start_utc.timestamp() - 86_400.0 * days_before
    rows = np.flatnonzero(rec.log.outcome >= 0)
    return outcome_batch(frame, rec.leads, rec.log, rows, t0)


def save_history(rec, path: str | PathLike[str], days_before: int = 1):
    return write_day(path, day_history(rec, days_before))


# Plans in virtual time get no wall-clock limit: a limit would make a day's result
# depend on how loaded the machine was (same seed, other KPIs). Column generation's
# round cap still bounds every solve; the live service keeps its seconds.
PLAN_TIME_LIMIT_S = math.inf


def for_policy(policy, scenario, leads, world, clock, history=None, seed: int = 0,
               checkpoint=None, budget_mxn: float | None = None):
    """The controller a policy needs, or None (baselines run without one).

    `budget_mxn` replaces the campaign's daily telecom budget (inf: none).
    """
    if policy.routing == "oracle":
        return OracleController(scenario, leads, world, clock, time_limit_s=PLAN_TIME_LIMIT_S,
                                budget_mxn=budget_mxn)
    if policy.routing == "optimizer":
        return OptimizerController(scenario, leads, clock, history=history, seed=seed,
                                   checkpoint=checkpoint, time_limit_s=PLAN_TIME_LIMIT_S,
                                   budget_mxn=budget_mxn)
    return None


__all__ = [
    "OptimizerController",
    "OracleController",
    "day_history",
    "for_policy",
    "outcome_batch",
    "save_history",
]
