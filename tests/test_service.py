"""The optimiser service loop driven directly, as the live engine drives it: outcome batches and
dialer arrays in, carrier weights out (no simulator involved)."""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from configs.scenario import PolicySpec
from dialer import pacing
from dialer.state import new_dialer
from optimizer.history import OutcomeBatch
from optimizer.policy import day_frame
from optimizer.service import AllocationLoop, LearningLoop
from smartdial.outcomes import CONTACT, NO_ANSWER

N_LEADS = 3000
EPOCH_S = 600.0
PER_EPOCH = 6000


def _leads(op, rng):
    n_r, n_p, n_n = len(op.regions), len(op.products), len(op.networks)
    return SimpleNamespace(
        region=rng.integers(0, n_r, N_LEADS), product=rng.integers(0, n_p, N_LEADS),
        network=rng.integers(0, n_n, N_LEADS), days_past_due=rng.integers(1, 90, N_LEADS),
        attempts_7d=np.zeros(N_LEADS, np.int64), dnc=np.zeros(N_LEADS, bool),
    )


def _outcomes(frame, t0_unix, now_s, rng, answer_rate):
    """PER_EPOCH attempts finished in the epoch before `now_s` over covered routes."""
    c, r, n = np.nonzero(frame.coverage)
    pick = rng.integers(0, c.size, PER_EPOCH)
    c, r, n = c[pick], r[pick], n[pick]
    t_start = np.sort(rng.uniform(now_s - EPOCH_S, now_s - 60.0, PER_EPOCH))
    slot = frame.local_hour[r, (t_start // 60).astype(np.int64)]
    human = rng.random(PER_EPOCH) < answer_rate[c]
    return OutcomeBatch(
        carrier=c, region=r, product=rng.integers(0, frame.shape[2], PER_EPOCH), network=n,
        slot=slot, attempt_bucket=np.zeros(PER_EPOCH, np.int64),
        outcome=np.where(human, int(CONTACT), int(NO_ANSWER)),
        t_s=t0_unix + t_start + 30.0, ring_s=np.full(PER_EPOCH, 15.0),
        talk_s=np.where(human, 150.0, np.nan),
    ), t_start, c


def _floor(small, seed: int, policy: PolicySpec | None = None):
    """The small scenario's day frame, random leads and a dialer with every agent logged in."""
    op = small.operation
    campaign = op.campaign(small.campaign)
    frame = day_frame(op, campaign, small.date)
    rng = np.random.default_rng(seed)
    leads = _leads(op, rng)
    policy = policy or PolicySpec(pacing="adaptive", routing="optimizer")
    dialer = new_dialer(op, campaign, policy, leads)
    dialer.obs[pacing.O_LOGGED] = float(frame.agents.max())
    return frame, leads, dialer, rng


def _carrier_share(small, collapsed: int | None) -> np.ndarray:
    """Mean weight of each carrier over the segments it may serve, after 5 epochs."""
    frame, leads, dialer, rng = _floor(small, 7)
    t0_unix = frame.start_utc.timestamp()
    loop = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network)
    rate = np.full(frame.shape[0], 0.20)
    if collapsed is not None:
        rate[collapsed] = 0.02
    launched_t, launched_c = np.zeros(0), np.zeros(0, np.int64)
    loop.step(0.0, OutcomeBatch.empty(), launched_t, launched_c, dialer)
    for k in range(1, 6):
        batch, t_start, carrier = _outcomes(frame, t0_unix, k * EPOCH_S, rng, rate)
        launched_t = np.r_[launched_t, t_start]
        launched_c = np.r_[launched_c, carrier]
        loop.step(k * EPOCH_S, batch, launched_t, launched_c, dialer)
    assert loop.planner.n_plans >= 2 and loop.planner.problems == []
    assert loop.planner.data.supply_per_slot is not None  # adaptive pacing: its dial rate
    w = dialer.weights  # (R, Q, C)
    np.testing.assert_allclose(w.sum(axis=2), 1.0)
    allowed = loop.allowed_lines.transpose(1, 2, 0)
    return np.array([w[..., c][allowed[..., c]].mean() for c in range(frame.shape[0])])


@pytest.fixture(scope="module")
def control(small):
    return _carrier_share(small, None)


def test_a_carrier_whose_answer_rate_collapses_loses_share_after_a_replan(small, control):
    c = int(np.argmax(control))  # the carrier the plan leans on most when all answer alike
    collapsed = _carrier_share(small, c)
    assert control[c] > 0.3
    assert collapsed[c] < 0.5 * control[c], (control, collapsed)


def test_each_replan_writes_the_models_contact_table_into_a_value_hopper(small):
    from dialer.state import contact_table

    policy = PolicySpec(pacing="predictive", routing="optimizer", leads="value")
    frame, leads, dialer, rng = _floor(small, 3, policy)
    loop = LearningLoop(frame, frame.start_utc.timestamp(), leads.region, leads.product,
                        leads.network)
    rate = np.full(frame.shape[0], 0.20)
    batch, t_start, carrier = _outcomes(frame, loop.t0_unix, EPOCH_S, rng, rate)
    loop.step(EPOCH_S, batch, t_start, carrier, dialer)  # the first plan
    # Predictive pacing fills the agents: the plan is bounded by agent time, not a dial rate.
    assert loop.planner.data.supply_per_slot is None
    table = contact_table(dialer)
    n_c, n_r, n_p, n_n = frame.shape
    _, ph, _ = loop.model.predict_table(loop.t0_unix + EPOCH_S)
    w = dialer.weights.reshape(n_r, n_p, n_n, n_c)
    np.testing.assert_allclose(table, np.einsum("rpnc,crpnha->rpnah", w, ph))
    assert dialer.hop[0] == -1
    # Evidence only where the model saw attempts (decayed): this epoch's hours, bucket 0.
    seen = dialer.contact_n.reshape(table.shape)
    hours = np.unique(batch.slot)
    assert 0.8 * len(batch) < seen[..., 0, hours].sum() <= len(batch)
    assert seen[..., 1:, :].sum() == 0


class _Told(AllocationLoop):
    """The loop fed a rate table the test sets (C, R, P, N, 24), like the oracle's truth."""

    ph: np.ndarray

    def estimates(self, now_s, dialer):
        return self.ph, 0.1 * self.ph, np.full(self.frame.shape[2], 150.0)


def _replans_on_drift(small, change) -> int:
    """Plan at 08:40 on a table with a steep hour shape, let `change` edit the table, step at
    08:43 and at 09:02 (another local hour, still in the plan's first 30-min slot, which the
    plan rated at 08:55); drift re-plans seen."""
    frame, leads, dialer, _ = _floor(small, 11)
    loop = _Told(frame, frame.start_utc.timestamp(), leads.region, leads.product, leads.network,
                 replan_s=1e9)
    n_c, n_r, n_p, n_n = frame.shape
    hour_shape = np.linspace(0.30, 0.04, 24)  # answers fall hour by hour
    quality = np.linspace(1.0, 0.6, n_c)[:, None, None, None, None]
    loop.ph = quality * np.broadcast_to(hour_shape, (n_c, n_r, n_p, n_n, 24))
    none = (np.zeros(0), np.zeros(0, np.int64))
    loop.step(2400.0, OutcomeBatch.empty(), *none, dialer)
    assert loop.planner.n_plans == 1
    loop.ph = change(loop.ph.copy())
    for now_s in (2580.0, 3720.0):
        loop.step(now_s, OutcomeBatch.empty(), *none, dialer)
    return loop.n_replans_on_drift


def test_a_drift_replan_needs_one_carrier_to_fall_against_the_rest(small):
    assert _replans_on_drift(small, lambda ph: ph) == 0  # only the hour moved
    assert _replans_on_drift(small, lambda ph: 0.7 * ph) == 0  # every route alike
    busiest = 0  # the best route: the plan leans on it

    def halve(ph):
        ph[busiest] *= 0.5
        return ph

    assert _replans_on_drift(small, halve) >= 1


def test_a_route_history_knows_to_be_outclassed_is_neither_probed_nor_planned_optimistically(
    small,
):
    frame, leads, _, rng = _floor(small, 11)
    t0_unix = frame.start_utc.timestamp()
    loop = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network)
    c_bad, c_drop = 1, 2  # tier1-mx and midtier-a: both cover every route
    rate = np.full(frame.shape[0], 0.20)
    rate[c_bad] = 0.05
    for k in range(1, 11):  # two days ago: the long memory learns every route's usual level
        batch, _, _ = _outcomes(frame, t0_unix - 2 * 86_400.0, k * EPOCH_S, rng, rate)
        loop.model.partial_fit(batch, t0_unix - 2 * 86_400.0 + k * EPOCH_S)
    today = rate.copy()
    today[c_drop] = 0.02  # a good route falls today: a drift, not an outclassed route
    batch, _, _ = _outcomes(frame, t0_unix, EPOCH_S, rng, today)
    loop.model.partial_fit(batch, t0_unix + EPOCH_S)
    now = EPOCH_S + 3600.0  # today's short memory has faded: every route is thin again

    n_c, n_n = frame.shape[0], frame.shape[3]
    out = loop.outclassed(now).reshape(n_c, n_n)
    assert out[c_bad].all() and not out[np.arange(n_c) != c_bad].any()
    allowed = np.ones((n_c, frame.shape[1], frame.shape[2] * n_n), bool)
    probe = loop.probe(now, allowed)
    assert (probe[c_bad] == 0).all()
    assert (probe[c_drop] == loop.probe_share).all()
    bonus = loop.optimism_factor(now)
    assert (bonus[c_bad] == 1.0).all() and (bonus[c_drop] > 1.0).all()
    draws = loop.route_draws(now)  # (K, C, N): the plan's draws leave it out too
    assert (draws[:, c_bad] == 1.0).all() and (draws[:, c_drop] != 1.0).all()


