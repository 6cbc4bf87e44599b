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
    "enabled coverage weights credit rr cost_order channels channels_used cps cps_window "
    "contract launched "
    "ring_t0 cell n_ab group_dims contact_p contact_n value peak hop hop_params "
    "pick_key pick_tree",
)
"""Fields added for predictive pacing and the VALUE lead order:

ring_t0[slot]      launch time (s) of the call in this call slot while it rings, < 0 otherwise.
cell[lead]         the lead's (region, product, network) cell; its ready group is
                   cell × n_ab + min(attempts_7d, n_ab − 1).
group_dims         int64[4] = (R, P, N, A): the group index is ((r·P + p)·N + n)·A + a,
                   with p, n, a taken as 0 where the dimension is 1. OLDEST uses
                   (regions, 1, 1, 1); VALUE uses (regions, products, networks, 4).
contact_p[g, h]    **the contact table**: P(a human answers | group g, local hour h 0..23),
                   i.e. contact_table(d)[region, product, network, attempt bucket, hour].
                   Initialised to a prior, updated in place by the hopper from every
                   outcome (running mean, weight 1 / (contact_n + prior_n)). The optimiser
                   may overwrite it between epochs with its contact model's predictions
                   (averaged over carriers): write IN PLACE (`contact_table(d)[...] = p`;
                   the simulator's StructRef shares this very array), then set contact_n
                   to 0 or to its own effective sample size, and hop[0] = -1 so the
                   later-peak scratch is refreshed. Only VALUE's table has the full shape;
                   OLDEST's is (regions, 1, 1, 1, 24) and its order never reads it.
contact_n[g, h]    attempts learned per cell of contact_p. Predictive pacing reads the cell of
                   the lead about to be dialled (hopper.p_next) once it has evidence.
value[lead]        value of a contact with this lead (MXN): the product's contact value.
peak[g], hop[0]    VALUE's scratch: best probability later today, the minute it is for.
hop_params         hopper.hop_params(): hold ratio, min supply, prior weight.
pick_key, pick_tree  one decision's picking scratch (hopper.start_picks, hopper.pick).
"""

N_ATTEMPT_BUCKETS = hopper.N_ATTEMPT_BUCKETS
PRIOR_CONTACT_P = 0.12  # a typical first-attempt human-answer rate of a collections floor
PRIOR_DECAY = 0.85  # per prior attempt


def contact_table(d: Dialer) -> np.ndarray:
    """contact_p as a (region, product, network, attempt bucket, hour) view (no copy)."""
    return d.contact_p.reshape(*(int(x) for x in d.group_dims), 24)


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


def _chain(q_head, q_tail, q_size, nxt, queue, leads) -> None:
    """Link `leads` into their empty queues `queue`, each queue in the leads' order.

    The same lists as enqueueing them one by one (`hopper.enqueue`), in NumPy:
    `queue` must be grouped (all of a queue's leads together).
    """
    if not leads.size:
        return
    first = np.flatnonzero(queue[1:] != queue[:-1]) + 1  # where each queue but the first starts
    last = np.append(first - 1, leads.size - 1)  # where each queue ends
    first = np.insert(first, 0, 0)
    succ = np.empty_like(leads)  # each lead's successor in its queue: the next one, or -1
    succ[:-1] = leads[1:]
    succ[last] = -1
    nxt[leads] = succ  # one scatter: masks and compressions cost several times more
    q_head[queue[first]] = leads[first]
    q_tail[queue[last]] = leads[last]
    q_size[queue[first]] += last - first + 1


