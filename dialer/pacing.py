"""How many lines to dial now: the pacing policies, pure Numba functions.

`lines_to_dial(kind, params, memory, obs, now, u)` is called by the simulator
and the live engine alike with an observation vector; `predictive_lines` also
reads the agents' and the ringing calls' elapsed times. Neither reads a clock
or touches I/O. `memory` is the policies' own float array; `record` feeds it
the outcomes (ring, talk and wrap times, answers, abandons) as they happen.
"""

import math

import numpy as np
from numba import njit

PROGRESSIVE, RATIO, POISSON, ADAPTIVE, PREDICTIVE = range(5)
KINDS = {
    "progressive": PROGRESSIVE, "ratio": RATIO, "poisson": POISSON, "adaptive": ADAPTIVE,
    "predictive": PREDICTIVE,
}

# Observation vector: what the dialer knows when it decides.
O_LOGGED, O_IDLE, O_RINGING, O_WAITING, O_TALKING, O_WRAPPING = range(6)
O_HUMAN_ANSWERED, O_ABANDONED = 6, 7  # cumulative over the abandonment window
O_PENDING_LOGOFF = 8  # agents on a call who log off when they finish it (not in O_LOGGED)
N_OBS = 9

# Agent states in the `agent_state` array predictive pacing reads (the kernel's codes).
AG_OUT, AG_IDLE, AG_TALK, AG_WRAP = range(4)

# What `record` is told happened, with its duration in seconds.
EV_HUMAN, EV_MACHINE, EV_NO_ANSWER, EV_FAILED, EV_TALK, EV_WRAP, EV_ABANDON = range(7)

# Parameters (from configs DialerSettings).
P_TICK_S, P_DIAL_RATIO, P_POISSON_PER_AGENT_S, P_ADAPT_MAX, P_ADAPT_START, P_DROP_TARGET = range(6)
P_ADAPT_PERIOD_S = 6
P_ABANDON_TARGET, P_AIM, P_GAIN, P_ABANDON_AFTER_S, P_RING_TIMEOUT_S = range(7, 12)
N_PARAMS = 12

# Memory. Adaptive: its dial level and the waiting-agents differential.
M_LEVEL, M_LAST_ADAPT, M_DIFF_SUM, M_DIFF_N = range(4)
# Predictive, learned from `record`: attempt outcome rates (exponentially weighted over
# about W_RATES attempts), lognormal fits (mean and variance of log seconds) of the
# human ring time, talk and wrap times; the failure-signal mean; attempts seen.
M_P_HUMAN, M_P_MACHINE, M_P_NO_ANSWER, M_P_FAILED = range(4, 8)
M_RING_MU, M_RING_VAR, M_TALK_MU, M_TALK_VAR, M_WRAP_MU, M_WRAP_VAR = range(8, 14)
M_FAIL_MEAN, M_N_ATTEMPTS, M_N_TALK, M_N_WRAP = range(14, 18)
# Outer controller: log of the inner tolerance, the minute it last moved, the hour
# and day indices of the newest buckets.
M_LOG_TOL, M_LAST_STEER, M_HOUR_IX, M_DAY_IX = range(18, 22)
# Answered and abandoned counts: 24 hourly buckets (rolling 24 h) and 30 daily
# buckets (the campaign's 30 days), ring buffers indexed by hour / day number.
M_H_ANS, M_H_ABN = 22, 22 + 24
M_D_ANS, M_D_ABN = 22 + 48, 22 + 48 + 30
# A fast estimate of the human-answer rate (about W_FAST attempts): when it is above
# the slow one by more than its own noise (2 sd), decisions use it, so a jump in
# answers is felt within a minute or two; a fall only once the slow one agrees.
M_P_HUMAN_FAST = 22 + 48 + 60
# The contact table's answer probability of the leads dialled (mean over about W_RATES
# lines, the running estimates' window) and how many lines it has seen: the scale
# that turns the table's p of the next leads into a factor on the running estimate.
M_P_TABLE, M_N_TABLE = M_P_HUMAN_FAST + 1, M_P_HUMAN_FAST + 2
N_MEMORY = M_N_TABLE + 1

