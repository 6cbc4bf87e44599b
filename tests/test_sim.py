"""The simulated campaign day: it agrees with queueing theory where it reduces to
Erlang-A, keeps its books, respects every limit, is reproducible with common
random numbers across policies, and plays its incidents and calling windows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from scipy import stats

from configs.schema import Distribution
from sim import draws, kernel, kpis, theory
from sim.run import simulate
from smartdial.outcomes import Outcome

CONTACT, ABANDONED, MACHINE = int(Outcome.CONTACT), int(Outcome.ABANDONED), int(Outcome.MACHINE)
NO_ANSWER, CONGESTION = int(Outcome.NO_ANSWER), int(Outcome.CONGESTION)


# ------------------------------------------------------------------ helpers


def with_campaign(scenario, **update):
    """The scenario with its campaign's fields replaced (configs are frozen)."""
    op = scenario.operation
    camp = op.campaign(scenario.campaign).model_copy(update=update)
    campaigns = tuple(camp if c.name == camp.name else c for c in op.campaigns)
    return scenario.model_copy(update={"operation": op.model_copy(update={"campaigns": campaigns})})


def flat_schedule(scenario, agents: int, start: dt.time, end: dt.time):
    sched = scenario.operation.campaign(scenario.campaign).agents
    slot = sched.slots[0].model_copy(update={"start": start, "agents": agents})
    return sched.model_copy(update={"slots": (slot,), "end": end})


def answer_time(log) -> np.ndarray:
    return log.t_start + log.ring_s.astype(float)


def draw(rec, purpose: int, dist_row: int, log, rows) -> np.ndarray:
    """The world's own draw of `purpose` for the attempts `rows` (counter-based, replayable)."""
    w = rec.world
    return np.array([
        draws.sample(w.dists[dist_row], w.keys[purpose], int(log.lead[i]), int(log.attempt[i]) * 64)
        for i in np.flatnonzero(rows)
    ])


# ------------------------------------------------------------------ queueing theory

# The floor reduced to an M/M/n+M queue: every launch that a human answers is an
# arrival. Launches come from fixed-rate Poisson pacing (Poisson counts per tick are
# a Poisson process on the tick lattice); each launch reaches a human independently
# (one attempt per lead, leads i.i.d., no busy/machine/failure), and the answer
# comes after an exponential ring of mean 2 s ≫ the 0.25-s tick, which turns the
# lattice process into a Poisson process of practically constant rate (the
# displacement theorem; the 4-Hz ripple is ~2 % and averages out over a call).
# Handle time and patience are exponential; wrap-up is a fixed millisecond.
MMN_AGENTS = 20
MMN_TALK_S = 60.0
MMN_PATIENCE_S = 30.0
MMN_WRAP_S = 0.001
MMN_RING_S = 2.0
MMN_CONTACT = 0.5  # P(human) before the lead's propensity and the 0.95 cap
MMN_DIALS_PER_AGENT_H = 120.0
MMN_TICK_S = 0.25
WARMUP_S, COOLDOWN_S = 900.0, 600.0


def erlang_a_scenario(small, patience_s: float = MMN_PATIENCE_S, agents: int = MMN_AGENTS):
    op = small.operation
    camp = op.campaign(small.campaign)
    sc = with_campaign(
        small,
        agents=flat_schedule(small, agents, dt.time(9, 0), dt.time(17, 0)),
        dialer=camp.dialer.model_copy(
            update={"tick_s": MMN_TICK_S, "poisson_calls_per_agent_hour": MMN_DIALS_PER_AGENT_H}
        ),
        retry=camp.retry.model_copy(update={"max_attempts_per_day": 1}),
    )
    truth = small.truth.model_copy(update={
        "contact_by_hour": {p: (MMN_CONTACT,) * 24 for p in small.truth.contact_by_hour},
        "region_spread": 0.0,
        "region_peak_shift_h": 0.0,
        "network_factor": {},
        "carrier_quality": {},
        "carrier_failure_rate": {c.name: 0.0 for c in op.carriers},
        "machine_rate": 0.0,
        "busy_rate": 0.0,
        "ring_time": Distribution(kind="exponential", mean_s=MMN_RING_S),
        "handle_time": Distribution(kind="exponential", mean_s=MMN_TALK_S),
        "wrap_up": Distribution(kind="fixed", mean_s=MMN_WRAP_S),
        "patience": Distribution(kind="exponential", mean_s=patience_s),
        "incidents": (),
    })
    portfolio = small.portfolio.model_copy(update={
        # Twice the day's launches (one attempt per lead): the hopper never runs dry.
        "leads": int(2 * MMN_DIALS_PER_AGENT_H * agents * 8),
        "invalid_fraction": 0.0,
        "dnc_fraction": 0.0,
        "prior_attempts_7d_max": 0,
        "region_weights": {"CMX": 1.0},  # open all day, one queue
    })
    return sc.model_copy(update={"truth": truth, "portfolio": portfolio})


