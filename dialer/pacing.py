"""How many lines to dial now: the pacing policies, pure Numba functions.

`lines_to_dial(kind, params, memory, obs, now, u)` is called by the simulator
and the live engine alike with an observation vector; it never reads a clock
or touches I/O. `memory` is the policy's own small float array.
"""

import math

import numpy as np
from numba import njit

PROGRESSIVE, RATIO, POISSON, ADAPTIVE = range(4)
KINDS = {"progressive": PROGRESSIVE, "ratio": RATIO, "poisson": POISSON, "adaptive": ADAPTIVE}

# Observation vector: what the dialer knows when it decides.
O_LOGGED, O_IDLE, O_RINGING, O_WAITING, O_TALKING, O_WRAPPING = range(6)
O_HUMAN_ANSWERED, O_ABANDONED = 6, 7  # cumulative over the abandonment window
N_OBS = 8

# Parameters (from configs DialerSettings).
P_TICK_S, P_DIAL_RATIO, P_POISSON_PER_AGENT_S, P_ADAPT_MAX, P_ADAPT_START, P_DROP_TARGET = range(6)
P_ADAPT_PERIOD_S = 6
N_PARAMS = 7

# Memory of the adaptive pacer.
M_LEVEL, M_LAST_ADAPT, M_DIFF_SUM, M_DIFF_N = range(4)
N_MEMORY = 4


def params_from(settings, abandon_target: float) -> np.ndarray:
    """Pack configs.DialerSettings into the parameter vector."""
    p = np.zeros(N_PARAMS)
    p[P_TICK_S] = settings.tick_s
    p[P_DIAL_RATIO] = settings.dial_ratio
    p[P_POISSON_PER_AGENT_S] = settings.poisson_calls_per_agent_hour / 3600.0
    p[P_ADAPT_MAX] = settings.adaptive_max_level
    p[P_ADAPT_START] = settings.adaptive_start_level
    p[P_DROP_TARGET] = min(settings.adaptive_drop_target, abandon_target)
    p[P_ADAPT_PERIOD_S] = 15.0  # VICIdial's AST_VDadapt runs every 15 s
    return p


def new_memory(params: np.ndarray) -> np.ndarray:
    m = np.zeros(N_MEMORY)
    m[M_LEVEL] = params[P_ADAPT_START]
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
    else:
        _adapt(params, memory, obs, now)
        # VICIdial: goal calls = level × active agents (ready or in call; an
        # agent in wrap-up is not active), minus the calls already live.
        active = idle + obs[O_TALKING]
        live = ringing + obs[O_WAITING] + obs[O_TALKING]
        n = math.floor(memory[M_LEVEL] * active + 0.5) - live
    return max(int(n), 0)
