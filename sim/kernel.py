"""The simulated campaign day: world state in arrays and the one Numba event loop.

The loop owns the world (ringing, answering, agents, trunks) and asks the
dialer's pure policy functions — pacing, hopper, routing — exactly what the
live engine asks them. It holds no policy logic of its own and computes no KPI:
it writes one log row per attempt and a per-minute sample of the floor.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from dialer import hopper, pacing, routing
from sim import draws, events
from sim.borrowed import borrow
from smartdial.outcomes import (
    ABANDONED,
    BUSY,
    CONGESTION,
    CONTACT,
    INVALID,
    MACHINE,
    NO_ANSWER,
)

# Codes are NumPy scalars, not ints: Numba types a global int as a literal and
# would compile a helper once per value passed.
# Event kinds.
E_TICK, E_RING_END, E_CALL_END, E_WRAP_END, E_PATIENCE, E_MINUTE = np.arange(6, dtype=np.int64)

# Agent states.
A_OUT, A_IDLE, A_TALK, A_WRAP = np.arange(4, dtype=np.int8)

# Call states.
C_FREE, C_RINGING, C_WAITING, C_CONNECTED, C_MACHINE = np.arange(5, dtype=np.int8)

# Scalar counters (int64): index names.
(K_LOG, K_TICK, K_PENDING_LOGOFF, K_LOGGED, K_IDLE, K_RINGING, K_WAITING, K_TALKING,
 K_WRAPPING) = range(9)
(K_HUMAN, K_ABANDONED, K_FREE_CALLS, K_IDLE_HEAD, K_IDLE_TAIL, K_WAIT_HEAD,
 K_WAIT_TAIL) = range(9, 16)
K_MINUTE, K_REJECTED = 16, 17
N_COUNTERS = 18

# Provisional `Log.outcome` of an answered call still up (-1: not decided yet): what the
# dialer knows at answer time (AMI DialEnd and the AMD verdict), before the hang-up.
UP_HUMAN, UP_MACHINE = np.int8(-2), np.int8(-3)

# Per-minute floor samples.
S_LOGGED, S_BUSY, S_RINGING, S_WAITING = range(4)
N_SAMPLES = 4

World = namedtuple(
    "World",
    "region product network mult invalid "  # per lead, hidden or fixed facts
    "region_open local_hour agents_sched carrier_up carrier_factor "  # per minute
    "p_base net_factor carrier_q fail_rate scalars dists keys "  # truth
    "channels cps",  # trunk limits the carriers really enforce
)
# World.scalars: [machine_rate, busy_rate, attempt_decay, ring_timeout_s, abandon_after_s, end_s]
W_MACHINE, W_BUSY, W_DECAY, W_RING_TIMEOUT, W_ABANDON_AFTER, W_END = range(6)
# World.dists rows: ring, fail signal, handle, wrap, patience, machine detect.
D_RING, D_FAIL, D_HANDLE, D_WRAP, D_PATIENCE, D_DETECT = range(6)


Floor = namedtuple(
    "Floor",
    "counters trunk_used trunk_window "
    "call_lead call_carrier call_row call_t call_due call_state call_agent free_calls wait_ring "
    "agent_state agent_since agent_call agent_idle_s agent_talk_s agent_wrap_s idle_ring "
    "ev_t ev_key ev_meta ev_lane_t ev_lane_key samples",  # ev_*: the event queue (sim.events)
)

Log = namedtuple("Log", "lead carrier attempt t_start ring_s wait_s conn_s outcome agent")


def new_log(capacity: int) -> Log:
    return Log(
        lead=np.empty(capacity, np.int32),
        carrier=np.empty(capacity, np.int16),
        attempt=np.empty(capacity, np.int16),
        t_start=np.empty(capacity, np.float64),
        ring_s=np.empty(capacity, np.float32),
        wait_s=np.empty(capacity, np.float32),
        conn_s=np.empty(capacity, np.float32),
        outcome=np.empty(capacity, np.int8),
        agent=np.empty(capacity, np.int32),
    )


def new_floor(n_agents: int, n_carriers: int, max_calls: int, n_minutes: int, cps) -> Floor:
    counters = np.zeros(N_COUNTERS, np.int64)
    counters[K_FREE_CALLS] = max_calls
    # The lane holds calls ringing out (at most one event per call slot).
    heap = events.new_queue(4 * (max_calls + n_agents) + 64, max_calls)
    return Floor(
        counters=counters,
        trunk_used=np.zeros(n_carriers, np.int64),
        trunk_window=routing.new_cps_window(cps),
        call_lead=np.full(max_calls, -1, np.int64),
        call_carrier=np.zeros(max_calls, np.int64),
        call_row=np.zeros(max_calls, np.int64),
        call_t=np.zeros(max_calls, np.float64),  # answer time while waiting / connected
        call_due=np.zeros(max_calls, np.float64),  # when the waiting caller gives up
        call_state=np.zeros(max_calls, np.int8),
        call_agent=np.full(max_calls, -1, np.int64),
        free_calls=np.arange(max_calls, dtype=np.int64),
        wait_ring=np.zeros(max_calls, np.int64),
        agent_state=np.zeros(n_agents, np.int8),
        agent_since=np.zeros(n_agents, np.float64),
        agent_call=np.full(n_agents, -1, np.int64),
        agent_idle_s=np.zeros(n_agents, np.float64),
        agent_talk_s=np.zeros(n_agents, np.float64),
        agent_wrap_s=np.zeros(n_agents, np.float64),
        idle_ring=np.zeros(n_agents, np.int64),
        ev_t=heap.t,
        ev_key=heap.key,
        ev_meta=heap.meta,
        ev_lane_t=heap.lane_t,
        ev_lane_key=heap.lane_key,
        samples=np.zeros((n_minutes, N_SAMPLES), np.float64),
    )


# ---------------------------------------------------------------- agents

# Helpers called from one place are inlined (inline="always"): on a cold cache a
# separately compiled helper costs its own pipeline and machine-code generation
# (≈ 0.1 s each). Helpers called from several places stay separate: inlining them
# would type and lower their body once per call site.
# Helpers only the kernel calls skip the CPython wrapper (no_cpython_wrapper).


@njit(cache=True, inline="always")
def _count(k, state, delta):
    if state == A_IDLE:
        k[K_IDLE] += delta
    elif state == A_TALK:
        k[K_TALKING] += delta
    elif state == A_WRAP:
        k[K_WRAPPING] += delta
    if state != A_OUT:
        k[K_LOGGED] += delta


@njit(cache=True, no_cpython_wrapper=True)
def _agent_move(f, a, new_state, now):
    """Close the agent's current spell (time accounting) and enter new_state."""
    spell = now - f.agent_since[a]
    s = f.agent_state[a]
    if s == A_IDLE:
        f.agent_idle_s[a] += spell
    elif s == A_TALK:
        f.agent_talk_s[a] += spell
    elif s == A_WRAP:
        f.agent_wrap_s[a] += spell
    _count(f.counters, s, -1)
    _count(f.counters, new_state, 1)
    f.agent_state[a] = new_state
    f.agent_since[a] = now


