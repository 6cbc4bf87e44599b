"""Which lead next: the lead queues and the calling rules, pure Numba functions.

Leads wait in FIFO queues (linked lists over one `nxt` array, O(1) per move):
one ready queue per group (groups never straddle regions, so a region's
calling window opens or closes whole queues), one retry queue per outcome
class whose leads become ready after the class's minimum gap, and one
promised-callback queue per region, in callback-time order. A lead is in at
most one queue, so it can never be dialled twice at once.

Lead orders: OLDEST (one group per region; the longest-waiting head first) and
VALUE (one group per region × product × network × attempt bucket; all leads of
a group share one contact probability at a given local hour, so the best lead
is a group head and a pick costs O(groups), never a re-sort).
Rules enforced here: local calling hours, attempt caps per day and per rolling
7 days, minimum gap by outcome, do-not-call, stop after contact, callbacks at
their promised time (ahead of everything once due).
"""

import numpy as np
from numba import njit

from smartdial.outcomes import ABANDONED, Outcome

OLDEST, VALUE = 0, 1
KINDS = {"oldest": OLDEST, "value": VALUE}

# Lead states.
QUEUED, RETRY_WAIT, IN_FLIGHT, DONE, CALLBACK_WAIT = range(5)

N_RETRY = len(Outcome)  # retry queues follow the ready queues, then the callback queues
N_ATTEMPT_BUCKETS = 4  # VALUE groups by prior attempts 0, 1, 2, 3+
P_NEXT_MIN_N = 5.0  # attempts (or the contact model's sample size) before a cell's p counts

# Hopper parameters (VALUE order).
H_HOLD_RATIO, H_HOLD_MIN_SUPPLY, H_PRIOR_N = range(3)
N_HOP_PARAMS = 3

# Rules vector.
R_MAX_DAY, R_MAX_7D, R_STOP_AFTER_CONTACT = 0, 1, 2
R_GAP = 3  # R_GAP + outcome code = minimum gap after that outcome, seconds (inf = never again)
N_RULES = R_GAP + len(Outcome)


def rules_from(retry) -> np.ndarray:
    """Pack configs RetryRules into the rules vector."""
    r = np.zeros(N_RULES)
    r[R_MAX_DAY] = retry.max_attempts_per_day
    r[R_MAX_7D] = retry.max_attempts_per_7d
    r[R_STOP_AFTER_CONTACT] = 1.0 if retry.stop_after_contact else 0.0
    gaps = {
        Outcome.CONTACT: 0.0 if not retry.stop_after_contact else np.inf,
        Outcome.ABANDONED: retry.min_gap_after_abandoned_s,
        Outcome.MACHINE: retry.min_gap_after_machine_s,
        Outcome.BUSY: retry.min_gap_after_busy_s,
        Outcome.NO_ANSWER: retry.min_gap_after_no_answer_s,
        Outcome.CONGESTION: retry.min_gap_after_congestion_s,
        Outcome.INVALID: np.inf,  # an unallocated number is never retried
        Outcome.FAILED: retry.min_gap_after_congestion_s,
    }
    for o, g in gaps.items():
        r[R_GAP + int(o)] = g
    return r


@njit(cache=True, inline="always")
def enqueue(head, tail, size, nxt, q, lead):
    nxt[lead] = -1
    if size[q] == 0:
        head[q] = lead
    else:
        nxt[tail[q]] = lead
    tail[q] = lead
    size[q] += 1


@njit(cache=True, inline="always")
def dequeue(head, tail, size, nxt, q):
    lead = head[q]
    head[q] = nxt[lead]
    size[q] -= 1
    if size[q] == 0:
        tail[q] = -1
    return lead


@njit(cache=True, inline="always")
def push_front(head, tail, size, nxt, q, lead):
    """Put a lead back at the head of its queue (picked, but no carrier could take it)."""
    if size[q] == 0:
        tail[q] = lead
        nxt[lead] = -1
    else:
        nxt[lead] = head[q]
    head[q] = lead
    size[q] += 1


def hop_params(hold_ratio: float = 0.7, hold_min_supply: float = 200.0,
               prior_n: float = 30.0) -> np.ndarray:
    """VALUE order's parameters: hold a group whose contact probability now is below
    hold_ratio × its peak later today, while the groups not held have at least
    hold_min_supply ready leads; prior_n pseudo-attempts weigh the table's prior
    against the contacts learned."""
    h = np.zeros(N_HOP_PARAMS)
    h[H_HOLD_RATIO] = hold_ratio
    h[H_HOLD_MIN_SUPPLY] = hold_min_supply
    h[H_PRIOR_N] = prior_n
    return h