def erlang_a_day(sc, seed: int) -> dict:
    """Simulate one day; its steady-state measures and the theory for its arrival rate."""
    rec = simulate(sc, "poisson", seed=seed)
    camp = sc.operation.campaign(sc.campaign)
    log, end = rec.log, rec.clock.end_s
    n = int(rec.world.agents_sched.max())

    # Nothing throttled the Poisson dialer: no lead shortage, no limit reached.
    assert rec.log.lead.size < sc.portfolio.leads
    assert kpis.violations(rec)["carrier_channels"] == 0
    assert int(rec.floor.counters[kernel.K_REJECTED]) == 0

    launch_rate = camp.dialer.poisson_calls_per_agent_hour * n / 3600.0
    p_human = np.minimum(MMN_CONTACT * rec.leads.propensity.astype(float), 0.95).mean()
    p_ring_ok = 1.0 - np.exp(-camp.ring_timeout_s / MMN_RING_S)
    lam = launch_rate * p_human * p_ring_ok
    patience_s = sc.truth.patience.mean_s
    q = theory.erlang_a(lam, 1.0 / (MMN_TALK_S + MMN_WRAP_S), n, 1.0 / patience_s)

    human = (log.outcome == CONTACT) | (log.outcome == ABANDONED)
    t_ans = answer_time(log)
    lo, hi = WARMUP_S, end - COOLDOWN_S
    arrivals = human & (t_ans >= lo) & (t_ans < hi)
    wait = log.wait_s[arrivals].astype(float)

    # Agent-busy time inside [lo, hi), exactly, from each contact's talk + wrap interval.
    c = log.outcome == CONTACT
    b0 = t_ans[c] + log.wait_s[c]
    b1 = t_ans[c] + log.conn_s[c] + MMN_WRAP_S
    busy = np.clip(np.minimum(b1, hi) - np.maximum(b0, lo), 0.0, None).sum()
    return {
        "theory": q,
        "p_abandon": float((log.outcome[arrivals] == ABANDONED).mean()),
        "occupancy": float(busy / (n * (hi - lo))),
        "mean_wait_s": float(wait.mean()),
        "p_wait_over_2s": float((wait > 2.0).mean()),
        "arrival_rate": float(human.sum() / end),
        "lam": lam,
    }


def check_against_theory(days: list[dict], measure: str, theory_value, level=0.999):
    """The seeds' mean of (simulated − theory) is 0 within a two-sided t interval.

    Seeds are independent replications, so the t interval is exact up to the
    normality of per-day means (each averages thousands of calls). Also checks
    the test has power: its standard error is small next to the quantity.
    """
    diffs = np.array([d[measure] - theory_value(d) for d in days])
    mean = diffs.mean()
    se = diffs.std(ddof=1) / np.sqrt(diffs.size)
    t_crit = stats.t.ppf(0.5 + level / 2, diffs.size - 1)
    ref = np.mean([theory_value(d) for d in days])
    assert se < 0.05 * ref, f"{measure}: the test is too weak (se {se:.3g} vs {ref:.3g})"
    assert abs(mean) <= t_crit * se, (
        f"{measure}: simulated − theory = {mean:.4g} ± {se:.2g} (t = {mean / se:.2f}, "
        f"limit {t_crit:.2f}); theory {ref:.4g}"
    )
    return mean, se


@pytest.fixture(scope="module")
def erlang_a_days(small):
    sc = erlang_a_scenario(small)
    return [erlang_a_day(sc, seed) for seed in range(12)]


def test_theory_reduces_to_erlang_c_without_abandonment():
    # M/M/n with λ = 8, μ = 1, n = 10: Erlang's C formula by hand.
    lam, mu, n = 8.0, 1.0, 10
    a = lam / mu
    head = sum(a**k / np.prod(np.arange(1, k + 1)) for k in range(n))
    tail = a**n / np.prod(np.arange(1, n + 1)) * n / (n - a)
    c = tail / (head + tail)
    q = theory.erlang_a(lam, mu, n, 0.0)
    assert q.p_delay == pytest.approx(c, rel=1e-12)
    assert q.mean_wait_s == pytest.approx(c / (n * mu - lam), rel=1e-10)
    assert q.p_wait_over(0.5) == pytest.approx(c * np.exp(-(n * mu - lam) * 0.5), rel=1e-9)
    assert q.occupancy == pytest.approx(lam / (n * mu), rel=1e-12)


def test_theory_single_agent_matches_the_closed_form_and_little_law():
    # M/M/1+M: π_0 = 1 / (1 + Σ_k ρ^k ∏_{j<k} μ/(μ + jθ)); P(Ab) = 1 − (1 − π_0)/ρ.
    lam, mu, theta = 0.9, 1.0, 0.5
    terms, prod = [1.0], lam / mu
    for j in range(1, 200):
        terms.append(prod)
        prod *= lam / (mu + j * theta)
    p0 = 1.0 / sum(terms)
    q = theory.erlang_a(lam, mu, 1, theta)
    assert q.pi[0] == pytest.approx(p0, rel=1e-12)
    assert q.p_abandon == pytest.approx(1.0 - (1.0 - p0) * mu / lam, rel=1e-10)
    assert q.mean_wait_s == pytest.approx(q.p_abandon / theta, rel=1e-12)  # exponential patience
    assert q.p_wait_over(0.0) == pytest.approx(q.p_delay, rel=1e-12)
    assert q.pi.sum() == pytest.approx(1.0, abs=1e-14)