@njit(cache=True, inline="always")
def _idle_push(f, a):
    n = f.idle_ring.shape[0]
    f.idle_ring[f.counters[K_IDLE_TAIL] % n] = a
    f.counters[K_IDLE_TAIL] += 1


@njit(cache=True, inline="always")
def _idle_pop(f):
    """Longest-idle agent still idle, or -1 (the ring may hold stale entries)."""
    n = f.idle_ring.shape[0]
    k = f.counters
    while k[K_IDLE_HEAD] < k[K_IDLE_TAIL]:
        a = f.idle_ring[k[K_IDLE_HEAD] % n]
        k[K_IDLE_HEAD] += 1
        if f.agent_state[a] == A_IDLE:
            return a
    return -1


@njit(cache=True, inline="always")
def _set_staffing(f, target, now):
    """Log agents in or out to match the scheduled head-count.

    Idle agents leave at once; agents on a call leave when they finish it.
    """
    k = f.counters
    have = k[K_LOGGED] - k[K_PENDING_LOGOFF]
    if target > have:
        cancel = min(k[K_PENDING_LOGOFF], target - have)
        k[K_PENDING_LOGOFF] -= cancel
        need = target - have - cancel
        for a in range(f.agent_state.shape[0]):
            if need == 0:
                break
            if f.agent_state[a] == A_OUT:
                _agent_move(f, a, A_IDLE, now)
                _idle_push(f, a)
                need -= 1
    elif target < have:
        extra = have - target
        while extra > 0 and k[K_IDLE] > 0:
            a = _idle_pop(f)
            _agent_move(f, a, A_OUT, now)
            extra -= 1
        k[K_PENDING_LOGOFF] += extra


# ---------------------------------------------------------------- calls


