"""Which lead next: the lead queues and the calling rules, pure Numba functions.

Leads wait in FIFO queues (linked lists over one `nxt` array, O(1) per move):
one ready queue per group (groups never straddle regions, so a region's
calling window opens or closes whole queues), and one retry queue per
outcome class whose leads become ready after the class's minimum gap. A lead
is in at most one queue, so it can never be dialled twice at once.
Rules enforced here: local calling hours, attempt caps per day and per rolling
7 days, minimum gap by outcome, do-not-call, stop after contact.
"""

import numpy as np
from numba import njit

from smartdial.outcomes import Outcome

OLDEST = 0
KINDS = {"oldest": OLDEST}

# Lead states.
QUEUED, RETRY_WAIT, IN_FLIGHT, DONE = range(4)

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


@njit(cache=True)
def release_due(head, tail, size, nxt, n_groups, group, ready_at, enq_t, state, now):
    """Move leads whose retry gap has passed into their group's ready queue.

    Retry queues are FIFO in ready time because a class's gap is constant and
    attempts end in time order, so only the heads need looking at.
    """
    for q in range(n_groups, head.shape[0]):
        while size[q] > 0 and ready_at[head[q]] <= now:
            lead = dequeue(head, tail, size, nxt, q)
            enq_t[lead] = ready_at[lead]
            state[lead] = QUEUED
            enqueue(head, tail, size, nxt, group[lead], lead)


@njit(cache=True, inline="always")
def next_lead(kind, head, size, n_groups, group_region, region_open, enq_t, minute):
    """The group whose head lead should be dialled now, or -1.

    OLDEST: the lead that has waited longest (fresh leads carry a negative
    wait key ranking them by days past due) among regions open now.
    """
    best = -1
    best_key = np.inf
    for g in range(n_groups):
        if size[g] == 0 or not region_open[group_region[g], minute]:
            continue
        key = enq_t[head[g]]
        if key < best_key:
            best_key = key
            best = g
    return best


@njit(cache=True)
def after_attempt(
    head, tail, size, nxt, n_groups, lead, outcome, t_end,
    attempts_day, attempts_7d, ready_at, state, rules,
):
    """File a lead after an attempt ended: retry queue of its outcome, or done."""
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