# release_due and after_attempt are inlined where they are called (once each in
# the simulator's loop): passing a dozen arrays cost more than their work.
@njit(cache=True, inline="always")
def release_due(head, tail, size, nxt, n_groups, group, ready_at, enq_t, state, now):
    """Move leads whose retry gap has passed into their group's ready queue.

    Retry queues are FIFO in ready time because a class's gap is constant and
    attempts end in time order, so only the heads need looking at.
    """
    for q in range(n_groups, n_groups + N_RETRY):
        while size[q] > 0 and ready_at[head[q]] <= now:
            lead = dequeue(head, tail, size, nxt, q)
            enq_t[lead] = ready_at[lead]
            state[lead] = QUEUED
            enqueue(head, tail, size, nxt, group[lead], lead)


@njit(cache=True)
def due_callback(head, size, n_groups, region_open, ready_at, minute, now):
    """The first region's queue holding a callback due now in an open region, or -1."""
    cb0 = n_groups + N_RETRY
    for r in range(region_open.shape[0]):
        q = cb0 + r
        if size[q] > 0 and ready_at[head[q]] <= now and region_open[r, minute]:
            return q
    return -1


@njit(cache=True)
def next_lead(
    kind, head, size, n_groups, group_region, region_open, enq_t, minute, now,
    ready_at, local_hour, contact_p, contact_n, value, peak, hop, params,
):
    """The queue whose head lead should be dialled now, or -1.

    A due promised callback in an open region comes first (queues after the
    retry queues, one per region). Then OLDEST: the lead that has waited
    longest (fresh leads carry a negative wait key ranking them by days past
    due) among regions open now. VALUE: the head with the highest
    contact_p[group, local hour] × value, skipping groups held for their better
    hour later today while the groups not held have enough ready leads. Only
    later hours with evidence (contact_n ≥ 1: learned, or written by the contact
    model with its sample size) can hold a group: an untouched prior never does.
    `peak` and `hop` (hop[0]: the minute `peak` was computed for) are VALUE's
    scratch, refreshed here once a minute.
    """
    best = due_callback(head, size, n_groups, region_open, ready_at, minute, now)
    if best >= 0:
        return best
    if kind == OLDEST:
        best_key = np.inf
        for g in range(n_groups):
            if size[g] == 0 or not region_open[group_region[g], minute]:
                continue
            key = enq_t[head[g]]
            if key < best_key:
                best_key = key
                best = g
        return best
    n_minutes = region_open.shape[1]
    if hop[0] != minute:
        # Best probability later today, at whole local hours while the region is open.
        hop[0] = minute
        for g in range(n_groups):
            r = group_region[g]
            pk = 0.0
            for k in range(1, 24):
                mm = minute + 60 * k
                if mm >= n_minutes:
                    break
                h = local_hour[r, mm]
                if region_open[r, mm] and contact_n[g, h] >= 1.0:
                    pk = max(pk, contact_p[g, h])
            peak[g] = pk
    ratio = params[H_HOLD_RATIO]
    best_any = -1
    best_any_s = -1.0
    best_s = -1.0
    supply = 0
    for g in range(n_groups):
        if size[g] == 0:
            continue
        r = group_region[g]
        if not region_open[r, minute]:
            continue
        pn = contact_p[g, local_hour[r, minute]]
        score = pn * value[head[g]]
        if score > best_any_s:
            best_any_s = score
            best_any = g
        if pn < ratio * peak[g]:
            continue  # its hour is still to come
        supply += size[g]
        if score > best_s:
            best_s = score
            best = g
    if best < 0 or supply < params[H_HOLD_MIN_SUPPLY]:
        return best_any
    return best


@njit(cache=True)
def p_next(
    kind, head, size, n_groups, group_region, region_open, enq_t, minute, now,
    ready_at, local_hour, contact_p, contact_n, value, peak, hop, params,
):
    """The contact table's P(human) of the lead the hopper would dial now, for pacing:
    contact_p of next_lead's group at its local hour when that cell has evidence
    (contact_n ≥ P_NEXT_MIN_N), else -1 (none open, a callback, or too few attempts)."""
    g = next_lead(
        kind, head, size, n_groups, group_region, region_open, enq_t, minute, now,
        ready_at, local_hour, contact_p, contact_n, value, peak, hop, params,
    )
    if g < 0 or g >= n_groups:
        return -1.0
    h = local_hour[group_region[g], minute]
    if contact_n[g, h] < P_NEXT_MIN_N:
        return -1.0
    return contact_p[g, h]


# One decision's picks. Between two picks of a decision only the queue just
# dequeued changes (`now` and the minute stay put; leads return to queues only
# when attempts end), so OLDEST keys its groups once per decision in a
# tournament tree and re-keys one group per pick: a pick costs O(log groups),
# where next_lead rescans every group and callback queue. VALUE asks next_lead.