@njit(cache=True, inline="always")
def _p_human(w, lead, carrier, minute, attempts_before):
    r = w.region[lead]
    p = (
        w.p_base[w.product[lead], r, w.local_hour[r, minute]]
        * w.mult[lead]
        * w.net_factor[w.network[lead]]
        * w.carrier_q[carrier, w.network[lead]]
        * w.carrier_factor[carrier, minute]
        * w.scalars[W_DECAY] ** attempts_before
    )
    return min(p, 0.95)


@njit(cache=True, no_cpython_wrapper=True)
def _finish(w, d, f, log, call, outcome, now):
    """An attempt ended: write the log, free the channel, file the lead."""
    row = f.call_row[call]
    lead = f.call_lead[call]
    c = f.call_carrier[call]
    log.outcome[row] = outcome
    f.trunk_used[c] -= 1
    d.channels_used[c] -= 1
    hour = w.local_hour[w.region[lead], f.counters[K_MINUTE]]
    hopper.after_attempt(
        d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, lead, outcome, now,
        d.attempts_day, d.attempts_7d, d.ready_at, d.state, d.rules,
        d.group, d.cell, d.n_ab, d.contact_p, d.contact_n, hour, d.hop_params[hopper.H_PRIOR_N],
    )
    f.call_state[call] = C_FREE
    f.call_lead[call] = -1
    f.free_calls[f.counters[K_FREE_CALLS]] = call
    f.counters[K_FREE_CALLS] += 1


@njit(cache=True, no_cpython_wrapper=True)
def _connect(w, f, log, call, agent, now):
    """A human is put through to an agent: talk time starts."""
    lead = f.call_lead[call]
    row = f.call_row[call]
    att = log.attempt[row]
    _agent_move(f, agent, A_TALK, now)
    f.agent_call[agent] = call
    f.call_agent[call] = agent
    f.call_state[call] = C_CONNECTED
    log.wait_s[row] = now - f.call_t[call]
    log.agent[row] = agent
    talk = draws.sample(w.dists[D_HANDLE], w.keys[draws.HANDLE], lead, att * 64)
    log.conn_s[row] = (now - f.call_t[call]) + talk
    events.add(f.ev_t, f.ev_key, f.ev_meta, now + talk, E_CALL_END, call)


@njit(cache=True, inline="always")
def _launch(w, d, f, log, lead, c, now):
    """Start an attempt on carrier c. Returns False when the log is full."""
    k = f.counters
    row = k[K_LOG]
    if row >= log.lead.shape[0] or k[K_FREE_CALLS] == 0:
        return False
    k[K_LOG] += 1
    minute = k[K_MINUTE]
    att = d.attempts_7d[lead]  # attempts before this one (the propensity decays with them)
    d.attempts_day[lead] += 1
    d.attempts_7d[lead] += 1
    d.state[lead] = hopper.IN_FLIGHT
    log.lead[row] = lead
    log.carrier[row] = c
    log.attempt[row] = att
    log.t_start[row] = now
    log.ring_s[row] = 0.0
    log.wait_s[row] = 0.0
    log.conn_s[row] = 0.0
    log.agent[row] = -1
    k[K_FREE_CALLS] -= 1
    call = f.free_calls[k[K_FREE_CALLS]]
    f.call_lead[call] = lead
    f.call_carrier[call] = c
    f.call_row[call] = row
    f.call_agent[call] = -1
    f.trunk_used[c] += 1
    d.channels_used[c] += 1
    routing.cps_record(d.cps_window, d.cps, c, now)
    routing.record_launch(d.launched, c)
    k[K_RINGING] += 1
    f.call_state[call] = C_RINGING
    d.ring_t0[call] = now

    # The trunk rejects what is over its real limits or while it is down.
    over = f.trunk_used[c] > w.channels[c] or not routing.cps_allows(f.trunk_window, w.cps, c, now)
    if over or not w.carrier_up[c, minute]:
        k[K_REJECTED] += 1
        f.call_t[call] = -1.0 - CONGESTION
        events.add(f.ev_t, f.ev_key, f.ev_meta, now, E_RING_END, call)
        return True
    routing.cps_record(f.trunk_window, w.cps, c, now)

    u = draws.uniform(w.keys[draws.ANSWER], lead, att)
    p_fail = w.fail_rate[c]
    timeout = w.scalars[W_RING_TIMEOUT]
    if w.invalid[lead]:
        outcome = INVALID
    elif u < p_fail:
        outcome = CONGESTION
    elif u < p_fail + (1.0 - p_fail) * w.scalars[W_BUSY]:
        outcome = BUSY
    else:
        v = draws.uniform(w.keys[draws.ANSWER], lead, att + 1000)
        p_h = _p_human(w, lead, c, minute, att)
        if v < p_h:
            outcome = CONTACT  # a human answers (agent or abandon decided later)
        elif v < p_h + (1.0 - p_h) * w.scalars[W_MACHINE]:
            outcome = MACHINE
        else:
            outcome = NO_ANSWER
    if outcome == CONTACT or outcome == MACHINE:  # noqa: SIM109 (Numba: plain compares)
        ring = draws.sample(w.dists[D_RING], w.keys[draws.RING], lead, att * 64)
        if ring >= timeout:
            ring = timeout
            outcome = NO_ANSWER
    elif outcome == NO_ANSWER:
        ring = timeout
    else:
        signal = draws.sample(w.dists[D_FAIL], w.keys[draws.FAIL_SIGNAL], lead, att * 64)
        ring = min(signal, timeout)
    f.call_t[call] = -1.0 - outcome  # the pending outcome, until the ring ends
    if ring == timeout:  # rung out, as about half the calls: one delay for all, so a FIFO
        events.add_to_lane(f.ev_lane_t, f.ev_lane_key, f.ev_meta, now + ring, E_RING_END, call)
    else:
        events.add(f.ev_t, f.ev_key, f.ev_meta, now + ring, E_RING_END, call)
    return True