def test_simulated_abandonment_matches_erlang_a(erlang_a_days):
    _, se = check_against_theory(erlang_a_days, "p_abandon", lambda d: d["theory"].p_abandon)
    # Power: the same floor with one agent fewer would be rejected.
    right = erlang_a_days[0]["theory"]
    wrong = theory.erlang_a(
        right.arrival_rate, right.service_rate, MMN_AGENTS - 1, right.abandon_rate
    )
    assert abs(wrong.p_abandon - right.p_abandon) > 5 * se


def test_simulated_agent_occupancy_matches_erlang_a(erlang_a_days):
    check_against_theory(erlang_a_days, "occupancy", lambda d: d["theory"].occupancy)


def test_human_answers_arrive_at_the_rate_the_pacing_implies(erlang_a_days):
    check_against_theory(erlang_a_days, "arrival_rate", lambda d: d["lam"])


def test_patient_callers_abandon_and_wait_as_erlang_a_predicts(small):
    # Patience (mean 120 s) long next to talk (60 s): slots are recycled while an old
    # patience event is still pending, which is where the kernel goes wrong.
    sc = erlang_a_scenario(small, patience_s=120.0)
    days = [erlang_a_day(sc, seed) for seed in range(20)]
    check_against_theory(days, "mean_wait_s", lambda d: d["theory"].mean_wait_s)
    check_against_theory(days, "p_wait_over_2s", lambda d: d["theory"].p_wait_over(2.0))
    check_against_theory(days, "p_abandon", lambda d: d["theory"].p_abandon)


def test_an_abandoned_caller_waited_exactly_their_own_patience(small):
    rec = simulate(erlang_a_scenario(small), "poisson", seed=3)
    log = rec.log
    gone = log.outcome == ABANDONED
    patience = draw(rec, draws.PATIENCE, kernel.D_PATIENCE, log, gone)
    early = log.wait_s[gone] < patience - 1e-3
    assert gone.sum() > 300
    assert not early.any(), f"{early.sum()} of {gone.sum()} abandoned before their patience ran out"


def test_no_connected_caller_waited_longer_than_their_patience(small):
    rec = simulate(erlang_a_scenario(small), "poisson", seed=3)
    log = rec.log
    served = log.outcome == CONTACT
    patience = draw(rec, draws.PATIENCE, kernel.D_PATIENCE, log, served)
    assert (log.wait_s[served] > 0).sum() > 1000
    assert (log.wait_s[served] <= patience + 1e-3).all()


@pytest.mark.slow
@pytest.mark.parametrize(("agents", "patience_s"), [(5, 15.0), (60, 30.0), (10, 10.0)])
def test_erlang_a_agreement_holds_across_regimes(small, agents, patience_s):
    sc = erlang_a_scenario(small, patience_s=patience_s, agents=agents)
    days = [erlang_a_day(sc, seed) for seed in range(20)]
    check_against_theory(days, "p_abandon", lambda d: d["theory"].p_abandon)
    check_against_theory(days, "occupancy", lambda d: d["theory"].occupancy)


# ------------------------------------------------------------------ invariants


def test_every_attempt_ends_in_exactly_one_valid_outcome(small_days):
    for name, rec in small_days.items():
        log, f = rec.log, rec.floor
        assert log.outcome.size > 1000, name
        assert np.isin(log.outcome, [int(o) for o in Outcome]).all(), name
        # Each launch was counted once by the hopper and every call slot is free again.
        assert int(rec.dialer.attempts_day.sum()) == log.outcome.size, name
        assert (f.call_state == kernel.C_FREE).all() and (f.trunk_used == 0).all(), name
        for k in (kernel.K_RINGING, kernel.K_WAITING, kernel.K_TALKING, kernel.K_WRAPPING):
            assert f.counters[k] == 0, name
        assert f.counters[kernel.K_HUMAN] == np.isin(log.outcome, [CONTACT, ABANDONED]).sum()
        assert f.counters[kernel.K_ABANDONED] == (log.outcome == ABANDONED).sum(), name
        assert np.all(np.diff(log.t_start) >= 0), name
        assert np.all(kpis.attempt_end_s(log) <= rec.t_close_s + 1e-6), name
        k = kpis.compute(rec)
        assert sum(k["outcomes"].values()) == k["attempts"] == log.outcome.size, name


def test_outcomes_nest_contacts_within_human_answers_within_answered_within_attempts(small_days):
    for name, rec in small_days.items():
        k = kpis.compute(rec)
        o = k["outcomes"]
        answered = o["contact"] + o["abandoned"] + o["machine"]
        assert 0 < k["contacts"] <= k["human_answered"] <= answered <= k["attempts"], name
        assert k["human_answered"] == o["contact"] + o["abandoned"], name