def new_dialer(operation, campaign, policy, leads) -> Dialer:
    """Decision state for one campaign.

    `leads` carries the portfolio's facts: region, product, network, days_past_due,
    attempts_7d (prior attempts in the last 7 days) and dnc (bool).
    """
    n_regions, n_products = len(operation.regions), len(operation.products)
    n_carriers = len(operation.carriers)
    rules = hopper.rules_from(campaign.retry)
    params = pacing.params_from(
        campaign.dialer, campaign.abandon_target, campaign.abandon_after_s,
        campaign.ring_timeout_s,
    )

    # Ready queues: one per group (never straddling regions, so the calling
    # window opens and closes them whole), then one retry queue per outcome,
    # then one promised-callback queue per region.
    n = leads.region.shape[0]
    lead_kind = hopper.KINDS[policy.leads]
    if lead_kind == hopper.VALUE:
        n_networks = len(operation.networks)
        dims = np.array([n_regions, n_products, n_networks, N_ATTEMPT_BUCKETS], np.int64)
        cell = (
            (leads.region.astype(np.int64) * n_products + leads.product) * n_networks
            + leads.network
        ).astype(np.int32)
    else:
        dims = np.array([n_regions, 1, 1, 1], np.int64)
        cell = leads.region.astype(np.int32)
    n_ab = int(dims[3])
    n_groups = int(dims.prod())
    group = (cell.astype(np.int64) * n_ab + np.minimum(leads.attempts_7d, n_ab - 1)).astype(
        np.int32
    )
    group_region = np.arange(n_groups, dtype=np.int64) // (n_groups // n_regions)
    n_queues = n_groups + N_OUTCOMES + n_regions
    q_head = np.full(n_queues, -1, np.int64)
    q_tail = np.full(n_queues, -1, np.int64)
    q_size = np.zeros(n_queues, np.int64)
    nxt = np.full(n, -1, np.int64)
    state = np.full(n, hopper.QUEUED, np.int8)
    attempts_7d = leads.attempts_7d.astype(np.int16)
    barred = leads.dnc | (attempts_7d >= rules[hopper.R_MAX_7D])
    state[barred] = hopper.DONE
    callback_s = getattr(leads, "callback_s", None)
    callback_s = np.full(n, -1.0) if callback_s is None else np.asarray(callback_s, np.float64)
    promised = (callback_s >= 0) & ~barred
    state[promised] = hopper.CALLBACK_WAIT
    ready_at = np.where(promised, callback_s, 0.0)
    # Oldest first: fresh leads by days past due, the oldest debt first.
    enq_t = -leads.days_past_due.astype(np.float64)
    # By group, then most days past due; one stable sort on a packed int64 key
    # (days past due fit in 16 bits) gives lexsort's order several times faster,
    # and none is needed when the leads are stored in that order already (a
    # portfolio by region then oldest debt, under OLDEST's one group per region).
    order = np.flatnonzero(~(barred | promised))
    key = (group[order].astype(np.int64) << 16) - leads.days_past_due[order]
    if (key[1:] < key[:-1]).any():
        order = order[np.argsort(key, kind="stable")]
    _chain(q_head, q_tail, q_size, nxt, group[order].astype(np.int64), order)
    # Promised callbacks: per region, in callback-time order.
    cb = np.flatnonzero(promised)
    cb = cb[np.lexsort((callback_s[cb], leads.region[cb]))]
    _chain(q_head, q_tail, q_size, nxt, n_groups + N_OUTCOMES + leads.region[cb].astype(np.int64),
           cb)
    product_value = np.array([p.contact_value_mxn for p in operation.products], float)
    prior = PRIOR_CONTACT_P * PRIOR_DECAY ** (np.arange(n_groups) % n_ab)

    cps = np.array([c.cps for c in operation.carriers], float)
    n_lines = n_products  # SEGMENTED routing keeps shares per product × destination network
    if routing.KINDS[policy.routing] == routing.SEGMENTED:
        n_lines = n_products * len(operation.networks)
    weights = np.broadcast_to(static_shares(operation), (n_regions, n_lines, n_carriers)).copy()
    pick_key, pick_tree = hopper.new_picker(n_groups)
    # A disabled carrier owes no minimum share.
    contract, launched = routing.new_contracts(
        np.array([c.min_share if c.enabled else 0.0 for c in operation.carriers]),
        np.array([c.max_share for c in operation.carriers]),
    )
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
        group_region=group_region,
        enq_t=enq_t,
        ready_at=ready_at,
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
        contract=contract,
        launched=launched,
        ring_t0=np.full(int(sum(c.channels for c in operation.carriers)) + 16, -1.0),
        cell=cell,
        n_ab=n_ab,
        group_dims=dims,
        contact_p=np.repeat(prior[:, None], 24, axis=1),
        contact_n=np.zeros((n_groups, 24)),
        value=product_value[leads.product],
        peak=np.zeros(n_groups),
        hop=np.full(1, -1, np.int64),
        hop_params=hopper.hop_params(),
        pick_key=pick_key,
        pick_tree=pick_tree,
    )