@njit(cache=True, inline="always")
def _ring_end(w, d, f, log, call, now):
    k = f.counters
    k[K_RINGING] -= 1
    outcome = int(-1.0 - f.call_t[call])
    row = f.call_row[call]
    lead = f.call_lead[call]
    att = log.attempt[row]
    log.ring_s[row] = now - log.t_start[row]
    f.call_t[call] = now
    d.ring_t0[call] = -1.0
    if outcome == CONTACT:
        what = pacing.EV_HUMAN
    elif outcome == MACHINE:
        what = pacing.EV_MACHINE
    elif outcome == NO_ANSWER:
        what = pacing.EV_NO_ANSWER
    else:
        what = pacing.EV_FAILED
    pacing.record(d.pace_params, d.pace_memory, what, now - log.t_start[row], now)
    if outcome == CONTACT:
        log.outcome[row] = UP_HUMAN
        k[K_HUMAN] += 1
        agent = _idle_pop(f)
        if agent >= 0:
            _connect(w, f, log, call, agent, now)
        else:
            f.call_state[call] = C_WAITING
            _wait_push(f, call)
            k[K_WAITING] += 1
            patience = draws.sample(w.dists[D_PATIENCE], w.keys[draws.PATIENCE], lead, att * 64)
            f.call_due[call] = now + patience
            events.add(f.ev_t, f.ev_key, f.ev_meta, now + patience, E_PATIENCE, call)
    elif outcome == MACHINE:
        log.outcome[row] = UP_MACHINE
        f.call_state[call] = C_MACHINE
        detect = draws.sample(w.dists[D_DETECT], w.keys[draws.DETECT], lead, att * 64)
        log.conn_s[row] = detect
        events.add(f.ev_t, f.ev_key, f.ev_meta, now + detect, E_CALL_END, call)
    else:
        _finish(w, d, f, log, call, outcome, now)


@njit(cache=True, inline="always")
def _wait_push(f, call):
    # Calls that gave up stay in the ring until popped; when it is full,
    # compact it to the calls still waiting, keeping their order.
    k = f.counters
    n = f.wait_ring.shape[0]
    if k[K_WAIT_TAIL] - k[K_WAIT_HEAD] >= n:
        old = f.wait_ring.copy()
        kept = 0
        for i in range(k[K_WAIT_HEAD], k[K_WAIT_TAIL]):
            c = old[i % n]
            if f.call_state[c] == C_WAITING:
                f.wait_ring[kept] = c
                kept += 1
        k[K_WAIT_HEAD] = 0
        k[K_WAIT_TAIL] = kept
    f.wait_ring[k[K_WAIT_TAIL] % n] = call
    k[K_WAIT_TAIL] += 1


@njit(cache=True, inline="always")
def _next_waiting(f):
    """Oldest answered call still waiting for an agent, or -1."""
    k = f.counters
    n = f.wait_ring.shape[0]
    while k[K_WAIT_HEAD] < k[K_WAIT_TAIL]:
        call = f.wait_ring[k[K_WAIT_HEAD] % n]
        k[K_WAIT_HEAD] += 1
        if f.call_state[call] == C_WAITING:
            return call
    return -1