W_RATES = 400.0  # attempts: memory of the outcome rates (answer-rate shocks show in minutes)
W_FAST = 150.0
W_TIMES = 300.0  # samples: memory of the duration fits
N_PRIOR = 30.0  # pseudo-observations of the cold-start priors
PRIOR_ANSWERS = 150.0  # pseudo-answers at the aim in the controller's rate estimates
TOL_MAX = 1.0  # the inner tolerance never exceeds the aim: no wind-up after a clean spell
N_TABLE_FULL = 200.0  # lines with a known table p before its factor counts in full
TABLE_RATIO_MIN, TABLE_RATIO_MAX = 0.5, 2.0  # the factor's bounds


def params_from(settings, abandon_target: float, abandon_after_s: float = 2.0,
                ring_timeout_s: float = 25.0) -> np.ndarray:
    """Pack configs.DialerSettings into the parameter vector."""
    p = np.zeros(N_PARAMS)
    p[P_TICK_S] = settings.tick_s
    p[P_DIAL_RATIO] = settings.dial_ratio
    p[P_POISSON_PER_AGENT_S] = settings.poisson_calls_per_agent_hour / 3600.0
    p[P_ADAPT_MAX] = settings.adaptive_max_level
    p[P_ADAPT_START] = settings.adaptive_start_level
    p[P_DROP_TARGET] = min(settings.adaptive_drop_target, abandon_target)
    p[P_ADAPT_PERIOD_S] = 15.0  # VICIdial's AST_VDadapt runs every 15 s
    p[P_ABANDON_TARGET] = abandon_target
    p[P_AIM] = getattr(settings, "predictive_aim", 0.7) * abandon_target
    p[P_GAIN] = getattr(settings, "predictive_gain", 0.04)
    p[P_ABANDON_AFTER_S] = abandon_after_s
    p[P_RING_TIMEOUT_S] = ring_timeout_s
    return p


def _lognormal_fit(mean_s: float, sd_s: float) -> tuple[float, float]:
    var = math.log1p((sd_s / mean_s) ** 2)
    return math.log(mean_s) - 0.5 * var, var


def new_memory(params: np.ndarray) -> np.ndarray:
    """Fresh memory. The predictive priors are deliberately cautious: a high answer
    rate (so few lines per agent) until real outcomes replace them."""
    m = np.zeros(N_MEMORY)
    m[M_LEVEL] = params[P_ADAPT_START]
    m[M_P_HUMAN], m[M_P_MACHINE], m[M_P_NO_ANSWER], m[M_P_FAILED] = 0.30, 0.15, 0.45, 0.10
    m[M_RING_MU], m[M_RING_VAR] = _lognormal_fit(8.0, 5.0)
    m[M_TALK_MU], m[M_TALK_VAR] = _lognormal_fit(180.0, 120.0)
    m[M_WRAP_MU], m[M_WRAP_VAR] = _lognormal_fit(25.0, 12.0)
    m[M_FAIL_MEAN] = 3.0
    m[M_P_HUMAN_FAST] = m[M_P_HUMAN]
    # Start under the aim: the outer controller raises the tolerance as answers
    # come in clean.
    m[M_LOG_TOL] = math.log(max(0.35 * params[P_AIM], 1e-4))
    m[M_LAST_STEER] = -np.inf
    return m


@njit(cache=True)
def _poisson(mean, u):
    # Inverse-CDF draw from one uniform; means here are small (calls per tick).
    k = 0
    p = math.exp(-mean)
    cdf = p
    while u > cdf and k < 10000:
        k += 1
        p *= mean / k
        cdf += p
    return k


@njit(cache=True)
def _adapt(params, memory, obs, now):
    # VICIdial-style: steer the dial level by the waiting-agents differential
    # (ready agents minus answered calls waiting), averaged over the period;
    # the drop-percentage brake drops the level to 1 while over target.
    memory[M_DIFF_SUM] += obs[O_IDLE] - obs[O_WAITING]
    memory[M_DIFF_N] += 1.0
    if now - memory[M_LAST_ADAPT] < params[P_ADAPT_PERIOD_S]:
        return
    memory[M_LAST_ADAPT] = now
    diff = memory[M_DIFF_SUM] / max(memory[M_DIFF_N], 1.0)
    memory[M_DIFF_SUM] = 0.0
    memory[M_DIFF_N] = 0.0
    answered = obs[O_HUMAN_ANSWERED]
    drop = obs[O_ABANDONED] / answered if answered > 0 else 0.0
    level = memory[M_LEVEL]
    if drop > params[P_DROP_TARGET]:
        level = 1.0
    elif obs[O_LOGGED] > 0:
        level *= 1.0 + 0.5 * diff / obs[O_LOGGED]
    memory[M_LEVEL] = min(max(level, 1.0), params[P_ADAPT_MAX])