def test_a_route_the_plan_stops_feeding_is_probed_at_once_not_when_its_memory_fades(small):
    frame, leads, _, rng = _floor(small, 17)
    t0_unix = frame.start_utc.timestamp()
    loop = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network,
                        half_life_s=2 * EPOCH_S)
    n_c, n_n = frame.shape[0], frame.shape[3]
    allowed = np.ones((n_c, frame.shape[1], frame.shape[2] * n_n), bool)
    rate = np.full(n_c, 0.20)
    for k in range(1, 11):  # two days ago: every route known, none outclassed
        batch, _, _ = _outcomes(frame, t0_unix - 2 * 86_400.0, k * EPOCH_S, rng, rate)
        loop.model.partial_fit(batch, t0_unix - 2 * 86_400.0 + k * EPOCH_S)

    def epoch(k: int, dropped: tuple[int, ...] = ()) -> np.ndarray:
        batch, _, _ = _outcomes(frame, t0_unix, k * EPOCH_S, rng, rate)
        batch = batch.take(np.flatnonzero(~np.isin(batch.carrier, dropped)))
        loop.model.partial_fit(batch, t0_unix + k * EPOCH_S)
        return loop.probe(k * EPOCH_S, allowed)

    for k in range(1, 7):
        before = epoch(k)
    c_drop = 2
    assert not before[c_drop].any()  # fed at a pace that keeps it measured
    probe = epoch(7, (c_drop,))
    held = loop.model.decayed_counts(3, t0_unix + 7 * EPOCH_S)[:, 0].reshape(n_c, n_n)
    assert (held[c_drop] > 2 * loop.probe_attempts).all()  # its memory still holds plenty
    # Probed in the first window without attempts, not after the four half-lives its old
    # volume takes to fade: a route dropped during an incident is measured while it recovers.
    assert (probe[c_drop] == loop.probe_share).all()
    others = np.arange(n_c) != c_drop
    assert (probe[others] == before[others]).all()
    assert not epoch(8)[c_drop].any()  # fed again: no longer probed