@njit(cache=True, inline="always")
def _agent_ready(w, d, f, log, agent, now):
    """An agent finished wrap-up: log off if due, else take a waiting call or idle."""
    k = f.counters
    pacing.record(d.pace_params, d.pace_memory, pacing.EV_WRAP, now - f.agent_since[agent], now)
    if k[K_PENDING_LOGOFF] > 0:
        k[K_PENDING_LOGOFF] -= 1
        _agent_move(f, agent, A_OUT, now)
        return
    _agent_move(f, agent, A_IDLE, now)
    if k[K_WAITING] > 0:
        call = _next_waiting(f)
        if call >= 0:
            k[K_WAITING] -= 1
            _connect(w, f, log, call, agent, now)
            return
    _idle_push(f, agent)


@njit(cache=True, inline="always")
def _call_end(w, d, f, log, call, now):
    row = f.call_row[call]
    if f.call_state[call] == C_MACHINE:
        _finish(w, d, f, log, call, MACHINE, now)
        return
    agent = f.call_agent[call]
    lead = f.call_lead[call]
    att = log.attempt[row]
    _finish(w, d, f, log, call, CONTACT, now)
    pacing.record(d.pace_params, d.pace_memory, pacing.EV_TALK, now - f.agent_since[agent], now)
    f.agent_call[agent] = -1
    _agent_move(f, agent, A_WRAP, now)
    wrap = draws.sample(w.dists[D_WRAP], w.keys[draws.WRAP], lead, att * 64)
    events.add(f.ev_t, f.ev_key, f.ev_meta, now + wrap, E_WRAP_END, agent)


@njit(cache=True, inline="always")
def _patience(w, d, f, log, call, now):
    # Call slots are reused: a patience event left by a caller who was put
    # through must not abandon the next caller waiting in the same slot.
    if f.call_state[call] != C_WAITING or f.call_due[call] != now:
        return
    k = f.counters
    k[K_WAITING] -= 1
    k[K_ABANDONED] += 1
    row = f.call_row[call]
    log.wait_s[row] = now - f.call_t[call]
    log.conn_s[row] = now - f.call_t[call]
    pacing.record(d.pace_params, d.pace_memory, pacing.EV_ABANDON, 0.0, now)
    _finish(w, d, f, log, call, ABANDONED, now)


@njit(cache=True)
def _observe(d, f):
    k = f.counters
    o = d.obs
    o[pacing.O_LOGGED] = k[K_LOGGED] - k[K_PENDING_LOGOFF]
    o[pacing.O_IDLE] = k[K_IDLE]
    o[pacing.O_RINGING] = k[K_RINGING]
    o[pacing.O_WAITING] = k[K_WAITING]
    o[pacing.O_TALKING] = k[K_TALKING]
    o[pacing.O_WRAPPING] = k[K_WRAPPING]
    o[pacing.O_HUMAN_ANSWERED] = k[K_HUMAN]
    o[pacing.O_ABANDONED] = k[K_ABANDONED]
    o[pacing.O_PENDING_LOGOFF] = k[K_PENDING_LOGOFF]