def test_each_outcome_leaves_the_traces_it_should(small_day):
    rec = small_day
    log, truth = rec.log, rec.scenario.truth
    camp = rec.scenario.operation.campaign(rec.scenario.campaign)
    o = log.outcome
    contact = o == CONTACT
    # Contacts have an agent and were put through before the caller gave up.
    assert (log.agent[contact] >= 0).all() and (log.agent[~contact] == -1).all()
    assert (log.wait_s[contact] >= 0).all()
    assert (log.wait_s[contact] <= truth.patience.mean_s + 1e-5).all()  # fixed patience
    assert (log.conn_s[contact] > log.wait_s[contact]).all()
    # Abandoned callers waited exactly their (fixed) patience, billed while waiting.
    gone = o == ABANDONED
    assert gone.any()
    np.testing.assert_allclose(log.wait_s[gone], truth.patience.mean_s, rtol=1e-6)
    np.testing.assert_array_equal(log.conn_s[gone], log.wait_s[gone])
    # Machines are connected for the AMD decision only; no-answers ring out the timeout.
    np.testing.assert_allclose(log.conn_s[o == MACHINE], truth.machine_detect.mean_s, rtol=1e-6)
    np.testing.assert_allclose(log.ring_s[o == NO_ANSWER], camp.ring_timeout_s, rtol=1e-6)
    unanswered = ~np.isin(o, [CONTACT, ABANDONED, MACHINE])
    assert (log.conn_s[unanswered] == 0).all() and (log.wait_s[unanswered] == 0).all()
    assert (log.ring_s <= camp.ring_timeout_s + 1e-5).all()


def test_agent_time_adds_up_to_logged_in_time(small_day):
    rec = small_day
    log, f, clock = rec.log, rec.floor, rec.clock
    total = f.agent_idle_s + f.agent_talk_s + f.agent_wrap_s
    contact = log.outcome == CONTACT
    t_ans = answer_time(log)
    talk = (log.conn_s - log.wait_s).astype(float)
    wrap = draw(rec, draws.WRAP, kernel.D_WRAP, log, contact)

    # Talk and wrap seconds are exactly the contacts' talk and the wrap-ups drawn for them.
    assert f.agent_talk_s.sum() == pytest.approx(talk[contact].sum(), rel=1e-6)
    assert f.agent_wrap_s.sum() == pytest.approx(wrap.sum(), rel=1e-9)

    # One call at a time per agent, inside its logged-in span [0, total).
    agent = log.agent[contact]
    t0 = (t_ans + log.wait_s)[contact]
    t1 = (t_ans + log.conn_s)[contact] + wrap
    order = np.lexsort((t0, agent))
    same = agent[order][1:] == agent[order][:-1]
    assert (t0[order][1:][same] >= t1[order][:-1][same] - 1e-3).all()
    assert (t1 <= total[agent] + 1e-3).all()

    # Every agent logs in at 0 and out at a scheduled logoff (12:30 or the end of day),
    # or, if on a call then, the moment its last wrap-up ends; never before.
    logoffs = np.array([clock.at(dt.time(12, 30)), clock.end_s])
    last_end = np.zeros(total.size)
    np.maximum.at(last_end, agent, t1)
    at_logoff = np.isclose(total[:, None], logoffs[None, :], atol=1e-6).any(axis=1)
    after_call = np.isclose(total, last_end, atol=1e-3) & (total > logoffs[0])
    assert (at_logoff | after_call).all()
    sched_s = 60.0 * rec.world.agents_sched.sum()
    assert sched_s <= total.sum() <= sched_s + 20 * (t1 - t0).max()
    assert rec.t_close_s == pytest.approx(total.max())
    assert (f.samples[:, kernel.S_BUSY] <= f.samples[:, kernel.S_LOGGED]).all()


def test_no_policy_breaks_a_calling_rule_or_a_carrier_limit(small_days):
    for name, rec in small_days.items():
        assert kpis.violations(rec) == dict.fromkeys(kpis.violations(rec), 0), name


# The checker itself: a hand-made log that breaks one rule is caught, and only that rule.


def _hand_log(rows: list[dict]):
    cols = {
        "lead": np.int32, "carrier": np.int16, "attempt": np.int16, "t_start": np.float64,
        "ring_s": np.float32, "wait_s": np.float32, "conn_s": np.float32, "outcome": np.int8,
        "agent": np.int32,
    }
    defaults = {"attempt": 0, "ring_s": 25.0, "wait_s": 0.0, "conn_s": 0.0,
                "outcome": NO_ANSWER, "agent": -1}
    return kernel.Log(**{
        k: np.array([r.get(k, defaults.get(k)) for r in rows], dtype=t) for k, t in cols.items()
    })


