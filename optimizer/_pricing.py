"""Numba kernels of the allocator: dual pricing of omitted columns and the live greedy split.

Arrays in, arrays out; no Python objects. Imported lazily by ``optimizer.allocate``.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def _price(
    profit,  # (C, K, S) MXN per attempt
    hold,  # (C, K, S) channel-s per attempt
    agent_coef,  # (C, K, S) agent-s per attempt
    cost,  # (C, K, S) MXN per attempt
    allowed,  # (C, K, S) bool
    in_master,  # (C, K, S) bool
    y_cps,  # (C, S)
    y_chan,  # (C, S)
    y_agent,  # (S,)
    y_supply,  # (K,)
    y_slot,  # (K, S)
    y_carrier,  # (C,) carrier-total rows (contract shares)
    y_budget,  # scalar
    tol,
    max_add,  # columns added per (k, s) cell, best reduced cost first
    add,  # out (C, K, S) bool
    rc,  # work (C, K, S) float
):
    """Reduced cost of every allowed column; marks the best ``max_add`` positive ones per cell.

    Returns (number of columns marked, largest reduced cost among columns not in the master).
    """
    n_c, n_k, n_s = profit.shape
    for c in range(n_c):
        for k in range(n_k):
            for s in range(n_s):
                add[c, k, s] = False
                if not allowed[c, k, s]:
                    rc[c, k, s] = -np.inf
                    continue
                rc[c, k, s] = (
                    profit[c, k, s]
                    - y_cps[c, s]
                    - y_chan[c, s] * hold[c, k, s]
                    - y_agent[s] * agent_coef[c, k, s]
                    - y_supply[k]
                    - y_slot[k, s]
                    - y_carrier[c]
                    - y_budget * cost[c, k, s]
                )
    n_added = 0
    best_out = -np.inf
    for k in range(n_k):
        for s in range(n_s):
            for _ in range(max_add):
                best = tol
                arg = -1
                for c in range(n_c):
                    if in_master[c, k, s] or add[c, k, s]:
                        continue
                    if rc[c, k, s] > best_out:
                        best_out = rc[c, k, s]
                    if rc[c, k, s] > best:
                        best = rc[c, k, s]
                        arg = c
                if arg < 0:
                    break
                add[arg, k, s] = True
                n_added += 1
    return n_added, best_out


@njit(cache=True)
def _greedy_split(value, allowed, demand, capacity, fallback, out):
    """Fill per-carrier capacities with per-segment demand, best marginal value first.

    value, allowed, fallback: (C, K); demand: (K,); capacity: (C,); out: (K, C) shares.
    Demand the greedy cannot place (coverage mismatch) follows ``fallback`` (the plan's
    own split); a segment with no demand but an allowed carrier goes 100 % to its best one.
    """
    n_c, n_k = value.shape
    flat = np.empty(n_c * n_k)
    for c in range(n_c):
        for k in range(n_k):
            flat[c * n_k + k] = value[c, k] if allowed[c, k] else -np.inf
    order = np.argsort(-flat)
    left_d = demand.copy()
    left_c = capacity.copy()
    for i in range(n_k):
        for c in range(n_c):
            out[i, c] = 0.0
    for idx in order:
        if flat[idx] == -np.inf:
            break
        c = idx // n_k
        k = idx % n_k
        q = min(left_d[k], left_c[c])
        if q > 0.0:
            out[k, c] += q
            left_d[k] -= q
            left_c[c] -= q
    for k in range(n_k):
        if left_d[k] > 0.0:
            tot = 0.0
            for c in range(n_c):
                tot += fallback[c, k]
            if tot > 0.0:
                for c in range(n_c):
                    out[k, c] += left_d[k] * fallback[c, k] / tot
        row = 0.0
        for c in range(n_c):
            row += out[k, c]
        if row > 0.0:
            for c in range(n_c):
                out[k, c] /= row
        else:
            best = -np.inf
            arg = -1
            for c in range(n_c):
                if allowed[c, k] and value[c, k] > best:
                    best = value[c, k]
                    arg = c
            if arg >= 0:
                out[k, arg] = 1.0