def test_the_plans_draws_spread_each_route_by_its_noise_up_to_the_cap(small):
    frame, leads, _, rng = _floor(small, 13)
    t0_unix = frame.start_utc.timestamp()
    loop = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network,
                        plan_draws=2000)
    rate = np.full(frame.shape[0], 0.30)
    for _ in range(10):
        batch, _, _ = _outcomes(frame, t0_unix, EPOCH_S, rng, rate)
        loop.model.partial_fit(batch, t0_unix + EPOCH_S)
    now = EPOCH_S
    n_c, n_n = frame.shape[0], frame.shape[3]
    humans = loop.model.decayed_counts(3, t0_unix + now)[:, 2].reshape(n_c, n_n)
    sd = np.minimum(1.0 / np.sqrt(humans + 1.0), loop.draw_sd_max)
    routes = frame.coverage.any(axis=1)  # (C, N) routes with traffic
    # Routes into few regions have few answers: their noise is wide, drawn at the cap.
    assert (sd[routes] == loop.draw_sd_max).any() and (sd[routes] < loop.draw_sd_max).any()
    log_f = np.log(loop.route_draws(now))
    np.testing.assert_allclose(log_f.std(axis=0)[routes], sd[routes], rtol=0.1)
    np.testing.assert_allclose(np.exp(log_f).mean(axis=0)[routes], 1.0, atol=0.01)  # unbiased
    off = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network, plan_draws=0)
    assert off.route_draws(now) is None