@pytest.fixture(scope="module")
def clean_leads(small_day):
    """Leads in Mexico City, not on the DNC list, with no prior attempts this week."""
    rec = small_day
    cmx = rec.scenario.operation.region_index("CMX")
    ok = (rec.leads.region == cmx) & ~rec.leads.dnc & (rec.leads.attempts_7d == 0)
    return np.flatnonzero(ok & (rec.leads.callback_s < 0))


def test_violation_checker_flags_a_promised_callback_dialled_early(small_day):
    rec = small_day
    cmx = rec.scenario.operation.region_index("CMX")
    ok = (rec.leads.region == cmx) & ~rec.leads.dnc & (rec.leads.attempts_7d == 0)
    promised = np.flatnonzero(ok & (rec.leads.callback_s > 3600.0))
    lead = int(promised[0])
    t = float(rec.leads.callback_s[lead])
    _only("callback_early", 1)(
        _violations_of(rec, [{"lead": lead, "carrier": 1, "t_start": t - 600.0}])
    )
    assert _violations_of(rec, [{"lead": lead, "carrier": 1, "t_start": t}])["callback_early"] == 0


def _violations_of(rec, rows, leads=None):
    new = dataclasses.replace(rec, log=_hand_log(rows), leads=leads or rec.leads)
    return kpis.violations(new)


def _only(rule, count=None, besides=()):
    def check(v):
        assert v[rule] > 0 if count is None else v[rule] == count, v
        assert all(n == 0 for r, n in v.items() if r != rule and r not in besides), v
    return check


def test_violation_checker_accepts_a_clean_hand_made_log(small_day, clean_leads):
    rows = [
        {"lead": lead, "carrier": 1, "t_start": 100.0 * i}
        for i, lead in enumerate(clean_leads[:20])
    ]
    assert sum(_violations_of(small_day, rows).values()) == 0


def test_violation_checker_catches_a_call_outside_local_hours(small_day, clean_leads):
    # 06:59 in Mexico City: two hours and a minute before the 09:00 start.
    rows = [{"lead": clean_leads[0], "carrier": 1, "t_start": -2 * 3600.0 - 60.0},
            {"lead": clean_leads[1], "carrier": 1, "t_start": 10.0}]
    _only("outside_calling_hours", 1)(_violations_of(small_day, rows))


def test_violation_checker_catches_the_daily_cap(small_day, clean_leads):
    lead = clean_leads[0]
    rows = [{"lead": lead, "carrier": 1, "t_start": 4000.0 * i} for i in range(4)]
    _only("daily_cap", 1)(_violations_of(small_day, rows))


def test_violation_checker_catches_the_weekly_cap(small_day, clean_leads):
    lead = clean_leads[0]
    prior = small_day.leads.attempts_7d.copy()
    prior[lead] = 6
    rows = [{"lead": lead, "carrier": 1, "t_start": 4000.0 * i} for i in range(2)]
    leads = small_day.leads._replace(attempts_7d=prior)
    _only("weekly_cap", 1)(_violations_of(small_day, rows, leads))


def test_violation_checker_catches_a_do_not_call_lead(small_day):
    dnc = np.flatnonzero(small_day.leads.dnc)
    assert dnc.size
    rows = [{"lead": dnc[0], "carrier": 1, "t_start": 10.0}]
    v = _violations_of(small_day, rows)
    assert v["do_not_call"] == 1  # such a lead may also break other rules (hours, caps)


def test_violation_checker_catches_a_retry_too_soon(small_day, clean_leads):
    # After a no-answer the lead must rest an hour; this retry comes 10 minutes later.
    lead = clean_leads[0]
    rows = [{"lead": lead, "carrier": 1, "t_start": 0.0},
            {"lead": lead, "carrier": 1, "t_start": 625.0}]
    _only("retry_gap", 1)(_violations_of(small_day, rows))


def test_violation_checker_catches_too_many_channels(small_day, clean_leads):
    op = small_day.scenario.operation
    c = op.carrier_index("regional-norte")
    n = op.carriers[c].channels + 1  # one call more than the trunk holds, 2 per second
    rows = [{"lead": lead, "carrier": c, "t_start": 0.5 * i, "outcome": CONTACT,
             "ring_s": 5.0, "conn_s": 600.0, "agent": 0} for i, lead in enumerate(clean_leads[:n])]
    # A one-carrier log also breaks the contracts (regional-norte's cap, tier1-mx's minimum).
    _only("carrier_channels", 1, besides=["contract_share"])(_violations_of(small_day, rows))


