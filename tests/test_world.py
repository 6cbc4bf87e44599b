"""The world's per-minute tables, built on arrays, agree minute by minute with the
tz database and the schema's own rules (calling hours, staffing), across DST changes;
the kernel's struct twins write through to the world's arrays; the portfolio follows
the scenario's mixes, stored by region then oldest debt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from configs.schema import AgentSchedule, AgentSlot, CallingWindow, within_calling_hours
from sim import world
from sim.world import Clock


def clock_at(local_start: dt.datetime, minutes: int) -> Clock:
    tz = local_start.tzinfo
    return Clock(local_start.astimezone(dt.UTC), 60.0 * minutes, minutes, tz)


def minute_by_minute(clock: Clock, tz, minutes: int) -> list[dt.datetime]:
    """The naive twin: ask the tz database for every minute."""
    return [(clock.start_utc + dt.timedelta(minutes=i)).astimezone(tz) for i in range(minutes)]


DST_DAYS = [
    # (zone, local midnight before a change): spring forward, fall back, and a quiet day
    ("America/Tijuana", dt.datetime(2026, 3, 8)),
    ("America/Tijuana", dt.datetime(2026, 11, 1)),
    ("America/Matamoros", dt.datetime(2026, 3, 8)),
    ("Europe/London", dt.datetime(2026, 3, 29)),
    ("Australia/Lord_Howe", dt.datetime(2026, 4, 5)),  # a 30-minute change
    ("America/Mexico_City", dt.datetime(2026, 4, 5)),  # no DST since 2022
]


@pytest.mark.parametrize(("zone", "midnight"), DST_DAYS)
def test_local_minutes_match_the_tz_database_across_dst_changes(zone, midnight):
    minutes = 36 * 60 + 7
    # Start off the hour, so the hourly probes straddle the change and bisect to it.
    start = midnight.replace(tzinfo=ZoneInfo(zone)) - dt.timedelta(hours=5, minutes=37)
    clock = clock_at(start.astimezone(ZoneInfo("America/Mexico_City")), minutes)
    weekday, tod_us = world._local_minutes(clock, ZoneInfo(zone), minutes)
    want = minute_by_minute(clock, ZoneInfo(zone), minutes)
    assert weekday.tolist() == [t.weekday() for t in want]
    assert tod_us.tolist() == [world._time_us(t.time()) for t in want]


@pytest.mark.parametrize(("zone", "midnight"), DST_DAYS)
def test_calling_hours_and_staffing_on_arrays_match_the_schema(zone, midnight):
    tz = ZoneInfo(zone)
    minutes = 30 * 60
    clock = clock_at(midnight.replace(tzinfo=tz), minutes)
    windows = (
        CallingWindow(days=("mon", "tue", "wed", "thu", "fri", "sat"), start=dt.time(1, 30),
                      end=dt.time(22, 0)),
        CallingWindow(days=("sun",), start=dt.time(2, 15), end=dt.time(17, 0)),
    )
    sched = AgentSchedule(timezone=zone, end=dt.time(23, 0), slots=(
        AgentSlot(start=dt.time(1, 0), agents=5), AgentSlot(start=dt.time(2, 30), agents=9),
        AgentSlot(start=dt.time(12, 0), agents=3),
    ))
    weekday, tod_us = world._local_minutes(clock, tz, minutes)
    local = minute_by_minute(clock, tz, minutes)
    assert world._within_calling_hours(windows, weekday, tod_us).tolist() == [
        within_calling_hours(windows, t) for t in local
    ]
    assert world._agents_at(sched, tod_us).tolist() == [sched.agents_at(t.time()) for t in local]


def _small_floor_twins(small, agent_state, since_s: float):
    """The small day's world, dialer and a 3-agent floor (every agent in `agent_state`
    since `since_s`), and their StructRef twins."""
    from dialer.state import new_dialer
    from sim import kernel
    from sim.portfolio import generate
    from sim.structs import as_structs

    op = small.operation
    clock = world.clock_for(small)
    leads = generate(small, small.seed)
    w = world.build_world(small, leads, small.seed, clock)
    d = new_dialer(op, op.campaign(small.campaign), small.policies[small.default_policy], leads)
    f = kernel.new_floor(3, len(op.carriers), 8, clock.n_minutes, w.cps)
    f.agent_state[:] = agent_state
    f.agent_since[:] = since_s
    return f, as_structs(w, d, f, kernel.new_log(8))


def test_struct_twins_write_through_to_the_namedtuples_arrays(small):
    from sim import kernel

    f, twins = _small_floor_twins(small, kernel.A_IDLE, 10.0)
    kernel.close_books(twins[2], 25.0)  # closes each agent's idle spell through the twin
    assert f.agent_idle_s.tolist() == [15.0, 15.0, 15.0]
    assert f.agent_since.tolist() == [25.0, 25.0, 25.0]


def test_a_borrowed_twin_reads_and_writes_the_same_arrays_as_its_structref(small):
    from numba import njit

    from sim import kernel
    from sim.borrowed import borrow

    @njit
    def close_borrowed(floor, now):
        f = borrow(floor)
        kernel.close_books(f, now)
        return f.agent_since.shape[0], f.counters[kernel.K_FREE_CALLS]

    f, twins = _small_floor_twins(small, kernel.A_WRAP, 4.0)
    assert close_borrowed(twins[2], 10.0) == (3, 8)
    assert f.agent_wrap_s.tolist() == [6.0, 6.0, 6.0]
    assert f.agent_since.tolist() == [10.0, 10.0, 10.0]


def test_portfolio_follows_the_scenario_mixes_stored_by_region_then_oldest_debt():
    import numpy as np

    from configs import load_scenario
    from sim.portfolio import generate

    mx = load_scenario(Path(__file__).parents[1] / "configs" / "scenarios" / "mx-collections.yaml")
    pf, op = mx.portfolio, mx.operation
    leads = generate(mx, 7)
    n = pf.leads
    assert all(a.shape == (n,) for a in leads)
    again = generate(mx, 7)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(leads, again, strict=True))
    assert leads.product.tobytes() != generate(mx, 8).product.tobytes()

    # Storage order: region ascending, then days past due descending.
    key = leads.region.astype(np.int64) * 1000 - leads.days_past_due
    assert (np.diff(key) >= 0).all()

    def close(counts, mix: dict, index) -> None:
        p = np.zeros(counts.size)
        for name, w in mix.items():
            p[index(name)] = w
        p /= p.sum()
        # Each share within 5 binomial standard errors of its probability.
        assert np.all(np.abs(counts / n - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)

    close(np.bincount(leads.region, minlength=len(op.regions)), pf.region_weights,
          op.region_index)
    close(np.bincount(leads.product, minlength=len(op.products)), pf.product_mix,
          op.product_index)
    close(np.bincount(leads.network, minlength=len(op.networks)), pf.network_mix,
          op.network_index)
    days = range(1, pf.days_past_due_max + 1)
    close(np.bincount(leads.days_past_due, minlength=len(days) + 1)[1:],
          {d: 1.0 for d in days}, lambda d: d - 1)
    assert set(np.unique(leads.attempts_7d)) == set(range(pf.prior_attempts_7d_max + 1))
    sd = np.sqrt(0.5 / n)  # gamma(2, 0.5): mean 1, variance 0.5
    assert abs(leads.propensity.mean() - 1.0) < 5 * sd
    assert abs(leads.propensity.var() - 0.5) < 0.02
    assert abs(np.median(leads.balance_mxn) / 8000.0 - 1) < 0.02  # lognormal, median 8000
    for facts, p in ((leads.dnc, pf.dnc_fraction), (leads.invalid, pf.invalid_fraction),
                     (leads.callback_s >= 0, pf.callback_fraction)):
        assert abs(facts.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
