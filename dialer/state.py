"""The dialer's decision state in arrays, built from the configuration.

One `Dialer` tuple holds what pacing, hopper and routing remember between
decisions. The simulator and the live engine build it the same way, here.
"""

from collections import namedtuple

import numpy as np

from dialer import hopper, pacing, routing
from smartdial.outcomes import N_OUTCOMES

Dialer = namedtuple(
    "Dialer",
    "kinds pace_params pace_memory obs rules "  # kinds = [pacing, routing, leads]
    "q_head q_tail q_size nxt n_groups group group_region enq_t ready_at state "
    "attempts_day attempts_7d "
    "enabled coverage weights credit rr cost_order channels channels_used cps cps_window",
)


def coverage_matrix(operation) -> np.ndarray:
    """coverage[c, r, n]: carrier c can terminate calls to network n in region r."""
    cov = np.zeros((len(operation.carriers), len(operation.regions), len(operation.networks)), bool)
    for c, carrier in enumerate(operation.carriers):
        for r, region in enumerate(operation.regions):
            for n, network in enumerate(operation.networks):
                cov[c, r, n] = carrier.coverage.covers(region.code, network.name)
    return cov


def static_shares(operation) -> np.ndarray:
    """The fallback shares of the config: proportional to channels, clipped to contracts.

    Used by the static routing baseline and by a dialer whose allocation went stale.
    """
    carriers = operation.carriers
    on = np.array([c.enabled for c in carriers], float)
    share = np.array([c.channels for c in carriers], float) * on
    lo = np.array([c.min_share for c in carriers]) * on
    hi = np.array([c.max_share for c in carriers]) * on
    share /= share.sum()
    for _ in range(50):  # a few rounds of clip-and-renormalise settle it
        share = np.clip(share, lo, hi)
        share /= share.sum()
    return share


def cost_order(operation) -> np.ndarray:
    """Carriers cheapest first: per-minute rate plus the per-attempt charge."""
    key = [c.cost_per_minute_mxn + c.cost_per_attempt_mxn for c in operation.carriers]
    return np.argsort(np.array(key), kind="stable").astype(np.int64)


def new_dialer(operation, campaign, policy, leads) -> Dialer:
    """Decision state for one campaign.

    `leads` carries the portfolio's facts: region, product, network, days_past_due,
    attempts_7d (prior attempts in the last 7 days) and dnc (bool).
    """
    n_regions, n_products = len(operation.regions), len(operation.products)
    n_carriers = len(operation.carriers)
    rules = hopper.rules_from(campaign.retry)
    params = pacing.params_from(campaign.dialer, campaign.abandon_target)

    # Ready queues: one per region (the calling window opens and closes them
    # whole), then one retry queue per outcome.
    n = leads.region.shape[0]
    group = leads.region.astype(np.int32)
    n_groups = n_regions
    n_queues = n_groups + N_OUTCOMES
    q_head = np.full(n_queues, -1, np.int64)
    q_tail = np.full(n_queues, -1, np.int64)
    q_size = np.zeros(n_queues, np.int64)
    nxt = np.full(n, -1, np.int64)
    state = np.full(n, hopper.QUEUED, np.int8)
    attempts_7d = leads.attempts_7d.astype(np.int16)
    barred = leads.dnc | (attempts_7d >= rules[hopper.R_MAX_7D])
    state[barred] = hopper.DONE
    # Oldest first: fresh leads by days past due, the oldest debt first.
    enq_t = -leads.days_past_due.astype(np.float64)
    order = np.lexsort((enq_t, group))  # by region, then most days past due
    order = order[~barred[order]]
    if order.size:
        g = group[order]
        same = g[1:] == g[:-1]
        nxt[order[:-1][same]] = order[1:][same]
        starts = np.r_[True, ~same]
        ends = np.r_[~same, True]
        q_head[g[starts]] = order[starts]
        q_tail[g[ends]] = order[ends]
        q_size[:n_groups] = np.bincount(g, minlength=n_groups)

    cps = np.array([c.cps for c in operation.carriers], float)
    n_lines = n_products  # SEGMENTED routing keeps shares per product × destination network
    if routing.KINDS[policy.routing] == routing.SEGMENTED:
        n_lines = n_products * len(operation.networks)
    weights = np.broadcast_to(static_shares(operation), (n_regions, n_lines, n_carriers)).copy()
    return Dialer(
        kinds=np.array(
            [
                pacing.KINDS[policy.pacing],
                routing.KINDS[policy.routing],
                hopper.KINDS[policy.leads],
            ],
            np.int64,
        ),
        pace_params=params,
        pace_memory=pacing.new_memory(params),
        obs=np.zeros(pacing.N_OBS),
        rules=rules,
        q_head=q_head,
        q_tail=q_tail,
        q_size=q_size,
        nxt=nxt,
        n_groups=n_groups,
        group=group,
        group_region=np.arange(n_regions, dtype=np.int64),
        enq_t=enq_t,
        ready_at=np.zeros(n, np.float64),
        state=state,
        attempts_day=np.zeros(n, np.int16),
        attempts_7d=attempts_7d,
        enabled=np.array([c.enabled for c in operation.carriers], bool),
        coverage=coverage_matrix(operation),
        weights=weights,
        credit=np.zeros_like(weights),
        rr=np.zeros(1, np.int64),
        cost_order=cost_order(operation),
        channels=np.array([c.channels for c in operation.carriers], np.int64),
        channels_used=np.zeros(n_carriers, np.int64),
        cps=cps,
        cps_window=routing.new_cps_window(cps),
    )
