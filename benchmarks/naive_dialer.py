"""Straightforward pure-Python twins of the dialer's Numba decisions.

The same logic as `dialer.pacing.predictive_lines` and `dialer.hopper.next_lead`,
written the obvious way: plain loops over Python lists, a linear search for the
number of lines instead of a bisection. Tests compare the kernels with them on
random inputs; `bench_dialer.py` times them side by side.
"""

from __future__ import annotations

import math

from dialer import hopper, pacing


def naive_predictive_lines(
    params, memory, obs, now, agent_state, agent_since, ring_t0, p_next=-1.0
) -> int:
    P, M = pacing, memory
    logged = float(obs[P.O_LOGGED])
    if logged <= 0:
        return 0
    minute = math.floor(now / 60.0)
    if minute > M[P.M_LAST_STEER]:
        M[P.M_LAST_STEER] = minute
        aim = params[P.P_AIM]
        a24 = sum(M[P.M_H_ANS + i] for i in range(24))
        b24 = sum(M[P.M_H_ABN + i] for i in range(24))
        a30 = sum(M[P.M_D_ANS + i] for i in range(30))
        b30 = sum(M[P.M_D_ABN + i] for i in range(30))
        r24 = (b24 + aim * P.PRIOR_ANSWERS) / (a24 + P.PRIOR_ANSWERS)
        r30 = (b30 + aim * P.PRIOR_ANSWERS) / (a30 + P.PRIOR_ANSWERS)
        err = (aim - max(r24, r30)) / aim
        if err < 0:
            err *= 2.0
        M[P.M_LOG_TOL] = min(max(M[P.M_LOG_TOL] + params[P.P_GAIN] * err, math.log(1e-4)),
                             math.log(P.TOL_MAX * aim))
    warm = min(M[P.M_N_ATTEMPTS] / 200.0, 1.0)
    tol = math.exp(M[P.M_LOG_TOL]) * (0.25 + 0.75 * warm)
    fast = M[P.M_P_HUMAN_FAST]
    fast -= 2 * math.sqrt(max(fast * (1 - fast), 0.0) / (2 * P.W_FAST))
    p = min(max(M[P.M_P_HUMAN], fast, 0.005), 0.95)
    p_m, p_na, p_f = (max(M[i], 0.0) for i in (P.M_P_MACHINE, P.M_P_NO_ANSWER, P.M_P_FAILED))
    # New lines: the running p times how the table rates the next leads against the
    # leads dialled lately, weighted by the lines seen; ringing calls keep p.
    w = min(M[P.M_N_TABLE] / P.N_TABLE_FULL, 1.0) * warm
    p_new = p
    if p_next > 0 and w > 0 and M[P.M_P_TABLE] > 0:
        ratio = min(max(p_next / M[P.M_P_TABLE], P.TABLE_RATIO_MIN), P.TABLE_RATIO_MAX)
        p_new = min(max(p * (1 + w * (ratio - 1)), 0.005), 0.95)

    def survival(x, mu, var):  # lognormal P(T > x)
        return 0.5 * math.erfc((math.log(x) - mu) / math.sqrt(2.0 * var))

    ring_var = max(M[P.M_RING_VAR], 1e-4)
    horizon = math.exp(M[P.M_RING_MU] + 0.5 * ring_var) + params[P.P_ABANDON_AFTER_S]
    talk_var, wrap_var = max(M[P.M_TALK_VAR], 1e-4), max(M[P.M_WRAP_VAR], 1e-4)
    wrap_mean = math.exp(M[P.M_WRAP_MU] + 0.5 * wrap_var)
    frees = []
    for st, since in zip(agent_state.tolist(), agent_since.tolist(), strict=True):
        e = max(now - since, 0.01)
        if st == P.AG_TALK and horizon - wrap_mean > 0:
            s0 = survival(e, M[P.M_TALK_MU], talk_var)
            s1 = survival(e + horizon - wrap_mean, M[P.M_TALK_MU], talk_var)
        elif st == P.AG_WRAP:
            s0 = survival(e, M[P.M_WRAP_MU], wrap_var)
            s1 = survival(e + horizon, M[P.M_WRAP_MU], wrap_var)
        else:
            continue
        frees.append(1.0 - s1 / s0 if s0 > 5e-13 else 1.0)
    f_mean, f_var = sum(frees), sum(q * (1 - q) for q in frees)
    pending = float(obs[P.O_PENDING_LOGOFF])
    if pending > 0 and f_mean > 0:
        keep = max(f_mean - pending, 0.0) / f_mean
        f_mean, f_var = f_mean * keep, f_var * keep
    supply = float(obs[P.O_IDLE] - obs[P.O_WAITING]) + f_mean
    answers = []
    for t0 in ring_t0.tolist():
        r = max(now - t0, 0.01)
        if t0 < 0 or r >= params[P.P_RING_TIMEOUT_S]:
            continue
        s_r = survival(r, M[P.M_RING_MU], ring_var)
        s_f = math.exp(-r / max(M[P.M_FAIL_MEAN], 0.1))
        den = p * s_r + p_m * s_r + p_na + p_f * s_f
        answers.append(p * s_r / den if den > 0 else 0.0)
    d_mean, d_var = sum(answers), sum(q * (1 - q) for q in answers)

    def overflow(n):
        mu = d_mean + n * p_new - supply
        sd = math.sqrt(d_var + n * p_new * (1 - p_new) + f_var + 0.25)
        z = mu / sd
        return sd * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) + mu * 0.5 * math.erfc(
            -z / math.sqrt(2)
        )

    room = max(supply + 3 * math.sqrt(max(supply + 1, 0.0)) + 3, 1.0)
    hi = max(int(min(room / p_new, 4 * logged / p_new)), 1)
    base = overflow(0)
    n = 0
    while n < hi and overflow(n + 1) - base <= tol * (n + 1) * p_new:
        n += 1
    if p_next > 0 and n > 0:  # the table's mean p of the lines launched
        if M[P.M_N_TABLE] == 0:
            M[P.M_P_TABLE] = p_next
        for _ in range(n):
            M[P.M_N_TABLE] += 1
            M[P.M_P_TABLE] += (p_next - M[P.M_P_TABLE]) / min(M[P.M_N_TABLE], P.W_RATES)
    return n