def new_picker(n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch for `start_picks` / `pick`: (pick_key[g], pick_tree).

    pick_tree[1:] is a tournament tree over the groups (node i's children are
    2i and 2i+1, group g's leaf is len(pick_tree) // 2 + g; each node holds the
    group with the smallest key beneath it, the lower group on ties);
    pick_tree[0] is the due callback queue of the decision, or -1.
    """
    leaves = 1 << max(int(n_groups) - 1, 0).bit_length()
    return np.full(n_groups, np.inf), np.full(2 * leaves, -1, np.int64)


@njit(cache=True, inline="always")
def _first(keys, a, b):
    """Of groups a and b (-1: none), the one with the smaller key, a on ties (a < b)."""
    if a < 0:
        return b
    if b < 0:
        return a
    return b if keys[b] < keys[a] else a


@njit(cache=True)
def start_picks(kind, head, size, n_groups, group_region, region_open, enq_t, ready_at, minute,
                now, pick_key, pick_tree):
    """Open a decision at (`minute`, `now`): the queues may have changed since the last one.

    Every `pick` of the decision follows it, with nothing but picks in between.
    """
    if kind != OLDEST:
        return
    leaves = pick_tree.shape[0] // 2
    for g in range(n_groups):
        if size[g] == 0 or not region_open[group_region[g], minute]:
            pick_key[g] = np.inf
            pick_tree[leaves + g] = -1
        else:
            pick_key[g] = enq_t[head[g]]
            pick_tree[leaves + g] = g
    for i in range(leaves - 1, 0, -1):
        pick_tree[i] = _first(pick_key, pick_tree[2 * i], pick_tree[2 * i + 1])
    pick_tree[0] = due_callback(head, size, n_groups, region_open, ready_at, minute, now)


@njit(cache=True, inline="always")
def pick(
    kind, head, tail, size, nxt, n_groups, group_region, region_open, enq_t, minute, now,
    ready_at, local_hour, contact_p, contact_n, value, peak, hop, params, pick_key, pick_tree,
):
    """Dequeue the lead to dial next in the decision `start_picks` opened: (queue, lead),
    or (-1, -1) when there is none. The queue is next_lead's (the same picks).

    A lead picked but not dialled goes back with `push_front`, and ends the decision.
    """
    cb = -1
    if kind == OLDEST:
        cb = pick_tree[0]
        g = cb if cb >= 0 else pick_tree[1]
    else:
        g = next_lead(
            kind, head, size, n_groups, group_region, region_open, enq_t, minute, now,
            ready_at, local_hour, contact_p, contact_n, value, peak, hop, params,
        )
    if g < 0:
        return -1, -1
    lead = dequeue(head, tail, size, nxt, g)
    if kind == OLDEST:
        if g == cb:
            pick_tree[0] = due_callback(head, size, n_groups, region_open, ready_at, minute, now)
        else:  # its key is now its new head's: replay its matches up to the root
            i = pick_tree.shape[0] // 2 + g
            if size[g] > 0:
                pick_key[g] = enq_t[head[g]]
            else:
                pick_key[g] = np.inf
                pick_tree[i] = -1
            i >>= 1
            while i > 0:
                pick_tree[i] = _first(pick_key, pick_tree[2 * i], pick_tree[2 * i + 1])
                i >>= 1
    return g, lead


@njit(cache=True)
def learn(contact_p, contact_n, g, hour, human, prior_n):
    """Running estimate of P(human answer) for a group at a local hour."""
    contact_n[g, hour] += 1.0
    contact_p[g, hour] += ((1.0 if human else 0.0) - contact_p[g, hour]) / (
        contact_n[g, hour] + prior_n
    )


@njit(cache=True, inline="always")
def after_attempt(
    head, tail, size, nxt, n_groups, lead, outcome, t_end,
    attempts_day, attempts_7d, ready_at, state, rules,
    group, cell, n_ab, contact_p, contact_n, hour, prior_n,
):
    """File a lead after an attempt ended: retry queue of its outcome, or done.

    Also learns the attempt's contact probability (its group at launch, the local
    `hour`) and moves the lead to the group of its new attempt count.
    """
    human = outcome <= ABANDONED  # CONTACT (0) or ABANDONED (1): a human answered
    learn(contact_p, contact_n, group[lead], hour, human, prior_n)
    group[lead] = cell[lead] * n_ab + min(attempts_7d[lead], n_ab - 1)
    gap = rules[R_GAP + outcome]
    if (
        not np.isfinite(gap)
        or attempts_day[lead] >= rules[R_MAX_DAY]
        or attempts_7d[lead] >= rules[R_MAX_7D]
    ):
        state[lead] = DONE
        return
    ready_at[lead] = t_end + gap
    state[lead] = RETRY_WAIT
    enqueue(head, tail, size, nxt, n_groups + outcome, lead)
