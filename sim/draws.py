"""Counter-based random draws for the simulated world.

Every random quantity of the world is a pure function of (purpose key, lead,
attempt number, sub-draw), so two policies run on the same seed see exactly the
same world for the same lead and attempt: common random numbers by
construction, whatever order the policies make calls in. Numba only.
"""

import numpy as np
from numba import njit

# Purposes, one key each, derived from the scenario seed by SeedSequence.spawn.
ANSWER, RING, FAIL_SIGNAL, HANDLE, WRAP, PATIENCE, DETECT, PACE = range(8)
N_PURPOSES = 8

# Distribution kinds (configs Distribution.kind), rows are (kind, mean_s, sd_s,
# mu, sigma): mu and sigma, a lognormal's log-space parameters, filled in by
# `dist_rows` once rather than recomputed (two logs and a root) per draw.
EXPONENTIAL, LOGNORMAL, GAMMA, FIXED = range(4)
DIST_WIDTH = 5
DIST_CODES = {"exponential": EXPONENTIAL, "lognormal": LOGNORMAL, "gamma": GAMMA, "fixed": FIXED}

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_KA = np.uint64(0xD1B54A32D192ED03)
_KB = np.uint64(0xAEF17502108EF2D9)


def purpose_keys(seed: int) -> np.ndarray:
    """One 64-bit key per purpose, spawned from the scenario seed."""
    children = np.random.SeedSequence(seed).spawn(N_PURPOSES)
    return np.array([c.generate_state(1, dtype=np.uint64)[0] for c in children], dtype=np.uint64)


@njit("uint64(uint64)", cache=True)
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


# Explicit signatures: callers pass counters of several int types (int16 attempt
# numbers, literal sub-draw ids); one compiled version serves them all.
@njit("float64(uint64, int64, int64)", cache=True)
def uniform(key, a, b):
    """A uniform in (0, 1) from the purpose key and two counters."""
    z = _mix(key + _GOLD * np.uint64(a + 1) + _KA * np.uint64(b + 1))
    z = _mix(z ^ (_KB * np.uint64(b + 7)))
    return ((z >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740994.0)


@njit(cache=True, no_cpython_wrapper=True)
def _normal(key, a, b):
    u1 = uniform(key, a, b)
    u2 = uniform(key, a, b + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True, no_cpython_wrapper=True)
def _gamma(shape, key, a, b):
    # Marsaglia-Tsang; shape < 1 boosted by U**(1/shape). Sub-draws use b+2j.
    boost = 1.0
    if shape < 1.0:
        boost = uniform(key, a, b) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    j = 1
    while True:
        x = _normal(key, a, b + 2 * j)
        v = (1.0 + c * x) ** 3
        j += 1
        if v <= 0.0:
            continue
        u = uniform(key, a, b + 2 * j + 1)
        j += 1
        if np.log(u) < 0.5 * x * x + d - d * v + d * np.log(v):
            return boost * d * v


@njit(cache=True)
def dist_rows(spec):
    """Rows of (kind, mean_s, sd_s) completed with their lognormal mu and sigma.

    In Numba, so that the parameters are bit for bit what `sample` computed per
    draw before they were stored.
    """
    rows = np.zeros((spec.shape[0], DIST_WIDTH))
    for i in range(spec.shape[0]):
        kind, mean, sd = spec[i, 0], spec[i, 1], spec[i, 2]
        rows[i, 0], rows[i, 1], rows[i, 2] = kind, mean, sd
        if int(kind) == LOGNORMAL:
            s2 = np.log(1.0 + (sd / mean) ** 2)
            rows[i, 3] = np.log(mean) - 0.5 * s2
            rows[i, 4] = np.sqrt(s2)
    return rows


@njit(cache=True)
def sample(dist, key, a, b):
    """A draw in seconds from a `dist_rows` row (kind, mean_s, sd_s, mu, sigma) for
    counters (a, b).

    b should step by 64 between independent draws of the same purpose.
    """
    kind = int(dist[0])
    mean = dist[1]
    sd = dist[2]
    if kind == FIXED:
        return mean
    if kind == EXPONENTIAL:
        return -mean * np.log(uniform(key, a, b))
    if kind == LOGNORMAL:
        return np.exp(dist[3] + dist[4] * _normal(key, a, b))
    shape = (mean / sd) ** 2
    return _gamma(shape, key, a, b) * (sd * sd / mean)