def test_a_call_ending_as_the_next_starts_is_no_overlap_after_float32_rounding(
        small_day, clean_leads):
    """A full trunk: a call ends at 20 889 s and the next starts then (the dialer freed the
    channel first). Its logged float32 durations add up to 2 µs later, which is no breach;
    a real overlap of a tenth of a second is."""
    op = small_day.scenario.operation
    c = op.carrier_index("regional-norte")
    n = op.carriers[c].channels
    hold = [{"lead": lead, "carrier": c, "t_start": 20_000.0, "ring_s": 5.0, "conn_s": 2000.0,
             "outcome": CONTACT, "agent": 0} for lead in clean_leads[: n - 1]]
    ending = {"lead": clean_leads[n], "carrier": c, "t_start": 20_752.0, "ring_s": 7.50358772277832,
              "conn_s": 129.4964141845703, "outcome": CONTACT, "agent": 1}
    assert kpis.attempt_end_s(_hand_log([ending]))[0] > 20_889.0  # the rounding
    for start, breaches in ((20_889.0, 0), (20_888.9, 1)):
        nxt = {"lead": clean_leads[n + 1], "carrier": c, "t_start": start}
        v = _violations_of(small_day, [*hold, ending, nxt])
        assert v["carrier_channels"] == breaches, v


def test_violation_checker_catches_a_cps_burst(small_day, clean_leads):
    op = small_day.scenario.operation
    c = op.carrier_index("regional-norte")
    k = int(op.carriers[c].cps)
    rows = [{"lead": lead, "carrier": c, "t_start": 100.0 + 0.9 * i / k, "ring_s": 3.0,
             "outcome": int(Outcome.BUSY)} for i, lead in enumerate(clean_leads[: k + 1])]
    _only("carrier_cps", 1, besides=["contract_share"])(_violations_of(small_day, rows))


def test_violation_checker_catches_a_carrier_outside_its_contract(small_day, clean_leads):
    op = small_day.scenario.operation
    grey, tier1, mid = (op.carrier_index(n) for n in ("lcr-grey", "tier1-mx", "midtier-a"))

    def day(carriers):
        return _violations_of(small_day, [
            {"lead": lead, "carrier": c, "t_start": 60.0 * i}
            for i, (lead, c) in enumerate(zip(clean_leads[: len(carriers)], carriers, strict=True))
        ])

    # lcr-grey's max_share is 30 %: 5 of 10 attempts is over the cap and its one-call slack.
    _only("contract_share", 1)(day([grey] * 5 + [tier1] * 5))
    assert sum(day([grey] * 4 + [tier1] * 6).values()) == 0
    # tier1-mx is owed 10 %: none of 20 attempts is two short.
    _only("contract_share", 1)(day([mid] * 20))
    assert sum(day([mid] * 18 + [tier1] * 2).values()) == 0


# ------------------------------------------------------------------ determinism and CRN


def test_same_seed_gives_the_same_day(small, small_day):
    again = simulate(small, small.default_policy)
    assert kpis.compute(again) == kpis.compute(small_day)
    for a, b in zip(again.log, small_day.log, strict=True):
        np.testing.assert_array_equal(a, b)


def test_another_seed_gives_another_day(small, small_day):
    other = kpis.compute(simulate(small, small.default_policy, seed=small.seed + 1))
    mine = kpis.compute(small_day)
    assert other["seed"] != mine["seed"]
    assert (other["attempts"], other["contacts"], other["cost"]) != (
        mine["attempts"], mine["contacts"], mine["cost"]
    )


