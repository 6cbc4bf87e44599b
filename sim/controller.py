"""Policy hooks the simulator calls between epochs: the optimiser and the oracle.

Both run `optimizer.policy.Planner` (the live service's loop) and write the dialer's
`weights`; they differ only in where the contact probabilities come from: the optimiser
learns them from the attempt log alone, the oracle reads the hidden world (the upper bound).
Also turns a simulated day's log into outcome history (Parquet) for warm starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike

import numpy as np

from dialer import hopper, pacing
from optimizer.drift import ResidualCusum
from optimizer.history import OutcomeBatch, read_history, write_day
from optimizer.model import ContactModel
from optimizer.policy import (
    N_HOURS,
    DayFrame,
    Planner,
    day_frame,
    lead_segments,
    remaining_supply,
)
from smartdial.outcomes import ABANDONED, CONTACT

N_ATTEMPT_BUCKETS = 4  # attempts before this one: 0, 1, 2, 3+


class _Base:
    """Shared glue: the frame, the planner, the dialer's supply and queues, the weights."""

    epoch_s = 60.0

    def __init__(self, scenario, leads, clock, *, replan_s: float = 900.0,
                 slot_s: float = 1800.0, stale_change: float = 0.15,
                 stale_sigmas: float = 2.0, min_stale_gap_s: float = 120.0) -> None:
        op = scenario.operation
        self.op = op
        self.frame: DayFrame = day_frame(op, op.campaign(scenario.campaign), scenario.date)
        self.planner = Planner(self.frame, slot_s=slot_s, replan_s=replan_s)
        self.leads = leads
        self.t0_unix = clock.start_utc.timestamp()
        self.segment = lead_segments(self.frame, leads.region, leads.product, leads.network)
        n_c, n_r, n_p, n_n = self.frame.shape
        self.allowed_lines = np.repeat(self.frame.coverage[:, :, None, :], n_p, axis=2).reshape(
            n_c, n_r, n_p * n_n
        )
        self.replan_now = False
        self.n_replans_on_alarm = 0
        self.n_replans_on_drift = 0
        self.stale_change = stale_change
        self.stale_sigmas = stale_sigmas
        self.min_stale_gap_s = min_stale_gap_s

    # -- what the dialer knows
    def _supply(self, dialer) -> np.ndarray:
        alive = dialer.state != hopper.DONE
        return remaining_supply(self.frame, self.segment, alive, dialer.attempts_day,
                                dialer.attempts_7d)

    def _mix(self, dialer, minute: int) -> np.ndarray:
        _, n_r, n_p, n_n = self.frame.shape
        queued = (dialer.state == hopper.QUEUED).astype(float)
        mix = np.bincount(self.segment, weights=queued, minlength=n_r * n_p * n_n)
        return mix.reshape(n_r, n_p * n_n) * self.frame.callable[:, minute, None]

    def _lead_weights(self, dialer, value: np.ndarray) -> np.ndarray:
        """Mean of a per-lead value over the live leads of each (R, P, N) segment."""
        _, n_r, n_p, n_n = self.frame.shape
        alive = (dialer.state != hopper.DONE).astype(float)
        k = n_r * n_p * n_n
        num = np.bincount(self.segment, weights=alive * value, minlength=k)
        den = np.bincount(self.segment, weights=alive, minlength=k)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).reshape(n_r, n_p, n_n)

    def _dial_rate(self, now_s, log, n_launched, window_s: float = 900.0) -> float:
        """Attempts per second per scheduled agent over the last `window_s` (pacing's pace).

        Before any history: the adaptive pacer's start level over a typical 25-s attempt.
        """
        if now_s < 300.0 or n_launched == 0:
            return self.frame.campaign.dialer.adaptive_start_level / 25.0
        t0 = max(now_s - window_s, 0.0)
        first = int(np.searchsorted(log.t_start[:n_launched], t0))
        m0, m1 = self.frame.minute(t0), self.frame.minute(now_s)
        agent_s = self.frame.agents[m0:max(m1, m0 + 1)].sum() * 60.0
        return (n_launched - first) / max(agent_s, 1.0)

    # -- the loop
    def estimates(self, now_s, dialer):  # -> p_human_hour, p_machine_hour, talk_s (P,)
        raise NotImplementedError

    def on_epoch(self, now_s: float, finished: np.ndarray, log, n_launched: int,
                 dialer) -> None:
        self.learn(now_s, finished, log)
        if now_s >= self.frame.end_s:
            return
        minute = self.frame.minute(now_s)
        pl = self.planner
        if pl.due(now_s) or self.replan_now:
            self._replan(now_s, log, n_launched, dialer)
        p_now = self.estimates_now(now_s, dialer)
        if self._stale(now_s, p_now):
            self._replan(now_s, log, n_launched, dialer)
            self.n_replans_on_drift += 1
        allowed = self.allowed_lines & dialer.enabled[:, None, None]
        w = pl.split(now_s, p_now, self._mix(dialer, minute), allowed,
                     probe=self.probe(now_s, allowed))
        dialer.weights[...] = w

    def _replan(self, now_s, log, n_launched, dialer) -> None:
        pl = self.planner
        ph, pm, talk = self.estimates(now_s, dialer)
        done = np.bincount(log.carrier[:n_launched].astype(np.int64),
                           minlength=len(self.op.carriers)).astype(float)
        n_r, n_q = self.frame.shape[1], self.frame.shape[2] * self.frame.shape[3]
        queued = np.bincount(self.segment, weights=(dialer.state == hopper.QUEUED),
                             minlength=n_r * n_q).reshape(n_r, n_q)
        pl.replan(
            now_s, ph, pm, self._supply(dialer), talk_s=talk,
            agents_now=float(dialer.obs[pacing.O_LOGGED]) if now_s > 0 else None,
            enabled=dialer.enabled.copy(), done_per_carrier=done,
            expected_future_attempts=pl.expected_future_attempts(now_s),
            queued=queued, attempts_per_agent_s=self._dial_rate(now_s, log, n_launched),
        )
        self.replan_now = False

    def _stale(self, now_s: float, p_now: np.ndarray) -> bool:
        """A carrier the plan uses in this slot answers `stale_change` less than planned.

        The live split only re-assigns the plan's per-carrier volumes, so a carrier whose
        answer rate fell keeps its volume until the plan is redone: redo it now. Only
        carriers whose fall is beyond `stale_sigmas` of their estimate's noise count.
        """
        pl = self.planner
        if pl.plan is None or pl.data is None or now_s - pl.planned_at_s < self.min_stale_gap_s:
            return False
        s = int(min((now_s - pl.planned_at_s) // pl.slot_s, pl.data.shape[3] - 1))
        x = pl.plan.x[..., s]
        planned = (x * pl.data.p_human[..., s]).sum(axis=(1, 2))
        now = (x * p_now).sum(axis=(1, 2))
        big = planned > 0.02 * planned.sum()
        fall = 1.0 - now[big] / planned[big]
        bar = np.maximum(self.stale_change, self.stale_sigmas * self.relative_noise(now_s)[big])
        return bool((fall > bar).any())

    def relative_noise(self, now_s: float) -> np.ndarray:
        """(C,) relative standard error of each carrier's current rate estimate."""
        return np.zeros(len(self.op.carriers))

    def estimates_now(self, now_s, dialer) -> np.ndarray:
        """(C, R, Q) p_human at each region's local hour now (for the live split)."""
        n_c, n_r, n_p, n_n = self.frame.shape
        ph = self.estimates(now_s, dialer)[0]
        hour = self.frame.local_hour[:, self.frame.minute(now_s)]  # (R,)
        p_now = ph.reshape(n_c, n_r, n_p * n_n, N_HOURS)[:, np.arange(n_r), :, hour]
        return np.moveaxis(p_now, 0, 1)  # advanced indexing put R first

    def learn(self, now_s: float, finished: np.ndarray, log) -> None:
        pass

    def probe(self, now_s: float, allowed: np.ndarray) -> np.ndarray | None:
        """(C, R, Q) minimum shares that keep under-measured routes measured."""
        return None


class OracleController(_Base):
    """The allocator fed the world's true probabilities: what perfect knowledge buys."""

    def __init__(self, scenario, leads, world, clock, **kw) -> None:
        super().__init__(scenario, leads, clock, **kw)
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
        talk = np.full(len(self.op.products), self.truth.handle_time.mean_s)
        return ph, pm, talk


class OptimizerController(_Base):
    """The contact model learnt from outcomes only (cold, or warm from history)."""

    def __init__(self, scenario, leads, clock, *, history=None, half_life_s: float | None = None,
                 history_half_life_s: float = 86_400.0,
                 prior_strength: float | tuple = (200.0, 200.0, 100.0, 50.0, 20.0, 20.0),
                 watch_after_attempts: float = 500.0, rescale_on_alarm: bool = False,
                 min_replan_gap_s: float = 300.0, optimism: float = 1.0,
                 probe_attempts: float = 200.0,
                 probe_share: float = 0.05, seed: int = 0, **kw) -> None:
        super().__init__(scenario, leads, clock, **kw)
        _, n_r, n_p, n_n = self.frame.shape
        n_c = len(self.op.carriers)
        if half_life_s is None:
            half_life_s = auto_half_life_s(self.frame)
        self.model = ContactModel(
            (n_c, n_r, n_p, n_n, N_HOURS, N_ATTEMPT_BUCKETS), half_life_s=half_life_s,
            prior_strength=prior_strength, exploration="none", random_state=seed,
        )
        self.cusum = ResidualCusum(n_c)
        self.probe_attempts = probe_attempts
        self.watch_after = watch_after_attempts
        self.rescale_on_alarm = rescale_on_alarm
        self.min_replan_gap_s = min_replan_gap_s
        self.optimism = optimism
        self.probe_share = probe_share
        self.alarms: list[tuple[float, int, float]] = []  # (now_s, carrier, rate ratio)
        if history:
            warm_start(self.model, history, self.t0_unix, half_life_s, history_half_life_s)
        else:
            self.model.partial_fit(OutcomeBatch.empty(), self.t0_unix)

    def learn(self, now_s, finished, log) -> None:
        batch = outcome_batch(self.frame, self.leads, log, finished, self.t0_unix)
        if len(batch) == 0:
            return
        order = np.argsort(batch.t_s, kind="stable")
        batch = batch.take(order)
        # Score each attempt against what the model predicted before it saw it.
        seg = self.model.segment_ids(batch.carrier, batch.region, batch.product, batch.network,
                                     batch.slot, batch.attempt_bucket)
        _, p_pred, _ = self.model.predict(seg, self.t0_unix + now_s)
        human = (batch.outcome == int(CONTACT)) | (batch.outcome == int(ABANDONED))
        # Watch a carrier once the model knows it: a cold prior is not a baseline.
        seen = self.model.decayed_counts(4, self.t0_unix + now_s)[:, 0]
        known = seen[batch.carrier] >= self.watch_after
        alarm = self.cusum.update(batch.carrier[known], human[known], p_pred[known])
        self.model.partial_fit(batch, self.t0_unix + now_s)
        for c in np.flatnonzero(alarm):
            ratio = float(self.cusum.ratio_[c])
            self.alarms.append((now_s, int(c), round(ratio, 3)))
            if self.rescale_on_alarm:
                self.model.rescale_human(int(c), ratio)
            # Re-plan at once, but not more often than every few minutes: the residuals are
            # not stationary (leads answer less as the best ones are reached), so alarms
            # also come without a change in a route.
            if now_s - self.planner.planned_at_s >= self.min_replan_gap_s:
                self.replan_now = True
                self.n_replans_on_alarm += 1

    def relative_noise(self, now_s):
        humans = self.model.decayed_counts(4, self.t0_unix + now_s)[:, 2]
        return 1.0 / np.sqrt(np.maximum(humans, 1.0))  # Poisson count of human answers

    def probe(self, now_s, allowed):
        """Routes (carrier × destination network) with fewer than `probe_attempts` recent
        (decayed) attempts get `probe_share` of their segments: a carrier the plan dropped
        keeps being measured, so its recovery is seen (the model alone would never see it)."""
        _, n_r, n_p, n_n = self.frame.shape
        seen = self.model.decayed_counts(3, self.t0_unix + now_s)[:, 0]  # (C*N,) attempts
        thin = (seen < self.probe_attempts).reshape(-1, 1, 1, n_n)  # (C,1,1,N)
        thin = np.broadcast_to(thin, (thin.shape[0], n_r, n_p, n_n)).reshape(-1, n_r, n_p * n_n)
        return np.where(thin & allowed, self.probe_share, 0.0)

    def estimates_now(self, now_s, dialer):
        """Only the current hour's segments, with the attempt mix of the last full estimate."""
        if getattr(self, "_bucket_mix", None) is None:
            return super().estimates_now(now_s, dialer)
        n_c, n_r, n_p, n_n = self.frame.shape
        hour = self.frame.local_hour[:, self.frame.minute(now_s)]
        c, r, p, n, a = np.meshgrid(np.arange(n_c), np.arange(n_r), np.arange(n_p),
                                    np.arange(n_n), np.arange(N_ATTEMPT_BUCKETS), indexing="ij")
        seg = self.model.segment_ids(c, r, p, n, hour[r], a).ravel()
        _, ph, _ = self.model.predict(seg, self.t0_unix + now_s)
        ph = ph.reshape(c.shape)
        return (ph * self._bucket_mix[None]).sum(axis=-1).reshape(n_c, n_r, n_p * n_n)

    def estimates(self, now_s, dialer):
        _, ph, pm = self.model.predict_table(self.t0_unix + now_s)
        # Average the attempt buckets over the live leads' attempt mix.
        bucket = np.minimum(dialer.attempts_7d.astype(np.int64), N_ATTEMPT_BUCKETS - 1)
        mix = np.stack([
            np.nan_to_num(self._lead_weights(dialer, (bucket == a).astype(float)))
            for a in range(N_ATTEMPT_BUCKETS)
        ], axis=-1)  # (R,P,N,A)
        mix = mix / np.maximum(mix.sum(axis=-1, keepdims=True), 1e-12)
        mix = np.where(mix.sum(axis=-1, keepdims=True) > 0, mix, 1.0 / N_ATTEMPT_BUCKETS)
        self._bucket_mix = mix  # (R,P,N,A)
        wts = mix[None, :, :, :, None, :]
        talk = self.model.mean_handle_s(self.t0_unix + now_s)
        ph = (ph * wts).sum(axis=-1)
        if self.optimism > 0:
            # Optimism in the face of uncertainty, per route (carrier × network): a route
            # measured only by probe traffic is planned at its upper bound, so one that has
            # recovered wins its traffic back sooner.
            n_c, _, _, n_n = self.frame.shape
            humans = self.model.decayed_counts(3, self.t0_unix + now_s)[:, 2].reshape(n_c, n_n)
            bonus = 1.0 + self.optimism / np.sqrt(humans + 1.0)
            ph = np.minimum(ph * bonus[:, None, None, :, None], 1.0)
        return ph, (pm * wts).sum(axis=-1), talk


def auto_half_life_s(frame: DayFrame, attempts: float = 5000.0, lo: float = 600.0,
                     hi: float = 14_400.0) -> float:
    """A memory of about `attempts` attempts at the campaign's expected pace (in [lo, hi] s).

    Drift calls for a short memory, telling 15 % better routes apart for a long one; counting
    the memory in attempts serves a 300-agent floor and a 20-agent pilot alike.
    """
    working = frame.agents[frame.agents > 0]
    per_s = (working.mean() if working.size else 1.0) * frame.campaign.dialer.adaptive_start_level
    per_s /= 25.0  # seconds an attempt takes, ring to hang-up, on average
    return float(np.clip(attempts / max(per_s, 1e-9), lo, hi))


# ----------------------------------------------------------------------------- history


def outcome_batch(frame: DayFrame, leads, log, rows: np.ndarray, t0_unix: float) -> OutcomeBatch:
    """Finished attempt-log rows as model outcomes (times in Unix seconds)."""
    rows = np.asarray(rows, np.int64)
    lead = log.lead[rows].astype(np.int64)
    region = leads.region[lead].astype(np.int64)
    t_start = log.t_start[rows]
    minute = np.clip((t_start // 60).astype(np.int64), 0, frame.local_hour.shape[1] - 1)
    outcome = log.outcome[rows].astype(np.int64)
    conn = log.conn_s[rows].astype(float)
    ring = log.ring_s[rows].astype(float)
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
        talk_s=np.where(outcome == int(CONTACT), conn, np.nan),
    )


def day_history(rec, days_before: int = 1) -> OutcomeBatch:
    """A simulated day's outcomes as history, dated `days_before` days before the scenario."""
    op = rec.scenario.operation
    frame = day_frame(op, op.campaign(rec.scenario.campaign), rec.scenario.date)
    t0 = rec.clock.start_utc.timestamp() - 86_400.0 * days_before
    rows = np.flatnonzero(rec.log.outcome >= 0)
    return outcome_batch(frame, rec.leads, rec.log, rows, t0)


def save_history(rec, path: str | PathLike[str], days_before: int = 1):
    return write_day(path, day_history(rec, days_before))


def warm_start(model: ContactModel, paths: Iterable | str | PathLike[str], now_unix: float,
               half_life_s: float, history_half_life_s: float) -> ContactModel:
    """Fit `model` from history whose weight halves every `history_half_life_s` of age.

    The model decays everything with one half-life (short, to follow the day's drift);
    compressing the history's ages by half_life / history_half_life gives old days their own,
    slower decay. Local-hour slots are columns, so the compression moves no row between slots.
    """
    batch = read_history(paths, shape=tuple(int(x) for x in model.shape))
    age = np.maximum(now_unix - batch.t_s, 0.0)
    batch.t_s = now_unix - age * (half_life_s / history_half_life_s)
    model.partial_fit(OutcomeBatch.empty(), now_unix - 1.0)
    model.partial_fit(batch.take(np.argsort(batch.t_s, kind="stable")), now_unix)
    return model


def for_policy(policy, scenario, leads, world, clock, history=None, seed: int = 0):
    """The controller a policy needs, or None (baselines run without one)."""
    if policy.routing == "oracle":
        return OracleController(scenario, leads, world, clock)
    if policy.routing == "optimizer":
        return OptimizerController(scenario, leads, clock, history=history, seed=seed)
    return None


__all__ = [
    "OptimizerController",
    "OracleController",
    "day_history",
    "for_policy",
    "outcome_batch",
    "save_history",
    "warm_start",
]
