"""The daily telecom budget: what an attempt costs, the price that keeps the plan within what
is left, and a simulated day that spends what it was given."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from configs import load_scenario
from configs.scenario import PolicySpec
from optimizer.allocate import plan_day
from optimizer.budget import DailyBudget, attempt_cost_mxn, projected_cost_mxn
from optimizer.history import OutcomeBatch
from sim import kpis
from sim.run import simulate
from smartdial.outcomes import Outcome
from tests.test_allocate import tiny
from tests.test_policy_optimizer import SMALL


def solve(d):
    return plan_day(d, time_limit_s=30)


def two_routes(**kw):
    """Ten products worth 15, 25 … 105 MXN a contact, 10 attempts each (what pacing will
    dial), over a dear route that answers twice as often (0.2 human contacts, 1.5 MXN an
    attempt) and a cheap one (0.1, 0.5 MXN): product p is worth the dear route up to a price of
    0.1·value per telecom peso. All dear costs 150 MXN, all cheap 50."""
    n_c, n_p = 2, 10
    shape = (n_c, 1, n_p, 1)
    return tiny(
        n_p=n_p,
        p_human=np.broadcast_to(np.array([0.2, 0.1])[:, None, None, None], shape),
        cost_per_attempt_mxn=np.broadcast_to(np.array([1.5, 0.5])[:, None, None, None], shape),
        value_mxn=10.0 * np.arange(1, n_p + 1) + 5.0,
        supply=np.full((1, n_p), 1000.0),
        supply_per_slot=np.full((1, n_p, 1), 10.0),
        cps=np.full(n_c, 10.0),  # 1000 attempts a slot each: capacity never binds
        **kw,
    )


def dear(result):
    return result.x[0, 0, :, 0]


def fit(budget, now_s=0.0):
    """Propose a plan for `budget` and put it in force, as the planner does once it checks."""
    priced = budget.fit(now_s, two_routes(), solve)
    budget.commit(priced)
    return priced.result, priced.data


def test_an_attempt_costs_its_connected_time_in_the_carriers_increments():
    op = load_scenario(SMALL).operation
    c = op.carrier_index("tier1-mx")  # 0.22 MXN/min, billed 30/6, no setup charge
    batch = OutcomeBatch(
        carrier=np.full(4, c), region=np.zeros(4), product=np.zeros(4), network=np.zeros(4),
        slot=np.zeros(4), attempt_bucket=np.zeros(4),
        outcome=np.array([Outcome.CONTACT, Outcome.MACHINE, Outcome.NO_ANSWER, Outcome.CONTACT]),
        t_s=np.zeros(4), ring_s=np.zeros(4), talk_s=np.array([61.0, np.nan, np.nan, np.nan]),
    )
    cost = attempt_cost_mxn(batch, op, machine_detect_s=3.5, abandon_after_s=2.0, talk_s=120.0)
    # 61 s bills 66 s; a machine the 30-s minimum; no answer nothing; unknown talk 120 s.
    np.testing.assert_allclose(cost, np.array([66.0, 30.0, 0.0, 120.0]) / 60 * 0.22)


def test_weight_one_leaves_the_plan_alone_and_a_high_one_moves_traffic_without_dropping_it():
    free = solve(two_routes())
    np.testing.assert_allclose(dear(free), 10.0)  # every product pays for the dear route
    priced = solve(two_routes(cost_weight=6.0))  # its extra peso weighs 6 contact-pesos
    np.testing.assert_allclose(dear(priced), [0.0] * 5 + [10.0] * 5)
    assert priced.x.sum() == pytest.approx(100.0)  # the traffic is routed, never dropped
    cost = two_routes(cost_weight=6.0).priced_cost[:, 0, 0, 0]
    np.testing.assert_allclose(cost, [0.5 + 6.0, 0.5])


def test_a_budget_between_the_extremes_is_met_by_the_products_worth_least_going_cheap():
    budget = DailyBudget(100.0)
    result, data = fit(budget)
    assert 5.5 < budget.weight < 6.5
    assert not budget.over
    assert projected_cost_mxn(data, result).sum() == pytest.approx(100.0)
    np.testing.assert_allclose(dear(result), [0.0] * 5 + [10.0] * 5)


def test_the_price_fits_the_mean_over_draws_put_in_force_not_the_plan_it_came_from():
    """The price is fitted on the plan at the estimates; the mean over draws at that price is
    what runs. When the means cost more than their plans, the next fit aims the plan lower."""
    budget = DailyBudget(100.0)
    priced = budget.fit(0.0, two_routes(), solve)
    mean = dataclasses.replace(priced.result, x=priced.result.x.copy())
    mean.x[0] += mean.x[1]  # this mean sent every attempt the dear way: 150 MXN
    mean.x[1] = 0.0
    averaged = budget.averaged(priced, mean)
    assert averaged.result is mean and averaged.cost == pytest.approx(150.0)
    assert not averaged.fits and budget.draw_ratio == 1.0  # nothing moves before the commit
    budget.commit(averaged)
    assert budget.projected_mxn == pytest.approx(150.0)  # what is in force is what projects
    assert budget.draw_ratio == pytest.approx(0.5 * 1.0 + 0.5 * 1.5)
    again = budget.fit(0.0, two_routes(), solve)
    # 1.25 × the plan's own 80 MXN (3 products dear) is what the mean is expected to cost.
    assert projected_cost_mxn(again.data, again.result).sum() == pytest.approx(80.0)
    assert again.cost == pytest.approx(100.0) and again.fits


def test_when_agents_bound_the_floor_the_price_is_per_contact_not_per_attempt():
    """Route 0 answers 0.3 at 0.9 MXN an attempt (3 MXN a contact), route 1 answers 0.1 at
    0.4 (4 MXN a contact). Ten contacts fill the agents; pacing dials until they are made, so
    the cheaper attempt is the dearer contact and a budget must not buy it."""
    shape = (2, 1, 1, 1)
    data = tiny(
        p_human=np.broadcast_to(np.array([0.3, 0.1])[:, None, None, None], shape),
        cost_per_attempt_mxn=np.broadcast_to(np.array([0.9, 0.4])[:, None, None, None], shape),
        agents=np.array([10.0]), supply=np.array([[1000.0]]),  # 1000 s of agent time
    )
    for weight in (1.0, 50.0):
        result = solve(data.replace(cost_weight=weight))
        assert result.x[:, 0, 0, 0] == pytest.approx([100.0 / 3, 0.0])  # 10 contacts, route 0
    # With pacing's volume fixed instead, the cheaper attempt is the cheaper choice.
    fixed = data.replace(supply_per_slot=np.array([[[100.0]]]), cost_weight=50.0)
    np.testing.assert_allclose(fixed.priced_cost[:, 0, 0, 0], [0.4 + 50 * 0.5, 0.4])
    assert solve(fixed).x[:, 0, 0, 0] == pytest.approx([0.0, 100.0])
    np.testing.assert_allclose(data.replace(cost_weight=50.0).priced_cost[:, 0, 0, 0],
                               [0.9, 0.1 * 3.0 + 50 * (0.4 - 0.3)])


def test_a_budget_that_does_not_bind_costs_no_contacts():
    budget = DailyBudget(1000.0)
    result, _ = fit(budget)
    assert budget.weight == 1.0
    np.testing.assert_allclose(dear(result), 10.0)


def test_spending_counts_against_the_rest_of_the_day():
    budget = DailyBudget(200.0)
    budget.record(np.full(100, 1.0))  # 100 MXN already spent: 100 left
    result, data = fit(budget)
    assert budget.left_mxn == pytest.approx(100.0)
    assert projected_cost_mxn(data, result).sum() == pytest.approx(100.0)
    assert budget.projected_mxn == pytest.approx(200.0)


def test_the_projection_learns_how_far_off_the_plans_were():
    budget = DailyBudget(1000.0)
    fit(budget)  # the first plan: pacing's volume is still a guess
    budget.record(np.full(10, 1.0))
    fit(budget, 50.0)
    assert budget.calibration == 1.0
    # This one projects 150 MXN for the 100-s slot (all dear), but the slot costs 75.
    budget.record(np.full(75, 1.0))
    fit(budget, 150.0)
    assert budget.calibration == pytest.approx(0.5)
    assert budget.projected_mxn == pytest.approx(85.0 + 0.5 * 150.0)


def test_a_plan_proposed_but_not_put_in_force_changes_nothing():
    budget = DailyBudget(100.0)
    proposal = budget.fit(0.0, two_routes(), solve)
    assert 5.5 < proposal.weight < 6.5 and proposal.fits
    assert budget.weight == 1.0 and math.isnan(budget.projected_mxn) and budget.n_fits == 0


def test_spend_is_measured_against_the_plan_in_force_not_a_rejected_one():
    budget = DailyBudget(1000.0)
    fit(budget)  # the first plan
    fit(budget, 50.0)  # 150 MXN for [50, 150)
    budget.record(np.full(30, 1.0))
    twice = two_routes().replace(supply_per_slot=np.full((1, 10, 1), 20.0))
    assert budget.fit(100.0, twice, solve).per_slot.sum() == pytest.approx(300.0)  # rejected
    budget.record(np.full(45, 1.0))
    fit(budget, 150.0)
    assert budget.calibration == pytest.approx(0.5, rel=1e-3)  # 75 spent where 150 was planned


def test_a_budget_below_the_cheapest_routing_is_reported_and_routes_everything_cheap():
    budget = DailyBudget(30.0)
    result, _ = fit(budget)
    assert budget.over
    np.testing.assert_allclose(dear(result), 0.0)
    assert result.x.sum() == pytest.approx(100.0)


def test_a_budget_must_be_positive():
    with pytest.raises(ValueError, match="budget"):
        DailyBudget(0.0)
    with pytest.raises(ValueError, match="budget"):
        DailyBudget(math.nan)


@pytest.mark.slow
def test_a_budgeted_day_spends_about_its_budget_and_less_than_an_unbudgeted_one():
    """On 85 % of the unbudgeted day's spend. A 4-hour pilot day lands within a few per cent
    of its budget, either way, by seed (seeds 1-6: sd 3.2 %, at most 5.9 % over), so the
    mean over three seeds is held to 3 % and each day to 8 %; with no budget a day spends
    18 % over."""
    sc = load_scenario(SMALL)
    policy = PolicySpec(pacing="adaptive", routing="optimizer")
    ratios = []
    for seed in (1, 2, 3):
        free = kpis.compute(simulate(sc, policy, seed=seed))
        budget = 0.85 * free["cost"]
        kept = kpis.compute(simulate(sc, policy, seed=seed, budget_mxn=budget))
        ratios.append(kept["cost"] / budget)
        assert kept["cost"] == pytest.approx(budget, rel=0.08)
        assert kept["violations_total"] == 0
        # Cheaper routes answer less often, but the floor keeps dialling: the contacts stay close.
        assert kept["contacts"] > 0.9 * free["contacts"]
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.03)