def test_answers_are_watched_and_learnt_as_they_come_and_talk_times_at_the_hang_up(small):
    """A carrier whose answers halve raises an alarm from the answers stream alone, before any
    of its calls has hung up (the same answers at the usual rate raise none); the model learns
    their classes at once, and only the talk times when the calls end."""
    frame, leads, dialer, rng = _floor(small, 5)
    t0_unix = frame.start_utc.timestamp()
    loop = LearningLoop(frame, t0_unix, leads.region, leads.product, leads.network)
    rate = np.full(frame.shape[0], 0.20)
    launched_t, launched_c = np.zeros(0), np.zeros(0, np.int64)
    for k in range(1, 4):  # the model learns every carrier's usual rate
        batch, t_start, carrier = _outcomes(frame, t0_unix, k * EPOCH_S, rng, rate)
        launched_t, launched_c = np.r_[launched_t, t_start], np.r_[launched_c, carrier]
        loop.step(k * EPOCH_S, batch, launched_t, launched_c, dialer)
    now = t0_unix + 3 * EPOCH_S + 60.0
    c = 0

    def on_answers(factor: float):
        twin, twin_dialer = copy.deepcopy(loop), copy.deepcopy(dialer)
        before = len(twin.alarms)
        counts = twin.model.decayed_counts(0, now).copy()
        seen = twin.model.n_seen_
        r = rate.copy()
        r[c] *= factor
        ended, _, _ = _outcomes(frame, t0_unix, 4 * EPOCH_S, np.random.default_rng(9), r)
        answers = dataclasses.replace(ended, talk_s=np.full(len(ended), np.nan))
        twin.step(3 * EPOCH_S + 60.0, OutcomeBatch.empty(), launched_t, launched_c,
                  twin_dialer, answers=answers)
        learnt = twin.model.decayed_counts(0, now) - counts
        assert twin.model.n_seen_ - seen == len(answers)
        assert learnt[:, 2].sum() > 0.5 * learnt[:, 0].sum() * rate.min() * factor
        # the same attempts hanging up later bring their talk times, not their classes again
        handle = twin.model.handle_.copy()
        twin.step(3 * EPOCH_S + 120.0, ended, launched_t, launched_c, twin_dialer,
                  answers=OutcomeBatch.empty())
        assert twin.model.n_seen_ - seen == len(answers)
        assert (twin.model.decayed_counts(0, now) - counts == learnt).all()
        assert (twin.model.handle_[:, 0] > handle[:, 0]).any()
        return [a for a in twin.alarms[before:] if a[1] == c]

    assert on_answers(1.0) == []
    fell = on_answers(0.5)
    assert fell and fell[0][2] < 1.0
