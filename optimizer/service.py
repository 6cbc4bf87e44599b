"""The optimiser service's decision loop: learn from outcomes, re-plan, write the dialer's shares.

Shared by the live optimiser and the simulator; pure: no sockets, no clocks (`now_s` is an
argument), no simulator imports — outcomes arrive as `OutcomeBatch`es, launches as arrays.
"""

from __future__ import annotations

import numpy as np

from dialer import hopper, pacing
from dialer.state import contact_table
from optimizer.budget import DailyBudget, attempt_cost_mxn
from optimizer.drift import ResidualCusum, SinceAlarm
from optimizer.history import OutcomeBatch
from optimizer.model import ContactModel
from optimizer.policy import N_HOURS, DayFrame, Planner, lead_segments, remaining_supply
from smartdial.outcomes import ABANDONED, CONTACT

N_ATTEMPT_BUCKETS = 4  # attempts before this one: 0, 1, 2, 3+


def model_shape(frame: DayFrame) -> tuple[int, ...]:
    """The contact model's segment shape for a campaign day: carrier, region, product,
    network, local hour, attempt bucket."""
    return (*frame.shape, N_HOURS, N_ATTEMPT_BUCKETS)


class AllocationLoop:
    """The planner driven once an epoch: re-plan when due, on alarm or when the plan went stale,
    then split the current slot into the dialer's `weights`. Subclasses say where the contact
    estimates come from (`estimates`).

    Inputs each epoch are what the live engine has too: `now_s` (seconds from the frame's
    start), newly finished attempts as an `OutcomeBatch`, the launched attempts' start times
    (ascending) and carriers, and the `dialer.state.Dialer` arrays (state, attempts_day,
    attempts_7d, enabled, obs; `weights` is written in place).
    """

    epoch_s = 60.0

    def __init__(self, frame: DayFrame, t0_unix: float, region, product, network, *,
                 replan_s: float = 900.0, slot_s: float = 1800.0, stale_change: float = 0.15,
                 stale_sigmas: float = 2.0, min_stale_gap_s: float = 120.0,
                 time_limit_s: float = 2.0, budget_mxn: float | None = None) -> None:
        self.frame = frame
        self.planner = Planner(frame, slot_s=slot_s, replan_s=replan_s,
                               time_limit_s=time_limit_s)
        self.t0_unix = float(t0_unix)
        self.segment = lead_segments(frame, region, product, network)
        n_c, n_r, n_p, n_n = frame.shape
        self.allowed_lines = np.repeat(frame.coverage[:, :, None, :], n_p, axis=2).reshape(
            n_c, n_r, n_p * n_n
        )
        self.replan_at_s = np.inf  # re-plan from then on (a drift alarm asked)
        self.n_replans_on_alarm = 0
        self.n_replans_on_drift = 0
        self.stale_change = stale_change
        self._ph_planned: np.ndarray | None = None  # (C,R,P,N,24) rates the plan used
        self.stale_sigmas = stale_sigmas
        self.min_stale_gap_s = min_stale_gap_s
        # The campaign's daily telecom budget unless the caller gives one (inf: none at all).
        if budget_mxn is None:
            budget_mxn = frame.campaign.daily_budget_mxn
        self.budget = None if budget_mxn is None or budget_mxn == np.inf \
            else DailyBudget(float(budget_mxn))

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

    def _dial_rate(self, now_s: float, launched_t_s: np.ndarray,
                   window_s: float = 900.0) -> float:
        """Attempts per second per scheduled agent over the last `window_s` (pacing's pace).

        Before any history: the adaptive pacer's start level over a typical 25-s attempt.
        """
        n_launched = len(launched_t_s)
        if now_s < 300.0 or n_launched == 0:
            return self.frame.campaign.dialer.adaptive_start_level / 25.0
        t0 = max(now_s - window_s, 0.0)
        first = int(np.searchsorted(launched_t_s, t0))
        m0, m1 = self.frame.minute(t0), self.frame.minute(now_s)
        agent_s = self.frame.agents[m0:max(m1, m0 + 1)].sum() * 60.0
        return (n_launched - first) / max(agent_s, 1.0)

    # -- the loop
    def estimates(self, now_s: float, dialer):  # -> p_human_hour, p_machine_hour, talk_s (P,)
        raise NotImplementedError

    def step(self, now_s: float, batch: OutcomeBatch, launched_t_s: np.ndarray,
             launched_carrier: np.ndarray, dialer, answers: OutcomeBatch | None = None) -> None:
        """One epoch: learn from `batch`, re-plan if needed, write `dialer.weights`.

        `answers`: the attempts whose answer (human, machine, none) became known in the epoch,
        timed at the answer, most still up (the engine hears it from AMI before the hang-up).
        When given, the model learns the attempts' classes and the change detector watches
        them from `answers`, and only the talk times from `batch`; without it, from `batch`.
        """
        self.learn(now_s, batch, answers)
        if self.budget is not None:
            t = self.planner.times
            self.budget.record(attempt_cost_mxn(
                batch, self.frame.operation, machine_detect_s=t.machine_detect_s,
                abandon_after_s=self.frame.campaign.abandon_after_s, talk_s=t.talk_s))
        if now_s >= self.frame.end_s:
            return
        minute = self.frame.minute(now_s)
        pl = self.planner
        if pl.due(now_s) or now_s >= self.replan_at_s:
            self.n_replans_on_alarm += not pl.due(now_s) and now_s >= self.replan_at_s
            self._replan(now_s, launched_t_s, launched_carrier, dialer)
        p_now = self.estimates_now(now_s, dialer)
        if self._stale(now_s, p_now):
            self._replan(now_s, launched_t_s, launched_carrier, dialer)
            self.n_replans_on_drift += 1
        allowed = self.allowed_lines & dialer.enabled[:, None, None]
        w = pl.split(now_s, p_now, self._mix(dialer, minute), allowed,
                     probe=self.probe(now_s, allowed))
        dialer.weights[...] = w

    def _replan(self, now_s, launched_t_s, launched_carrier, dialer) -> None:
        pl = self.planner
        ph, pm, talk = self.estimates(now_s, dialer)
        done = np.bincount(np.asarray(launched_carrier).astype(np.int64),
                           minlength=self.frame.shape[0]).astype(float)
        n_r, n_q = self.frame.shape[1], self.frame.shape[2] * self.frame.shape[3]
        queued = np.bincount(self.segment, weights=(dialer.state == hopper.QUEUED),
                             minlength=n_r * n_q).reshape(n_r, n_q)
        # Predictive pacing dials whatever the agents can take: agent time, not the recent
        # dial rate, bounds the volume, and the plan prices it (its agent dual reaches the
        # live split), so better-answering routes are bought only where they pay.
        rate = None if int(dialer.kinds[0]) == pacing.PREDICTIVE \
            else self._dial_rate(now_s, launched_t_s)
        result = pl.replan(
            now_s, ph, pm, self._supply(dialer), talk_s=talk,
            agents_now=float(dialer.obs[pacing.O_LOGGED]) if now_s > 0 else None,
            enabled=dialer.enabled.copy(), done_per_carrier=done,
            expected_future_attempts=pl.expected_future_attempts(now_s),
            queued=queued, attempts_per_agent_s=rate, budget=self.budget,
            draws=self.route_draws(now_s),
        )
        if pl.plan is result:  # the rates of the plan in use, for the drift check
            self._ph_planned = ph
        self.replan_at_s = np.inf

    def _stale(self, now_s: float, p_now: np.ndarray) -> bool:
        """A carrier the plan uses in this slot answers `stale_change` less than planned.

        The live split only re-assigns the plan's per-carrier volumes, so a carrier whose
        answer rate fell keeps its volume until the plan is redone: redo it now. Planned and
        current rates are compared at the same local hour (the day's hour shape is in the
        plan already), relative to the floor as a whole (when every route answers less, as
        the best leads are reached first, the carriers' volumes stay right and pacing absorbs
        the rest). Only carriers whose fall is beyond `stale_sigmas` of their estimate's
        noise count.
        """
        pl = self.planner
        if pl.plan is None or pl.data is None or now_s - pl.tried_at_s < self.min_stale_gap_s:
            return False
        s = int(min((now_s - pl.planned_at_s) // pl.slot_s, pl.data.shape[3] - 1))
        x = pl.plan.x[..., s]
        planned = (x * self._at_hour(self._ph_planned, now_s)).sum(axis=(1, 2))
        bonus = self.optimism_factor(now_s)  # the planned rates carry it: like with like
        if bonus is not None:
            p_now = p_now * np.tile(bonus, (1, self.frame.shape[2]))[:, None, :]
        now = (x * p_now).sum(axis=(1, 2))
        big = planned > 0.02 * planned.sum()
        if not big.any():  # the plan sends nothing this slot
            return False
        level = min(now[big].sum() / planned[big].sum(), 1.0)
        fall = 1.0 - now[big] / (planned[big] * level)
        bar = np.maximum(self.stale_change, self.stale_sigmas * self.relative_noise(now_s)[big])
        return bool((fall > bar).any())

    def relative_noise(self, now_s: float) -> np.ndarray:
        """(C,) relative standard error of each carrier's current rate estimate."""
        return np.zeros(self.frame.shape[0])

    def optimism_factor(self, now_s: float) -> np.ndarray | None:
        """(C, N) factor the planned rates carry over the estimates (None: none)."""
        return None

    def route_draws(self, now_s: float) -> np.ndarray | None:
        """(K, C, N) factors on the routes' rates for the plan to average over (None: none)."""
        return None

    def estimates_now(self, now_s, dialer) -> np.ndarray:
        """(C, R, Q) p_human at each region's local hour now (for the live split)."""
        return self._at_hour(self.estimates(now_s, dialer)[0], now_s)

    def _at_hour(self, ph: np.ndarray, now_s: float) -> np.ndarray:
        """(C, R, P, N, 24) rates by local hour -> (C, R, Q) at each region's hour now."""
        n_c, n_r, n_p, n_n = self.frame.shape
        hour = self.frame.local_hour[:, self.frame.minute(now_s)]  # (R,)
        p_now = ph.reshape(n_c, n_r, n_p * n_n, N_HOURS)[:, np.arange(n_r), :, hour]
        return np.moveaxis(p_now, 0, 1)  # advanced indexing put R first

    def learn(self, now_s: float, batch: OutcomeBatch,
              answers: OutcomeBatch | None = None) -> None:
        pass

    def probe(self, now_s: float, allowed: np.ndarray) -> np.ndarray | None:
        """(C, R, Q) minimum shares that keep under-measured routes measured."""
        return None


class LearningLoop(AllocationLoop):
    """The loop with a contact model learnt from outcomes only (cold, or warm from history).

    Every batch is scored against the model's prediction before it is learnt (a per-carrier
    CUSUM of the residuals); an alarm re-plans at once, and for `after_alarm_s` the carrier's
    level is read from its attempts since the alarm (`SinceAlarm`, shrunk toward the model's
    by `after_alarm_strength` expected answers). Routes whose recent pace is thin
    keep a probe share. Each plan is the mean of `plan_draws` plans at route rates drawn
    within their noise, so routes the estimates cannot yet tell apart share a cell, and the
    carriers' planned shares swing less from one re-plan to the next on noise alone.

    The model starts from `model` when given (restored from a checkpoint, see
    `optimizer.checkpoint`; its counts are kept and the hyper-parameters here replace
    its own), else warm from `history` (Parquet day files), else cold.
    """

    def __init__(self, frame: DayFrame, t0_unix: float, region, product, network, *,
                 history=None, half_life_s: float | None = None,
                 long_half_life_s: float = 259_200.0,
                 prior_strength: float | tuple = (200.0, 200.0, 100.0, 50.0, 20.0, 20.0),
                 short_strength: float | tuple | None = 100.0,
                 watch_after_attempts: float = 500.0, detect_h: float = 7.0,
                 rescale_on_alarm: bool = False, after_alarm_s: float = 900.0,
                 after_alarm_strength: float = 20.0,
                 min_replan_gap_s: float = 300.0, optimism: float = 1.0,
                 probe_attempts: float = 200.0, probe_window_s: float = 300.0,
                 probe_share: float = 0.05, explore_near: float = 0.8, seed: int = 0,
                 plan_draws: int = 4, draw_sd_max: float = 0.05,
                 model: ContactModel | None = None, **kw) -> None:
        super().__init__(frame, t0_unix, region, product, network, **kw)
        n_c = self.frame.shape[0]
        if half_life_s is None:
            half_life_s = auto_half_life_s(self.frame)
        params = dict(half_life_s=half_life_s, long_half_life_s=long_half_life_s,
                      prior_strength=prior_strength, short_strength=short_strength,
                      exploration="none", random_state=seed)
        shape = model_shape(self.frame)
        if model is not None and tuple(model.shape) != shape:
            raise ValueError(f"the restored model's shape {tuple(model.shape)} is not this "
                             f"day's {shape}")
        self.model = ContactModel(shape, **params) if model is None \
            else model.set_params(**params)
        # Fed at answer time its residuals are as wide as chance, so a lower threshold than
        # the class's: a halving on a carrier at p ~ 0.07 is flagged after ~600 attempts
        # (about 2 min at a quarter of the floor), for ~100 alarms a day on mx-collections.
        self.cusum = ResidualCusum(n_c, h=detect_h)
        self.probe_attempts = probe_attempts
        self.probe_window_s = probe_window_s
        self._seen_at: list[tuple[float, np.ndarray]] = []  # (now_s, short attempts per route)
        self.watch_after = watch_after_attempts
        self.rescale_on_alarm = rescale_on_alarm
        self.since_alarm = SinceAlarm(after_alarm_s, after_alarm_strength)
        self.min_replan_gap_s = min_replan_gap_s
        self.optimism = optimism
        self.probe_share = probe_share
        self.explore_near = explore_near
        self.plan_draws = plan_draws
        self.draw_sd_max = draw_sd_max
        self._draw_rng = np.random.default_rng([seed, 7])
        self._bucket_mix: np.ndarray | None = None  # (R,P,N,A) of the last full estimate
        self.alarms: list[tuple[float, int, float]] = []  # (now_s, carrier, rate ratio)
        if model is None and history:
            # Rows keep their times: the long memory holds the past days (the shapes), the
            # short one only today's drift.
            self.model.warm_start(history, self.t0_unix)
        else:
            # A restored model already holds its history: it is not fitted twice.
            self.model.partial_fit(OutcomeBatch.empty(), self.t0_unix)

    def step(self, now_s: float, batch: OutcomeBatch, launched_t_s: np.ndarray,
             launched_carrier: np.ndarray, dialer, answers: OutcomeBatch | None = None) -> None:
        n_plans = self.planner.n_plans
        super().step(now_s, batch, launched_t_s, launched_carrier, dialer, answers)
        if self.planner.n_plans != n_plans:
            self.write_contact_table(now_s, dialer)

    def write_contact_table(self, now_s: float, dialer) -> bool:
        """Give the VALUE hopper the model's P(human) per (region, product, network, attempt
        bucket, local hour), averaged over carriers by the dialer's current weights.

        Written in place (the event loop shares the array); `contact_n` becomes the model's
        own attempts per cell in its long memory (history has seen the later hours, today's
        short memory has not), so only hours the model has seen can hold a group for later.
        False when the dialer keeps no such table (OLDEST order, per-product shares).
        """
        n_c, n_r, n_p, n_n = self.frame.shape
        table = contact_table(dialer)
        shape = (n_r, n_p, n_n, N_ATTEMPT_BUCKETS, N_HOURS)
        if int(dialer.kinds[2]) != hopper.VALUE or table.shape != shape \
                or dialer.weights.shape != (n_r, n_p * n_n, n_c):
            return False
        now_unix = self.t0_unix + now_s
        _, ph, _ = self.model.predict_table(now_unix)  # (C, R, P, N, H, A)
        w = dialer.weights.reshape(n_r, n_p, n_n, n_c)
        table[...] = np.einsum("rpnc,crpnha->rpnah", w, ph)
        seen = self.model.decayed_counts(0, now_unix, memory="long")[:, 0]
        seen = seen.reshape(ph.shape).sum(axis=0)
        dialer.contact_n[...] = np.moveaxis(seen, 3, 4).reshape(dialer.contact_n.shape)
        dialer.hop[0] = -1
        return True

    def learn(self, now_s: float, batch: OutcomeBatch,
              answers: OutcomeBatch | None = None) -> None:
        # The change detector scores each attempt against what the model predicted before it
        # saw it, in the order the answers became known. Timed at the hang-up instead, a
        # carrier's attempts arrive out of balance whenever its volume moves (its no-answers
        # within half a minute, its contacts minutes later): the residuals swing two to three
        # times wider than chance and the detector cries wolf all day.
        watch = batch if answers is None else answers
        alarm = self._watch(now_s, watch) if len(watch) else None
        now_unix = self.t0_unix + now_s
        if answers is None:
            if len(batch):
                self.model.partial_fit(batch, now_unix)
        else:
            # The model learns each attempt's class when it becomes known, too: learnt at
            # the hang-up, its recent memory would lack the contacts still talking, most of
            # all on a route whose volume just rose, and the plan would chase that shortfall.
            if len(answers):
                self.model.partial_fit(answers, now_unix)
            if len(batch):
                contact = batch.outcome == int(CONTACT)
                self.model.add_handle_times(batch.product[contact], batch.talk_s[contact],
                                            batch.t_s[contact])
        if alarm is None:
            return
        for c in np.flatnonzero(alarm):
            ratio = float(self.cusum.ratio_[c])
            self.alarms.append((now_s, int(c), round(ratio, 3)))
            if self.rescale_on_alarm:
                self.model.rescale_human(int(c), ratio)
            self.since_alarm.open(int(c), now_s)
            # Re-plan at once, but not more often than every few minutes: the residuals are
            # not stationary (leads answer less as the best ones are reached), so alarms
            # also come without a change in a route. One inside the gap waits for its end.
            self.replan_at_s = min(self.replan_at_s,
                                   self.planner.tried_at_s + self.min_replan_gap_s)

    def _watch(self, now_s: float, watch: OutcomeBatch) -> np.ndarray:
        """Feed `watch` to the per-carrier CUSUM; the carriers it raised an alarm on."""
        watch = watch.take(np.argsort(watch.t_s, kind="stable"))
        seg = self.model.segment_ids(watch.carrier, watch.region, watch.product, watch.network,
                                     watch.slot, watch.attempt_bucket)
        _, p_pred, _ = self.model.predict(seg, self.t0_unix + now_s)
        human = (watch.outcome == int(CONTACT)) | (watch.outcome == int(ABANDONED))
        self.since_alarm.add(watch.carrier, seg, human)
        # Watch a carrier once the model knows it (history or today, the long memory): a cold
        # prior is not a baseline.
        seen = self.model.decayed_counts(4, self.t0_unix + now_s, memory="long")[:, 0]
        known = seen[watch.carrier] >= self.watch_after
        return self.cusum.update(watch.carrier[known], human[known], p_pred[known])

    def level_factor(self, now_s: float) -> np.ndarray | None:
        """(C,) alarmed carriers' levels from their attempts since the alarm (`SinceAlarm`)."""
        now_unix = self.t0_unix + now_s
        return self.since_alarm.factor(now_s, self.frame.shape[0],
                                       lambda seg: self.model.predict(seg, now_unix)[1])

    def _at_level(self, ph: np.ndarray, now_s: float) -> np.ndarray:
        """`ph` (carrier first) times the alarmed carriers' level factors."""
        f = self.level_factor(now_s)
        return ph if f is None else ph * f.reshape(-1, *(1,) * (ph.ndim - 1))

    def relative_noise(self, now_s):
        # The current level of a carrier is its short-term correction: recent answers count.
        humans = self.model.decayed_counts(4, self.t0_unix + now_s)[:, 2]
        return 1.0 / np.sqrt(np.maximum(humans, 1.0))  # Poisson count of human answers

    def outclassed(self, now_s: float) -> np.ndarray:
        """(C*N,) routes (carrier × destination network) known to answer less than
        `explore_near` × the best known route to their network: the long memory holds
        `probe_attempts` of theirs. Neither probed nor planned optimistically, as exploring
        them costs contacts every day (with 7 days of history, about 2 points of the
        oracle's contacts); a known route that drifts down today is not outclassed, as its
        long memory keeps its usual level."""
        n_n = self.frame.shape[3]
        long = self.model.decayed_counts(3, self.t0_unix + now_s, memory="long")
        known = long[:, 0] >= self.probe_attempts
        rate = (long[:, 2] / np.maximum(long[:, 0], 1.0)).reshape(-1, n_n)
        best = np.where(known.reshape(-1, n_n), rate, 0.0).max(axis=0)
        return known & (rate < self.explore_near * best[None, :]).ravel()

    def probe(self, now_s, allowed):
        """Routes (carrier × destination network) whose recent pace would hold fewer than
        `probe_attempts` attempts in the short memory get `probe_share` of their segments: a
        carrier the plan dropped keeps being measured, so its recovery is seen (the model
        alone would never see it). Outclassed routes are not probed."""
        _, n_r, n_p, n_n = self.frame.shape
        thin = (self._route_pace(now_s) < self.probe_attempts) & ~self.outclassed(now_s)
        thin = thin.reshape(-1, 1, 1, n_n)  # (C,1,1,N)
        thin = np.broadcast_to(thin, (thin.shape[0], n_r, n_p, n_n)).reshape(-1, n_r, n_p * n_n)
        return np.where(thin & allowed, self.probe_share, 0.0)

    def _route_pace(self, now_s: float) -> np.ndarray:
        """(C*N,) the short-memory attempts each route's pace over the last `probe_window_s`
        would hold. Not the attempts it holds: those of a route just dropped take four
        half-lives to fade under the mark, and the route goes unmeasured that long (a
        recovery was seen after 44 min). Each call logs the counts it read (once an epoch)."""
        seen = self.model.decayed_counts(3, self.t0_unix + now_s)[:, 0]
        log = self._seen_at
        log.append((now_s, seen))
        while len(log) > 1 and now_s - log[1][0] >= self.probe_window_s:
            log.pop(0)
        t_then, then = log[0]
        gap = now_s - t_then
        if gap <= 0:
            return seen
        h = self.model.half_life_s
        fade = 2.0 ** (-gap / h)
        recent = np.maximum(seen - then * fade, 0.0)  # the window's attempts, decayed
        return np.minimum(seen, recent / (1.0 - fade))  # held at that pace for good

    def estimates_now(self, now_s, dialer):
        """Only the current hour's segments, with the attempt mix of the last full estimate."""
        if self._bucket_mix is None:
            return super().estimates_now(now_s, dialer)
        n_c, n_r, n_p, n_n = self.frame.shape
        hour = self.frame.local_hour[:, self.frame.minute(now_s)]
        c, r, p, n, a = np.meshgrid(np.arange(n_c), np.arange(n_r), np.arange(n_p),
                                    np.arange(n_n), np.arange(N_ATTEMPT_BUCKETS), indexing="ij")
        seg = self.model.segment_ids(c, r, p, n, hour[r], a).ravel()
        _, ph, _ = self.model.predict(seg, self.t0_unix + now_s)
        ph = self._at_level(ph.reshape(c.shape), now_s)
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
        ph = self._at_level((ph * wts).sum(axis=-1), now_s)
        bonus = self.optimism_factor(now_s)
        if bonus is not None:
            ph = np.minimum(ph * bonus[:, None, None, :, None], 1.0)
        return ph, (pm * wts).sum(axis=-1), talk

    def _route_noise(self, now_s: float) -> np.ndarray:
        """(C*N,) relative noise of each route's (carrier × network) current estimate,
        1/sqrt(recent human answers + 1); 0 for outclassed routes, never explored."""
        humans = self.model.decayed_counts(3, self.t0_unix + now_s)[:, 2]
        return np.where(self.outclassed(now_s), 0.0, 1.0 / np.sqrt(humans + 1.0))

    def optimism_factor(self, now_s):
        """Optimism in the face of uncertainty, per route (carrier × network): a route
        measured only by probe traffic is planned at its upper bound, so one that has
        recovered wins its traffic back sooner. Outclassed routes get none."""
        if self.optimism <= 0:
            return None
        n_c, _, _, n_n = self.frame.shape
        return (1.0 + self.optimism * self._route_noise(now_s)).reshape(n_c, n_n)

    def route_draws(self, now_s):
        """Each route's rate drawn `plan_draws` times within its noise: a lognormal factor
        of relative sd the route's noise (as for the bonus above), at most `draw_sd_max`.
        The draws split near ties between measured routes; a thin route's exploration is
        the bonus's (drawn at its full noise, a recovered route won back a share of cells,
        not the cells: a return took 48 min instead of 5)."""
        if self.plan_draws <= 0:
            return None
        n_c, _, _, n_n = self.frame.shape
        sd = np.minimum(self._route_noise(now_s), self.draw_sd_max)
        z = self._draw_rng.standard_normal((self.plan_draws, sd.size))
        return np.exp(sd * z - 0.5 * sd**2).reshape(self.plan_draws, n_c, n_n)


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


__all__ = [
    "N_ATTEMPT_BUCKETS",
    "AllocationLoop",
    "LearningLoop",
    "auto_half_life_s",
]