@njit(cache=True)
def lines_to_dial(kind, params, memory, obs, now, u):
    """Lines to launch now (≥ 0). u is a uniform in (0, 1) for random pacers."""
    logged = obs[O_LOGGED]
    if logged <= 0:
        return 0
    idle = obs[O_IDLE]
    ringing = obs[O_RINGING]
    if kind == PROGRESSIVE:
        n = idle - ringing
    elif kind == RATIO:
        n = math.floor(params[P_DIAL_RATIO] * idle + 1e-9) - ringing
    elif kind == POISSON:
        n = _poisson(params[P_POISSON_PER_AGENT_S] * logged * params[P_TICK_S], u)
    elif kind == ADAPTIVE:
        _adapt(params, memory, obs, now)
        # VICIdial: goal calls = level × active agents (ready or in call; an
        # agent in wrap-up is not active), minus the calls already live.
        active = idle + obs[O_TALKING]
        live = ringing + obs[O_WAITING] + obs[O_TALKING]
        n = math.floor(memory[M_LEVEL] * active + 0.5) - live
    else:
        return 0  # PREDICTIVE reads the floor's arrays: predictive_lines
    return max(int(n), 0)


# ---------------------------------------------------------------- predictive


@njit(cache=True)
def record(params, memory, what, seconds, now):
    """Learn from one event: an attempt's ring outcome (EV_HUMAN … EV_FAILED, with its
    ring or signal time), a finished talk or wrap (EV_TALK, EV_WRAP, with its
    duration) or an abandoned caller (EV_ABANDON). Keeps the abandonment buckets."""
    m = memory
    hour = math.floor(now / 3600.0)
    day = math.floor(now / 86400.0)
    # Advance the ring buffers, clearing the buckets of hours and days skipped.
    if hour > m[M_HOUR_IX]:
        for h in range(int(max(m[M_HOUR_IX] + 1, hour - 23)), int(hour) + 1):
            m[M_H_ANS + h % 24] = 0.0
            m[M_H_ABN + h % 24] = 0.0
        m[M_HOUR_IX] = hour
    if day > m[M_DAY_IX]:
        for d in range(int(max(m[M_DAY_IX] + 1, day - 29)), int(day) + 1):
            m[M_D_ANS + d % 30] = 0.0
            m[M_D_ABN + d % 30] = 0.0
        m[M_DAY_IX] = day
    x = max(seconds, 0.05)
    if what <= EV_FAILED:
        m[M_N_ATTEMPTS] += 1.0
        a = 1.0 / min(m[M_N_ATTEMPTS] + N_PRIOR, W_RATES)
        for k in range(4):
            hit = 1.0 if k == what else 0.0
            m[M_P_HUMAN + k] += a * (hit - m[M_P_HUMAN + k])
        a = 1.0 / min(m[M_N_ATTEMPTS] + N_PRIOR, W_FAST)
        m[M_P_HUMAN_FAST] += a * ((1.0 if what == EV_HUMAN else 0.0) - m[M_P_HUMAN_FAST])
        if what == EV_HUMAN:
            m[M_H_ANS + int(hour) % 24] += 1.0
            m[M_D_ANS + int(day) % 30] += 1.0
            b = 1.0 / min(m[M_N_ATTEMPTS] * m[M_P_HUMAN] + N_PRIOR, W_TIMES)
            lx = math.log(x)
            d = lx - m[M_RING_MU]
            m[M_RING_MU] += b * d
            m[M_RING_VAR] += b * (d * (lx - m[M_RING_MU]) - m[M_RING_VAR])
        elif what == EV_FAILED:
            m[M_FAIL_MEAN] += 0.01 * (x - m[M_FAIL_MEAN])
    elif what == EV_TALK or what == EV_WRAP:  # noqa: SIM109 (Numba: plain compares)
        n_ix = M_N_TALK if what == EV_TALK else M_N_WRAP
        mu_ix = M_TALK_MU if what == EV_TALK else M_WRAP_MU
        m[n_ix] += 1.0
        b = 1.0 / min(m[n_ix] + N_PRIOR, W_TIMES)
        lx = math.log(x)
        d = lx - m[mu_ix]
        m[mu_ix] += b * d
        m[mu_ix + 1] += b * (d * (lx - m[mu_ix]) - m[mu_ix + 1])
    elif what == EV_ABANDON:
        m[M_H_ABN + int(hour) % 24] += 1.0
        m[M_D_ABN + int(day) % 30] += 1.0


