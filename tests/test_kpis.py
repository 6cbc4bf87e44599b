"""KPIs of a simulated day: telecom billing by increments, abandonment counting,
and the breakdowns per carrier and per hour adding up to the day."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from sim import kpis
from smartdial.outcomes import Outcome

CONTACT, ABANDONED = int(Outcome.CONTACT), int(Outcome.ABANDONED)


def _cost(op, carrier: str, conn_s: float) -> float:
    c = op.carrier_index(carrier)
    return float(kpis.billed_cost_mxn(np.array([conn_s]), np.array([c]), op)[0])


@pytest.mark.parametrize(
    ("carrier", "conn_s", "billed_s", "per_attempt"),
    [
        # tier1-mx bills 30/6 at 0.22 MXN/min: 30 s minimum, then 6-s steps.
        ("tier1-mx", 0.0, 0, 0.0),
        ("tier1-mx", 1.0, 30, 0.0),
        ("tier1-mx", 30.0, 30, 0.0),
        ("tier1-mx", 30.2, 36, 0.0),
        ("tier1-mx", 36.0, 36, 0.0),
        ("tier1-mx", 95.0, 96, 0.0),
        # midtier-a bills 60/60 at 0.14: every started minute.
        ("midtier-a", 0.5, 60, 0.0),
        ("midtier-a", 60.0, 60, 0.0),
        ("midtier-a", 61.0, 120, 0.0),
        # telcel-direct bills 1/1 at 0.32: per started second.
        ("telcel-direct", 0.4, 1, 0.0),
        ("telcel-direct", 61.2, 62, 0.0),
        # Setup fees are charged whether or not the call connected.
        ("lcr-grey", 0.0, 0, 0.02),
        ("lcr-grey", 3.5, 60, 0.02),
        ("regional-norte", 10.5, 11, 0.03),
        ("midtier-b", 31.0, 36, 0.01),
    ],
)
def test_billing_rounds_connected_time_up_to_the_carrier_increments(
    small, carrier, conn_s, billed_s, per_attempt
):
    op = small.operation
    rate = op.carrier(carrier).cost_per_minute_mxn
    expected = billed_s / 60.0 * rate + per_attempt
    assert _cost(op, carrier, conn_s) == pytest.approx(expected, abs=1e-12)
    assert _cost(op, carrier, conn_s) == pytest.approx(op.carrier(carrier).call_cost_mxn(conn_s))


def test_billing_of_a_day_is_vectorised_per_attempt(small_day):
    rec, op = small_day, small_day.scenario.operation
    log = rec.log
    cost = kpis.billed_cost_mxn(log.conn_s, log.carrier, op)
    pick = np.linspace(0, log.conn_s.size - 1, 200).astype(int)
    for i in pick:
        carrier = op.carriers[int(log.carrier[i])]
        assert cost[i] == pytest.approx(carrier.call_cost_mxn(float(log.conn_s[i])), rel=1e-9)
    assert kpis.compute(rec)["cost"] == pytest.approx(cost.sum())


def test_a_human_connected_after_the_abandon_window_counts_as_abandoned(small_day):
    rec = small_day
    k0 = kpis.compute(rec)
    after_s = rec.scenario.operation.campaign(rec.scenario.campaign).abandon_after_s
    contacts = np.flatnonzero(rec.log.outcome == CONTACT)
    wait = rec.log.wait_s.copy()
    wait[contacts[:3]] = after_s + 0.5  # put through too late: abandoned by the rule
    wait[contacts[3]] = after_s  # exactly at the limit: still in time
    late = dataclasses.replace(rec, log=rec.log._replace(wait_s=wait))
    k1 = kpis.compute(late)
    assert k1["abandoned"] == k0["abandoned"] + 3
    assert k1["contacts"] == k0["contacts"]  # the agent still talked to them
    assert k1["abandon_rate"] == pytest.approx(k1["abandoned"] / k1["human_answered"])
    assert k0["abandoned"] == k0["outcomes"]["abandoned"] + int(
        ((rec.log.outcome == CONTACT) & (rec.log.wait_s > after_s)).sum()
    )


def test_per_carrier_shares_sum_to_one_and_counts_to_the_day(small_days):
    for name, rec in small_days.items():
        k = kpis.compute(rec)
        per = k["per_carrier"]
        assert sum(c["share"] for c in per.values()) == pytest.approx(1.0), name
        assert sum(c["attempts"] for c in per.values()) == k["attempts"], name
        assert sum(c["contacts"] for c in per.values()) == k["contacts"], name
        assert sum(c["cost"] for c in per.values()) == pytest.approx(k["cost"]), name
        assert set(per) == {c.name for c in rec.scenario.operation.carriers}, name


def test_per_hour_attempts_and_contacts_sum_to_the_day(small_days):
    for name, rec in small_days.items():
        k = kpis.compute(rec)
        hours = k["per_hour"]
        assert list(hours) == ["09", "10", "11", "12"], name  # 09:00–13:00 campaign time
        assert sum(h["attempts"] for h in hours.values()) == k["attempts"], name
        assert sum(h["contacts"] for h in hours.values()) == k["contacts"], name
        assert sum(h["cost"] for h in hours.values()) == pytest.approx(k["cost"]), name
        per_carrier = np.sum([h["per_carrier_attempts"] for h in hours.values()], axis=0)
        assert per_carrier.tolist() == [c["attempts"] for c in k["per_carrier"].values()], name


def test_rolling_abandonment_never_exceeds_one_and_ends_at_the_day_rate(small_day):
    k = kpis.compute(small_day)
    assert 0.0 <= k["abandon_rate"] <= k["abandon_rate_24h_max"] <= 1.0


def test_route_factors_are_the_worlds_route_quality_and_the_best_route_bounds_them(small_days):
    rec = small_days["baseline"]
    sc, log = rec.scenario, rec.log
    op, truth = sc.operation, sc.truth
    taken, best = kpis.route_factors(rec)
    halved, outage = rec.clock.at(dt.time(11)), rec.clock.at(dt.time(10))
    for i in np.linspace(0, len(taken) - 1, 300).astype(int):
        car = op.carriers[int(log.carrier[i])]
        net = op.networks[int(rec.leads.network[log.lead[i]])]
        t = float(log.t_start[i]) // 60 * 60  # the world's factors hold per minute
        expect = truth.quality(car.name, net.name) * (1.0 - truth.failure_rate(car.name))
        expect *= 0.5 if car.name == "tier1-mx" and t >= halved else 1.0
        expect *= 0.0 if car.name == "midtier-a" and outage <= t < outage + 1200 else 1.0
        assert taken[i] == pytest.approx(expect)
    assert (taken <= best).all()
    k = {name: kpis.compute(small_days[name]) for name in ("baseline", "cheapest", "oracle")}
    factor = {name: kpi["route_factor"] for name, kpi in k.items()}
    assert factor["oracle"] > factor["baseline"] > factor["cheapest"]
    assert factor["oracle"] <= k["oracle"]["route_factor_best"]


def _drift_day(share_a_after: float, mix_a_after: float, back_at_min: int = 60):
    """60 min of 200 attempts a minute over two regions: before minute 30, 60 % of the
    attempts are region 0's and carrier 1 takes half of region 0 (none of region 1); from
    minute 30 region 0's share of the attempts and carrier 1's share of region 0 change,
    and from `back_at_min` carrier 1 takes half of region 0 again."""
    from types import SimpleNamespace

    from sim.kernel import Log
    from sim.portfolio import Leads

    rng = np.random.default_rng(0)
    t = np.repeat(np.arange(60) * 60.0, 200) + 30.0
    after = t >= 30 * 60
    region = (rng.random(t.size) >= np.where(after, mix_a_after, 0.6)).astype(np.int64)
    share_a = np.where(after & (t < back_at_min * 60), share_a_after, 0.5)
    on_1 = (region == 0) & (rng.random(t.size) < share_a)
    n = t.size
    zeros = np.zeros(n, np.int64)
    log = Log(lead=np.arange(n), carrier=on_1.astype(np.int64), attempt=zeros, t_start=t,
              ring_s=zeros, wait_s=zeros, conn_s=zeros, outcome=zeros, agent=zeros)
    leads = Leads(region=region, product=zeros, network=zeros, **{
        f: zeros for f in Leads._fields if f not in ("region", "product", "network")})
    return SimpleNamespace(log=log, leads=leads, clock=SimpleNamespace(end_s=3600.0))


def test_drift_response_tells_the_routing_from_the_mix_of_calls():
    # The calls move to the region the carrier does not serve: its raw share halves at
    # once, but the routing did not move, and the share on the half hour before's calls
    # stays where it was.
    mix = kpis.drift_response(_drift_day(share_a_after=0.5, mix_a_after=0.1), 1, 30)
    assert mix["before"] == pytest.approx(0.30, abs=0.02)
    assert mix["halved_after_min"] == 5.0
    assert np.isnan(mix["halved_after_min_same_mix"])
    assert mix["share_5_10_min_same_mix"] == pytest.approx(0.30, abs=0.04)
    assert mix["share_5_30_min_same_mix"] == pytest.approx(0.30, abs=0.02)
    assert mix["share_5_30_min"] == pytest.approx(0.05, abs=0.01)
    # The routing moves (from half of region 0 to a fifth), the mix does not: both read it.
    moved = kpis.drift_response(_drift_day(share_a_after=0.2, mix_a_after=0.6), 1, 30)
    assert moved["halved_after_min"] == moved["halved_after_min_same_mix"] == 5.0
    assert moved["share_5_10_min_same_mix"] == pytest.approx(0.12, abs=0.02)
    assert moved["share_5_30_min"] == pytest.approx(0.12, abs=0.01)
    # Recovered at minute 48, the recovery being minute 40: the first 5-min window at half
    # the former share or more is 44-48 (2 of its 5 minutes at the former share).
    back = kpis.drift_response(_drift_day(0.2, 0.6, back_at_min=48), 1, 30, 40)
    assert back["halved_after_min_same_mix"] == 5.0
    assert 8.0 <= back["back_after_min_same_mix"] <= 10.0
    assert 8.0 <= back["back_after_min"] <= 10.0
    # The share held after the incident is read up to the recovery (minutes 35-40 here).
    assert back["share_5_30_min_same_mix"] == pytest.approx(0.12, abs=0.03)