# error_model="numpy" on the loop and the pacing decision (and the helpers
# inlined into them): no check-and-raise branch around each division and
# modulo. No divisor there is ever zero, so the results are the same.
@njit(cache=True, error_model="numpy")
def _tick(w, d, f, log, now):
    """A pacing decision: ask pacing how many, hopper which, routing where."""
    k = f.counters
    minute = k[K_MINUTE]
    hopper.release_due(
        d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups, d.group, d.ready_at, d.enq_t,
        d.state, now,
    )
    _observe(d, f)
    u = draws.uniform(w.keys[draws.PACE], k[K_TICK], 0)
    if d.kinds[0] == pacing.PREDICTIVE:
        p_next = hopper.p_next(
            d.kinds[2], d.q_head, d.q_size, d.n_groups, d.group_region, w.region_open, d.enq_t,
            minute, now, d.ready_at, w.local_hour, d.contact_p, d.contact_n, d.value, d.peak,
            d.hop, d.hop_params,
        )
        n = pacing.predictive_lines(
            d.pace_params, d.pace_memory, d.obs, now, f.agent_state, f.agent_since, d.ring_t0,
            p_next,
        )
    else:
        n = pacing.lines_to_dial(d.kinds[0], d.pace_params, d.pace_memory, d.obs, now, u)
    # Arrays read from the structs once, outside the per-line loop.
    lead_kind, route_kind = d.kinds[2], d.kinds[1]
    q_head, q_tail, q_size, nxt, n_groups = d.q_head, d.q_tail, d.q_size, d.nxt, d.n_groups
    group_region, enq_t, region_open = d.group_region, d.enq_t, w.region_open
    ready_at, local_hour, contact_p, contact_n, value, peak, hop, hop_params = (
        d.ready_at, w.local_hour, d.contact_p, d.contact_n, d.value, d.peak, d.hop, d.hop_params
    )
    pick_key, pick_tree = d.pick_key, d.pick_tree
    region, product, network = w.region, w.product, w.network
    channels_used, channels, enabled, coverage = d.channels_used, d.channels, d.enabled, d.coverage
    cps_window, cps, weights, credit, rr, cost_order = (
        d.cps_window, d.cps, d.weights, d.credit, d.rr, d.cost_order
    )
    contract, launched = d.contract, d.launched
    if n > 0:
        hopper.start_picks(lead_kind, q_head, q_size, n_groups, group_region, region_open, enq_t,
                           ready_at, minute, now, pick_key, pick_tree)
    for _ in range(n):
        g, lead = hopper.pick(
            lead_kind, q_head, q_tail, q_size, nxt, n_groups, group_region, region_open, enq_t,
            minute, now, ready_at, local_hour, contact_p, contact_n, value, peak, hop, hop_params,
            pick_key, pick_tree,
        )
        if g < 0:
            break
        c = routing.pick_carrier(
            route_kind, region[lead], product[lead], network[lead], now,
            channels_used, channels, enabled, coverage, cps_window, cps,
            weights, credit, rr, cost_order, contract, launched,
        )
        if c < 0 or not _launch(w, d, f, log, lead, c, now):
            hopper.push_front(q_head, q_tail, q_size, nxt, g, lead)
            break
    k[K_TICK] += 1


@njit(cache=True, error_model="numpy")
def run_until(world, dialer, floor, attempts, t_stop):
    """Advance the world to t_stop (exclusive). Returns the number of events fired,
    or -1 if the event heap or attempt log filled up (the caller grows and resumes).
    """
    # Borrowed views: handing a StructRef to each helper would count a reference
    # (atomic) per pass; the four StructRefs outlive this call.
    w, d, f, log = borrow(world), borrow(dialer), borrow(floor), borrow(attempts)
    qt = f.ev_t
    qkey = f.ev_key
    meta = f.ev_meta
    lt = f.ev_lane_t
    lkey = f.ev_lane_key
    k = f.counters
    fired = 0
    end = w.scalars[W_END]
    tick_s = d.pace_params[pacing.P_TICK_S]
    n_minutes = f.samples.shape[0]
    while events.pending(meta) > 0 and events.next_time(qt, meta, lt) < t_stop:
        now, kind, ref = events.take(qt, qkey, meta, lt, lkey)
        fired += 1
        if kind == E_TICK:
            if now < end:
                _tick(w, d, f, log, now)
                events.add(qt, qkey, meta, now + tick_s, E_TICK, 0)
        elif kind == E_RING_END:
            _ring_end(w, d, f, log, ref, now)
        elif kind == E_CALL_END:
            _call_end(w, d, f, log, ref, now)
        elif kind == E_WRAP_END:
            _agent_ready(w, d, f, log, ref, now)
        elif kind == E_PATIENCE:
            _patience(w, d, f, log, ref, now)
        elif kind == E_MINUTE:
            m = ref
            k[K_MINUTE] = min(m, n_minutes - 1)
            target = w.agents_sched[k[K_MINUTE]] if now < end else 0
            _set_staffing(f, target, now)
            if m < n_minutes:
                s = f.samples[m]
                s[S_LOGGED] = k[K_LOGGED]
                s[S_BUSY] = k[K_TALKING] + k[K_WRAPPING]
                s[S_RINGING] = k[K_RINGING]
                s[S_WAITING] = k[K_WAITING]
            if now < end:
                events.add(qt, qkey, meta, now + 60.0, E_MINUTE, m + 1)
        if meta[0] >= qt.shape[0] - 8 or k[K_LOG] >= log.lead.shape[0]:
            return -1
    return fired


@njit(cache=True)
def close_books(floor, now):
    """End of day: close every agent's open time spell at `now`."""
    f = borrow(floor)  # the loop's type: its helpers are compiled once, not twice
    for a in range(f.agent_state.shape[0]):
        _agent_move(f, a, f.agent_state[a], now)