def _attempt_facts(rec) -> dict:
    """(lead, attempt) → the log row and what the far end's answer probability depends
    on besides the lead: carrier, the lead's local hour, the carrier's answer factor."""
    log, w = rec.log, rec.world
    minute = np.minimum((log.t_start // 60).astype(np.int64), w.local_hour.shape[1] - 1)
    region = w.region[log.lead]
    c = log.carrier.astype(np.int64)
    hour = w.local_hour[region, minute]
    factor = w.carrier_factor[c, minute]
    up = w.carrier_up[c, minute]
    return {
        (int(lead), int(att)): (i, int(ci), int(h), float(fa), bool(u))
        for i, (lead, att, ci, h, fa, u) in enumerate(
            zip(log.lead, log.attempt, c, hour, factor, up, strict=True)
        )
    }


@pytest.mark.parametrize("other", ["ratio", "cheapest", "progressive", "poisson"])
def test_two_policies_on_one_seed_see_the_same_world(small_days, small, other):
    """Common random numbers: a lead's attempt number k meets the same far end under
    either policy. Whatever the carrier or time: the same invalid number, the same ring
    before an answer, the same talk time once through to an agent. On the same carrier:
    the same busy signal or network failure. On the same carrier in the same local hour
    (same answer probability): the same answer class — human, machine or no answer."""
    a, b = small_days[small.default_policy], small_days[other]
    for fa, fb in zip(a.leads, b.leads, strict=True):
        np.testing.assert_array_equal(fa, fb)
    fa, fb = _attempt_facts(a), _attempt_facts(b)
    both = sorted(set(fa) & set(fb))
    assert len(both) >= 1000, len(both)
    ia = np.array([fa[k][0] for k in both])
    ib = np.array([fb[k][0] for k in both])
    oa = a.log.outcome[ia].astype(np.int64)
    ob = b.log.outcome[ib].astype(np.int64)
    oa = np.where(oa == ABANDONED, CONTACT, oa)  # agent availability is the policy's doing
    ob = np.where(ob == ABANDONED, CONTACT, ob)
    up = np.array([fa[k][4] and fb[k][4] for k in both])  # outage rejections aside

    invalid = int(Outcome.INVALID)
    np.testing.assert_array_equal((oa == invalid)[up], (ob == invalid)[up])
    answered = np.isin(oa, [CONTACT, MACHINE]) & np.isin(ob, [CONTACT, MACHINE])
    assert answered.sum() >= 100
    np.testing.assert_array_equal(a.log.ring_s[ia][answered], b.log.ring_s[ib][answered])
    talked = (a.log.outcome[ia] == CONTACT) & (b.log.outcome[ib] == CONTACT)
    assert talked.sum() >= 30
    np.testing.assert_allclose(
        (a.log.conn_s - a.log.wait_s)[ia][talked], (b.log.conn_s - b.log.wait_s)[ib][talked],
        rtol=1e-5,
    )

    same_carrier = np.array([fa[k][1] == fb[k][1] for k in both]) & up
    assert same_carrier.sum() >= 100
    for code in (int(Outcome.BUSY), CONGESTION):
        np.testing.assert_array_equal((oa == code)[same_carrier], (ob == code)[same_carrier])
    same_p = same_carrier & np.array([fa[k][2:4] == fb[k][2:4] for k in both])
    assert same_p.sum() >= 50
    np.testing.assert_array_equal(oa[same_p], ob[same_p])


def test_the_oldest_debts_are_dialled_first(small_day):
    rec = small_day
    # Promised callbacks due at the start go first; among the rest, the oldest debt.
    fresh = rec.leads.callback_s[rec.log.lead] < 0
    order = np.argsort(rec.log.t_start, kind="stable")
    first = order[fresh[order]][:100]
    dpd = rec.leads.days_past_due[rec.log.lead[first]]
    assert (dpd == rec.leads.days_past_due.max()).all(), np.unique(dpd)


# ------------------------------------------------------------------ incidents


def test_an_outage_turns_every_attempt_on_the_carrier_into_congestion(small_days, small):
    inc = next(i for i in small.truth.incidents if i.kind == "outage")
    op = small.operation
    c = op.carrier_index(inc.carrier)
    for name, rec in small_days.items():
        log = rec.log
        t0 = rec.clock.at(inc.at)
        t1 = t0 + 60.0 * inc.duration_min
        during = (log.carrier == c) & (log.t_start >= t0) & (log.t_start < t1)
        if not during.any():
            continue  # this policy's routing never uses the carrier
        assert (log.outcome[during] == CONGESTION).all(), name
        assert (log.ring_s[during] == 0).all(), name  # rejected at once by the trunk
        after = (log.carrier == c) & (log.t_start >= t1)
        assert (log.outcome[after] != CONGESTION).mean() > 0.8, name
    # The default policy does keep routing to it (it does not know of the outage).
    base = small_days[small.default_policy].log
    t0 = small_days[small.default_policy].clock.at(inc.at)
    assert ((base.carrier == c) & (base.t_start >= t0) & (base.t_start < t0 + 1200)).sum() > 20


def _without_incident(scenario, kind):
    truth = scenario.truth.model_copy(
        update={"incidents": tuple(i for i in scenario.truth.incidents if i.kind != kind)}
    )
    return scenario.model_copy(update={"truth": truth})


def test_an_answer_rate_drop_halves_the_carrier_human_answers_after_it_starts(small):
    """Paired runs on the same seeds, with and without the incident: on the carrier,
    the share of attempts a human answers after the incident time is about halved."""
    inc = next(i for i in small.truth.incidents if i.kind == "answer_rate")
    c = small.operation.carrier_index(inc.carrier)
    control = _without_incident(small, "answer_rate")
    counts = np.zeros((2, 2))  # [with, without] × [human answers, attempts]
    for seed in range(4):
        for row, sc in enumerate((small, control)):
            rec = simulate(sc, "ratio", seed=seed)
            log = rec.log
            after = (log.carrier == c) & (log.t_start >= rec.clock.at(inc.at))
            counts[row] += [np.isin(log.outcome[after], [CONTACT, ABANDONED]).sum(), after.sum()]
    (h1, n1), (h0, n0) = counts
    ratio = (h1 / n1) / (h0 / n0)
    se = np.sqrt(1 / h1 - 1 / n1 + 1 / h0 - 1 / n0)  # of log(ratio), delta method
    z = stats.norm.ppf(0.9995)
    lo, hi = ratio * np.exp(-z * se), ratio * np.exp(z * se)
    assert lo <= inc.factor <= hi, (ratio, lo, hi)
    assert hi < 0.8, (ratio, lo, hi)


def test_the_day_is_identical_until_an_incident_starts(small):
    inc = next(i for i in small.truth.incidents if i.kind == "answer_rate")
    a = simulate(small, "ratio")
    b = simulate(_without_incident(small, "answer_rate"), "ratio")
    t0 = a.clock.at(inc.at)
    done_a = kpis.attempt_end_s(a.log) < t0
    done_b = kpis.attempt_end_s(b.log) < t0
    assert done_a.sum() == done_b.sum() > 1000
    for x, y in zip(a.log, b.log, strict=True):
        np.testing.assert_array_equal(x[done_a], y[done_b])


def test_half_the_agents_logging_off_shows_in_the_floor_samples(small_day, small):
    inc = next(i for i in small.truth.incidents if i.kind == "agents_logoff")
    rec = small_day
    m0 = int(rec.clock.at(inc.at) // 60)
    m_end = int(rec.clock.end_s // 60)
    logged = rec.floor.samples[:, kernel.S_LOGGED]
    full = small.operation.campaign(small.campaign).agents.slots[0].agents
    half = round(full * (1 - inc.fraction))
    assert (logged[:m0] == full).all()
    # Idle agents leave at once, agents on a call when they finish it.
    assert (logged[m0:m_end] >= half).all() and (logged[m0:m_end] < full).all()
    assert np.all(np.diff(logged[m0:m_end]) <= 0)
    assert logged[m_end - 1] == half
    assert (rec.world.agents_sched[m0:m_end] == half).all()
    # The floor makes fewer contacts per minute afterwards.
    log = rec.log
    contact_t = answer_time(log)[log.outcome == CONTACT]
    before = ((contact_t >= 60 * (m0 - 60)) & (contact_t < 60 * m0)).sum() / 60
    after = ((contact_t >= 60 * (m0 + 5)) & (contact_t < 60 * m_end)).sum() / (m_end - m0 - 5)
    assert after < 0.75 * before


# ------------------------------------------------------------------ calling windows


def test_a_region_gets_no_attempts_while_its_local_window_is_closed(small):
    """A shift from 08:00 to 21:30 Mexico City time, on debtors in Baja California
    (Tijuana, UTC-8) and Quintana Roo (Cancún, UTC-5), called 07:00–22:00 local:
    Tijuana opens at 09:00 campaign time, Cancún closes at 21:00 campaign time."""
    sc = with_campaign(small, agents=flat_schedule(small, 20, dt.time(8, 0), dt.time(21, 30)))
    portfolio = small.portfolio.model_copy(
        update={"leads": 30_000, "region_weights": {"BCN": 1.0, "ROO": 1.0}}
    )
    truth = small.truth.model_copy(update={"incidents": ()})
    sc = sc.model_copy(update={"portfolio": portfolio, "truth": truth})
    rec = simulate(sc, "ratio")
    op, log = sc.operation, rec.log
    region = rec.leads.region[log.lead]
    t = log.t_start
    bcn, roo = (region == op.region_index(r) for r in ("BCN", "ROO"))
    nine, nine_pm = rec.clock.at(dt.time(9, 0)), rec.clock.at(dt.time(21, 0))
    assert nine == 3600.0 and nine_pm == 13 * 3600.0
    # Closed → nothing; open, with leads waiting → dialled.
    assert (bcn & (t < nine)).sum() == 0 and (roo & (t < nine)).sum() > 500
    assert (roo & (t >= nine_pm)).sum() == 0 and (bcn & (t >= nine_pm)).sum() > 500
    assert (roo & (t >= nine_pm - 1800) & (t < nine_pm)).sum() > 100  # ROO had leads till 21:00
    assert kpis.violations(rec)["outside_calling_hours"] == 0


class _Recorder:
    """A controller that only listens: which rows each epoch reports decided and finished."""

    epoch_s = 60.0

    def __init__(self) -> None:
        self.decided: dict[int, tuple[int, int]] = {}  # row -> (epoch, outcome as reported)
        self.finished: dict[int, int] = {}  # row -> epoch
        self.epoch = 0

    def on_epoch(self, now_s, finished, log, n_launched, dialer, decided=None) -> None:
        self.epoch += 1
        for row in decided:
            assert int(row) not in self.decided, "a row reported decided twice"
            self.decided[int(row)] = (self.epoch, int(log.outcome[row]))
        for row in finished:
            self.finished[int(row)] = self.epoch

    def close(self, now_s) -> None:
        pass


def test_answers_reach_the_controller_before_the_hang_up(small):
    rec = simulate(small, "baseline", controller=(spy := _Recorder()))
    n = len(rec.log.outcome)
    assert sorted(spy.decided) == list(range(n)) == sorted(spy.finished)
    final = rec.log.outcome.astype(np.int64)
    early = 0
    for row, (epoch, told) in spy.decided.items():
        assert epoch <= spy.finished[row]
        if told == kernel.UP_HUMAN:  # a human on the line: a contact, or abandoned waiting
            assert final[row] in (int(Outcome.CONTACT), int(Outcome.ABANDONED))
        elif told == kernel.UP_MACHINE:
            assert final[row] == int(Outcome.MACHINE)
        else:  # over within the epoch that decided it (no answer, busy, a short call…)
            assert told == final[row] and spy.finished[row] == epoch
        early += epoch < spy.finished[row]
    # Talk takes minutes: most contacts are known epochs before they end.
    assert early > 0.5 * (final == int(Outcome.CONTACT)).sum()