@njit(cache=True)
def abandon_rates(memory):
    """(answered, abandoned) over the rolling 24 h and over the 30 days."""
    m = memory
    a24 = 0.0
    b24 = 0.0
    for i in range(24):
        a24 += m[M_H_ANS + i]
        b24 += m[M_H_ABN + i]
    a30 = 0.0
    b30 = 0.0
    for i in range(30):
        a30 += m[M_D_ANS + i]
        b30 += m[M_D_ABN + i]
    return a24, b24, a30, b30


@njit(cache=True)
def predictive_lines(params, memory, obs, now, agent_state, agent_since, ring_t0, p_next=-1.0):
    """Model-based predictive pacing: the lines to launch now (≥ 0).

    agent_state/agent_since: per agent, AG_* state and when it began (s);
    ring_t0: per call slot, the launch time of a call still ringing, < 0 otherwise;
    p_next: the contact table's P(human) of the leads the hopper would dial now
    (hopper.p_next), ≤ 0 when the table has no evidence for them.

    Inner loop: within the horizon H (a new call's typical ring time plus the
    2-s abandon window) the answered calls D (ringing calls, each with its answer
    probability given how long it has rung, plus n new lines at the learned human
    answer rate) compete for the agents S (idle now, plus each busy agent's
    probability of freeing within H given its elapsed talk or wrap time, minus
    pending log-offs). With X = D − S taken as normal, E[X⁺] is the expected
    calls left without an agent; the n new lines may add at most tol abandons
    per answer they bring, E[X⁺](n) − E[X⁺](0) ≤ tol · n · p, and n is the
    largest such count (bisection: E[X⁺] is convex in n). The new lines' p is the
    running estimate calibrated by the table: times p_next over the table's mean p
    of the lines dialled within the estimate's window (the table and the per-attempt
    rate are on different scales; their ratio is not), with weight growing with the
    lines seen, none at a cold start. Outer loop: once a minute tol moves
    in log-space so that the abandonment realised over the rolling 24 h and the
    30 days converges to the aim, just under the target; tol never exceeds the
    aim itself (TOL_MAX), so a clean spell does not wind it up into a burst.
    """
    logged = obs[O_LOGGED]
    if logged <= 0:
        return 0
    m = memory
    # Outer controller, once a minute.
    minute = math.floor(now / 60.0)
    if minute > m[M_LAST_STEER]:
        m[M_LAST_STEER] = minute
        aim = params[P_AIM]
        a24, b24, a30, b30 = abandon_rates(m)
        # Rates shrunk to the aim by pseudo-answers: a cold start neither panics
        # after one abandon nor races ahead before any answer.
        r24 = (b24 + aim * PRIOR_ANSWERS) / (a24 + PRIOR_ANSWERS)
        r30 = (b30 + aim * PRIOR_ANSWERS) / (a30 + PRIOR_ANSWERS)
        err = (aim - max(r24, r30)) / aim
        if err < 0.0:
            err *= 2.0  # over the aim: brake harder than it accelerates
        m[M_LOG_TOL] = min(max(m[M_LOG_TOL] + params[P_GAIN] * err, math.log(1e-4)),
                           math.log(TOL_MAX * aim))
    tol = math.exp(m[M_LOG_TOL])
    warm = min(m[M_N_ATTEMPTS] / 200.0, 1.0)
    tol *= 0.25 + 0.75 * warm  # cold start: a quarter of the tolerance

    fast = m[M_P_HUMAN_FAST]
    fast -= 2.0 * math.sqrt(max(fast * (1.0 - fast), 0.0) / (2.0 * W_FAST))
    p = min(max(m[M_P_HUMAN], fast, 0.005), 0.95)
    p_m = max(m[M_P_MACHINE], 0.0)
    p_na = max(m[M_P_NO_ANSWER], 0.0)
    p_f = max(m[M_P_FAILED], 0.0)
    # The next leads' p: the running estimate scaled by how the table rates them
    # against the leads behind that estimate. Ringing calls keep the running one.
    p_new = p
    if p_next > 0.0:
        w = min(m[M_N_TABLE] / N_TABLE_FULL, 1.0) * warm
        if w > 0.0 and m[M_P_TABLE] > 0.0:
            ratio = min(max(p_next / m[M_P_TABLE], TABLE_RATIO_MIN), TABLE_RATIO_MAX)
            p_new = min(max(p * (1.0 + w * (ratio - 1.0)), 0.005), 0.95)
    ring_mu = m[M_RING_MU]
    ring_sd = math.sqrt(max(m[M_RING_VAR], 1e-4))
    ring_mean = math.exp(ring_mu + 0.5 * ring_sd * ring_sd)
    horizon = ring_mean + params[P_ABANDON_AFTER_S]
    timeout = params[P_RING_TIMEOUT_S]

    # Supply: idle agents net of answered callers already waiting, plus agents
    # likely to free within the horizon (lognormal hazards given elapsed time).
    supply = obs[O_IDLE] - obs[O_WAITING]
    talk_mu = m[M_TALK_MU]
    talk_s = math.sqrt(max(m[M_TALK_VAR], 1e-4)) * math.sqrt(2.0)
    wrap_mu = m[M_WRAP_MU]
    wrap_sdv = math.sqrt(max(m[M_WRAP_VAR], 1e-4))
    wrap_s = wrap_sdv * math.sqrt(2.0)
    wrap_mean = math.exp(wrap_mu + 0.5 * wrap_sdv * wrap_sdv)
    talk_h = horizon - wrap_mean  # a talking agent must finish talk and wrap
    f_mean = 0.0
    f_var = 0.0
    for a in range(agent_state.shape[0]):
        st = agent_state[a]
        if st == AG_TALK:
            if talk_h <= 0.0:
                continue
            e = max(now - agent_since[a], 0.01)
            s0 = math.erfc((math.log(e) - talk_mu) / talk_s)
            s1 = math.erfc((math.log(e + talk_h) - talk_mu) / talk_s)
        elif st == AG_WRAP:
            e = max(now - agent_since[a], 0.01)
            s0 = math.erfc((math.log(e) - wrap_mu) / wrap_s)
            s1 = math.erfc((math.log(e + horizon) - wrap_mu) / wrap_s)
        else:
            continue
        q = 1.0 - s1 / s0 if s0 > 1e-12 else 1.0
        f_mean += q
        f_var += q * (1.0 - q)
    pending = obs[O_PENDING_LOGOFF]
    if pending > 0.0 and f_mean > 0.0:
        # The first agents to finish log off: only the surplus frees for calls.
        keep = max(f_mean - pending, 0.0) / f_mean
        f_mean *= keep
        f_var *= keep
    supply += f_mean

    # Demand from calls already ringing: P(human | still ringing after r s).
    rs = ring_sd * math.sqrt(2.0)
    d_mean = 0.0
    d_var = 0.0
    for i in range(ring_t0.shape[0]):
        t0 = ring_t0[i]
        if t0 < 0.0:
            continue
        r = max(now - t0, 0.01)
        if r >= timeout:
            continue
        s_r = 0.5 * math.erfc((math.log(r) - ring_mu) / rs)
        s_f = math.exp(-r / max(m[M_FAIL_MEAN], 0.1))
        num = p * s_r
        den = num + p_m * s_r + p_na + p_f * s_f
        q = num / den if den > 0.0 else 0.0
        d_mean += q
        d_var += q * (1.0 - q)

    def overflow(n):
        mu = d_mean + n * p_new - supply
        var = d_var + n * p_new * (1.0 - p_new) + f_var + 0.25
        sd = math.sqrt(var)
        z = mu / sd
        return sd * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) + mu * 0.5 * math.erfc(
            -z / math.sqrt(2.0)
        )

    # The abandons the n new lines add, per answer they bring, must stay ≤ tol.
    # overflow is convex in n, so the feasible n form an interval from 0.
    base = overflow(0)
    if overflow(1) - base > tol * p_new:
        return 0
    hi = int(min(max(supply + 3.0 * math.sqrt(max(supply + 1.0, 0.0)) + 3.0, 1.0) / p_new,
                 4.0 * logged / p_new))
    hi = max(hi, 1)
    if overflow(hi) - base <= tol * hi * p_new:
        lo = hi
    else:
        lo = 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if overflow(mid) - base <= tol * mid * p_new:
                lo = mid
            else:
                hi = mid
    if p_next > 0.0:
        # The table's p of the lines launched, over the running estimates' window.
        if m[M_N_TABLE] == 0.0:
            m[M_P_TABLE] = p_next
        for _ in range(lo):
            m[M_N_TABLE] += 1.0
            m[M_P_TABLE] += (p_next - m[M_P_TABLE]) / min(m[M_N_TABLE], W_RATES)
    return lo
