"""Synthetic portfolios: the leads of a collections campaign, drawn from the seed.

Reproducible: the same scenario and seed give the same leads, byte for byte.
"""

import datetime as dt
from collections import namedtuple

import numpy as np

Leads = namedtuple(
    "Leads",
    "region product network days_past_due balance_mxn attempts_7d dnc invalid propensity "
    "callback_s",
)


def _weights(names_index, weights: dict[str, float], size: int) -> np.ndarray:
    """Probabilities by index (names_index maps a name to it), 0 where a name is absent."""
    p = np.zeros(size)
    for name, w in weights.items():
        p[names_index(name)] += w
    return p / p.sum()


def _categorical(rng, p: np.ndarray, n: int, dtype) -> np.ndarray:
    """n independent draws of an index with probabilities p (a few categories).

    Inverse CDF by comparisons: one uniform per draw and one pass per category,
    several times faster than Generator.choice for the handful of categories a
    mix has.
    """
    u = rng.random(n)
    out = np.zeros(n, dtype)
    for edge in np.cumsum(p)[:-1]:
        out += u >= edge
    return out


def generate(scenario, seed: int) -> Leads:
    """Leads for the scenario's campaign: facts the dialer sees plus a hidden propensity.

    Stored as a lead table is indexed: by region, then oldest debt first, the order
    in which a campaign first works through its book. The event loop then reads the
    per-lead arrays almost sequentially instead of at random (a day runs ~1.8× faster).
    Every fact is independent of the others and of the lead's place, so the leads
    are drawn in that order directly: how many fall in each (region, days past due)
    cell is one multinomial draw, and the other facts are drawn lead by lead in
    place. The same leads as drawing each independently and sorting them, in law.
    """
    op = scenario.operation
    pf = scenario.portfolio
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1EAD5]))
    n = pf.leads
    campaign = op.campaign(scenario.campaign)
    product_mix = {k: v for k, v in pf.product_mix.items() if k in campaign.products}
    region_weights = pf.region_weights or {r.code: 1.0 for r in op.regions}

    n_regions, max_dpd = len(op.regions), pf.days_past_due_max
    p_region = _weights(op.region_index, region_weights, n_regions)
    # Cells in storage order: region ascending, then days past due descending.
    per_cell = rng.multinomial(n, np.repeat(p_region / max_dpd, max_dpd))
    region = np.repeat(np.arange(n_regions, dtype=np.int16),
                       per_cell.reshape(n_regions, max_dpd).sum(axis=1))
    days_past_due = np.repeat(
        np.tile(np.arange(max_dpd, 0, -1, dtype=np.int16), n_regions), per_cell
    )
    leads = Leads(
        region=region,
        product=_categorical(
            rng, _weights(op.product_index, product_mix, len(op.products)), n, np.int8
        ),
        network=_categorical(
            rng, _weights(op.network_index, pf.network_mix, len(op.networks)), n, np.int8
        ),
        days_past_due=days_past_due,
        balance_mxn=np.exp(
            np.float32(np.log(8000.0)) + np.float32(0.9) * rng.standard_normal(n, np.float32)
        ),
        attempts_7d=rng.integers(0, pf.prior_attempts_7d_max + 1, n, dtype=np.int16),
        dnc=rng.random(n, np.float32) < pf.dnc_fraction,
        invalid=rng.random(n, np.float32) < pf.invalid_fraction,
        # Hidden: how reachable this debtor is, mean 1: gamma of shape 2 and scale 0.5,
        # the sum of two exponentials of mean 0.5.
        propensity=np.float32(0.5) * (
            rng.standard_exponential(n, np.float32) + rng.standard_exponential(n, np.float32)
        ),
        callback_s=np.full(n, -1.0),
    )
    # Promised callbacks, drawn last so the other facts do not depend on them:
    # a time (seconds from the first agent slot) in the first 90 % of the shift.
    sched = campaign.agents
    day = dt.date(2000, 1, 1)
    shift_s = (dt.datetime.combine(day, sched.end) - dt.datetime.combine(day, sched.start))
    promised = rng.random(n, np.float32) < pf.callback_fraction
    leads.callback_s[promised] = rng.uniform(0.0, 0.9 * shift_s.total_seconds(), promised.sum())
    return leads