def naive_next_lead(
    kind, head, size, n_groups, group_region, region_open, enq_t, minute, now,
    ready_at, local_hour, contact_p, contact_n, value, peak, hop, params,
) -> int:
    """The queue to dial from, by the rules of hopper.next_lead, in plain Python."""
    n_regions, n_minutes = region_open.shape
    cb0 = n_groups + hopper.N_RETRY
    for r in range(n_regions):
        q = cb0 + r
        if size[q] > 0 and ready_at[head[q]] <= now and region_open[r, minute]:
            return q
    open_groups = [
        g for g in range(n_groups) if size[g] > 0 and region_open[group_region[g], minute]
    ]
    if kind == hopper.OLDEST:
        return min(open_groups, key=lambda g: (enq_t[head[g]], g), default=-1)
    if hop[0] != minute:
        hop[0] = minute
        for g in range(n_groups):
            r = group_region[g]
            later = [
                contact_p[g, local_hour[r, minute + 60 * k]]
                for k in range(1, 24)
                if minute + 60 * k < n_minutes and region_open[r, minute + 60 * k]
                and contact_n[g, local_hour[r, minute + 60 * k]] >= 1
            ]
            peak[g] = max(later, default=0.0)
    scored = []
    for g in open_groups:
        pn = contact_p[g, local_hour[group_region[g], minute]]
        held = pn < params[hopper.H_HOLD_RATIO] * peak[g]
        scored.append((pn * value[head[g]], g, held))
    if not scored:
        return -1
    best_any = max(scored, key=lambda x: (x[0], -x[1]))[1]
    free = [x for x in scored if not x[2]]
    supply = sum(size[g] for _, g, _ in free)
    if not free or supply < params[hopper.H_HOLD_MIN_SUPPLY]:
        return best_any
    return max(free, key=lambda x: (x[0], -x[1]))[1]
