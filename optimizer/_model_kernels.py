"""Numba kernels behind `optimizer.model`: the decayed scatter-add and the shrinkage chain.

Arrays in, arrays out, outputs preallocated by the caller; no validation here
(the public wrappers in `optimizer/model.py` do it). Importing this module
imports Numba, so `optimizer.model` imports it lazily.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Columns of every count table: decayed sums of attempts, answered, human, machine, first
# with the short half-life (columns 0-3), then with the long one (4-7).
N_STATS = 4
N_COLS = 2 * N_STATS
# Levels of the back-off tree, leaf first: 0 (c,r,p,n,s,a), 1 (c,r,p,n,s), 2 (c,n,s),
# 3 (c,n), 4 (c); the root (global) is kept apart as level 5.
N_LEVELS = 6

_LN2 = np.log(2.0)

# Outcome codes (smartdial.outcomes.Outcome), repeated as plain ints for Numba.
_MACHINE = 2
_N_OUTCOMES = 8
_CONTACT = 0
# An estimate's p_human + p_machine is capped here (p_long·θ can exceed 1).
_MAX_ANSWER = 0.999


# Rows are handled in chunks, in passes over chunk-sized scratch: both weights (SIMD);
# validate, add to the small ring and handle tables and compact (leaf id, kind, weights)
# in one pass over the columns; then a tight scatter-add into the leaf table. The leaf
# table (hundreds of MB) is far larger than the caches, so the scatter is bound by cache
# misses. It prefetches in two steps: a row _PREFETCH_FAR updates ahead into L2 (read),
# then _PREFETCH_AHEAD updates ahead into L1 for writing. The far step keeps more misses
# in flight than the L1 fill buffers allow (the update takes ~20% less time than with
# the near step alone; the far step alone, or as a write prefetch, is slower). Grouping
# the chunk by leaf-id block first cost an extra pass over the chunk; large NumPy arrays
# sit on huge pages, so TLB misses are few.
_CHUNK_ROWS = 1 << 16
_PREFETCH_AHEAD = 24
_PREFETCH_FAR = 128


def _prefetcher(write, locality):
    """An intrinsic (table, row) that hints the CPU to fetch table[row, 0] (llvm.prefetch:
    for writing if `write`; into L1 with `locality` 3, into L2 with 1); no effect on
    results."""

    @intrinsic
    def prefetch(typingctx, table, row):
        sig = types.void(table, row)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = context.cast(builder, args[1], signature.args[1], types.intp)
            ptr = cgutils.get_item_pointer2(
                context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
                cgutils.unpack_tuple(builder, ary.strides), aryty.layout,
                [idx, context.get_constant(types.intp, 0)],
            )
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0",
            )
            # the last argument: 1 = data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(write), i32(locality), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


_prefetch_row = _prefetcher(write=1, locality=3)  # the near step: into L1, for writing
_prefetch_far = _prefetcher(write=0, locality=1)  # the far step: into L2


@njit(cache=True, nogil=True)
def _update_kernel(
    carrier, region, product, network, slot, bucket, outcome, t_s, ring_s, talk_s,
    dims, t_ref, half_life_s, long_half_life_s, t_max, leaves, ring, handle, bad,
):
    """Add each well-formed row to both memories of its leaf row.

    `leaves` (n_segments, 8): attempts, answered, human, machine weighted
    2**((t - t_ref)/half_life_s) (short memory), then the same four weighted
    2**((t - t_ref)/long_half_life_s) (long memory): one 64-byte row, so both halves
    cost one cache miss. `ring` (carrier*network, 4): weight and weighted ring time
    over all attempts, then over answered ones; `handle` (product, 2): weight and
    weighted talk time over CONTACT rows; both long-weighted (durations do not drift
    within a day). Malformed rows are skipped; `bad` gets [count, first row].
    The upper levels of the tree are derived from `leaves` by `_levels_kernel`.
    """
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    rate = 1.0 / half_life_s
    rate_l = 1.0 / long_half_life_s
    n_rows = outcome.shape[0]
    chunk = max(min(n_rows, _CHUNK_ROWS), 1)
    leaf = np.empty(chunk, np.int64)
    kind = np.empty(chunk, np.int8)
    dt = np.empty(chunk, np.float64)
    wgt = np.empty((2, chunk), np.float64)
    scratch = np.empty(chunk, np.float64)
    n_bad = 0
    first_bad = -1
    for lo in range(0, n_rows, chunk):
        hi = min(lo + chunk, n_rows)
        # 1. both weights of every row, in a loop the compiler vectorises (a malformed
        # row's too: cheaper than compacting first; step 2 drops them)
        for j in range(hi - lo):
            dt[j] = t_s[lo + j] - t_ref
        _exp2_scaled(dt, hi - lo, rate, wgt[0], scratch)
        _exp2_scaled(dt, hi - lo, rate_l, wgt[1], scratch)
        # 2. validate; the good rows go to the small duration tables while their columns
        # are loaded, and are compacted (leaf id, kind, weights) for the scatter
        m = 0
        for i in range(lo, hi):
            c = np.int64(carrier[i])
            r = np.int64(region[i])
            p = np.int64(product[i])
            n = np.int64(network[i])
            s = np.int64(slot[i])
            a = np.int64(bucket[i])
            o = np.int64(outcome[i])
            t = t_s[i]
            if (
                _outside(c, n_c) or _outside(r, n_r) or _outside(p, n_p)
                or _outside(n, n_n) or _outside(s, n_s) or _outside(a, n_a)
                or _outside(o, _N_OUTCOMES) or not (t <= t_max)  # also rejects NaN
                or not np.isfinite(t)
            ):
                if first_bad < 0:
                    first_bad = i
                n_bad += 1
                continue
            leaf[m] = ((((c * n_r + r) * n_p + p) * n_n + n) * n_s + s) * n_a + a
            # kind: 0 human, 1 machine, 2 not answered
            k = 0 if o < _MACHINE else (1 if o == _MACHINE else 2)
            kind[m] = k
            wl = wgt[1, i - lo]
            wgt[0, m] = wgt[0, i - lo]  # m <= i - lo: compacting in place
            wgt[1, m] = wl
            m += 1
            # Branch-free on purpose: outcomes are unpredictable, selects are cheap.
            rs = np.float64(ring_s[i])
            ok = rs >= 0.0 and rs < np.inf
            wr = wl if ok else 0.0
            rs = rs if ok else 0.0
            wa = wr if k < 2 else 0.0
            i3 = c * n_n + n
            ring[i3, 0] += wr
            ring[i3, 1] += wr * rs
            ring[i3, 2] += wa
            ring[i3, 3] += wa * rs
            ts = np.float64(talk_s[i])
            ok = o == _CONTACT and ts >= 0.0 and ts < np.inf
            wt = wl if ok else 0.0
            ts = ts if ok else 0.0
            handle[p, 0] += wt
            handle[p, 1] += wt * ts
        # 3. the leaf rows
        _scatter(leaf, wgt, kind, m, leaves)
    bad[0] = n_bad
    bad[1] = first_bad


@njit(cache=True, nogil=True, inline="always")
def _outside(x, size):
    """x < 0 or x >= size (size > 0, x int64), in one unsigned compare: fewer
    instructions in the update's validation, which is bound by them."""
    return np.uint64(x) >= np.uint64(size)


@njit(cache=True, nogil=True, inline="always")
def _scatter(leaf, wgt, kind, m, leaves):
    for j in range(m):
        if j + _PREFETCH_FAR < m:
            _prefetch_far(leaves, leaf[j + _PREFETCH_FAR])
        if j + _PREFETCH_AHEAD < m:
            _prefetch_row(leaves, leaf[j + _PREFETCH_AHEAD])
        i = leaf[j]
        w = wgt[0, j]
        wl = wgt[1, j]
        k = kind[j]
        leaves[i, 0] += w
        leaves[i, 1] += w if k < 2 else 0.0
        leaves[i, 2] += w if k == 0 else 0.0
        leaves[i, 3] += w if k == 1 else 0.0
        leaves[i, 4] += wl
        leaves[i, 5] += wl if k < 2 else 0.0
        leaves[i, 6] += wl if k == 0 else 0.0
        leaves[i, 7] += wl if k == 1 else 0.0


# 2**x = 2**k · 2**f with k = round(x), |f| <= 1/2: Taylor series of e**(f ln 2) to
# degree 12 (error < 2e-16), and 2**k added to the exponent bits. Written as plain
# arithmetic so the loop compiles to SIMD code (libm's exp is a scalar call).
# Ages below -1000 half-lives clamp there (2**-1000, i.e. no weight at all).
_ROUND = 6755399441055744.0  # 1.5 * 2**52: x + _ROUND has round(x) in its low bits
_ROUND_BITS = 0x4338000000000000
_EXP2_COEF = tuple(float(_LN2**k / np.prod(np.arange(1, k + 1, dtype=float)))
                   for k in range(13))


@njit(cache=True, nogil=True, inline="always")
def _exp2_scaled(dt, m, rate, out, kbits):
    """out[:m] = 2**(dt[:m] * rate); `kbits` is scratch of at least m."""
    c = _EXP2_COEF
    for j in range(m):
        x = max(dt[j] * rate, -1000.0)
        big = x + _ROUND
        f = x - (big - _ROUND)
        p = c[12]
        p = p * f + c[11]
        p = p * f + c[10]
        p = p * f + c[9]
        p = p * f + c[8]
        p = p * f + c[7]
        p = p * f + c[6]
        p = p * f + c[5]
        p = p * f + c[4]
        p = p * f + c[3]
        p = p * f + c[2]
        p = p * f + c[1]
        out[j] = p * f + c[0]
        kbits[j] = big
    ob = out[:m].view(np.int64)
    kb = kbits[:m].view(np.int64)
    for j in range(m):
        ob[j] += (kb[j] - _ROUND_BITS) << 52


@njit(cache=True)
def _exp2_scaled_into(dt, rate):
    """2**(dt * rate) as `_update_kernel` computes its weights (for tests)."""
    out = np.empty(dt.shape[0])
    _exp2_scaled(dt, dt.shape[0], rate, out, np.empty(dt.shape[0]))
    return out


@njit(cache=True, nogil=True)
def _levels_kernel(dims, lvl0, lvl1, lvl2, lvl3, lvl4, root, cells, long1):
    """Overwrite levels 1-4, the root, `cells` and `long1` with sums of the leaf table, one
    dense pass. `cells` is not a tree level: the long attempts, human and machine answers of
    level 1 pooled over carriers, one row per (region, product, network, slot). `long1` is
    level 1's long attempts (column 4) again, contiguous: `_cell_shapes` reads only them,
    an eighth of the bytes of level 1's rows."""
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    lvl2[:] = 0.0
    cells[:] = 0.0
    n_cell = cells.shape[0]
    i1 = 0
    for c in range(n_c):
        for _r in range(n_r):
            for _p in range(n_p):
                for n in range(n_n):
                    for s in range(n_s):
                        i2 = (c * n_n + n) * n_s + s
                        for j in range(N_COLS):
                            acc = 0.0
                            for a in range(n_a):
                                acc += lvl0[i1 * n_a + a, j]
                            lvl1[i1, j] = acc
                            lvl2[i2, j] += acc
                        long1[i1] = lvl1[i1, 4]
                        i1 += 1
        # The carrier's block of level 1, just written (still in cache), adds to the cells.
        for ic in range(n_cell):
            row = lvl1[c * n_cell + ic]
            cells[ic, 0] += row[4]
            cells[ic, 1] += row[6]
            cells[ic, 2] += row[7]
    lvl3[:] = 0.0
    for i2 in range(lvl2.shape[0]):
        for j in range(N_COLS):
            lvl3[i2 // n_s, j] += lvl2[i2, j]
    lvl4[:] = 0.0
    for i3 in range(lvl3.shape[0]):
        for j in range(N_COLS):
            lvl4[i3 // n_n, j] += lvl3[i3, j]
    root[:] = 0.0
    for c in range(n_c):
        for j in range(N_COLS):
            root[0, j] += lvl4[c, j]


@njit(cache=True, nogil=True)
def _cell_shapes(dims, long1, lvl2, cells, s_long, m, qh, qm, ql2):
    """(b, qs): the long rate of every cell (region, product, network, slot) pooled over
    carriers, (human, machine) shrunk with strength `m` toward its (network, slot) and that
    toward (qh, qm); and each (carrier, network, slot)'s long rate `ql2` over its mean b on
    its own traffic (its attempts per cell; a uniform mean where it has none).

    qs·b is the level-1 prior mean: the parent's rate times how much better the cell
    answers than the carrier's average one there, read on every carrier's outcomes, so
    carriers serving different regions compare fairly.
    """
    n_c, n_r, n_p, n_n, n_s = dims[0], dims[1], dims[2], dims[3], dims[4]
    n_ns = n_n * n_s
    n_cell = cells.shape[0]
    base = np.zeros((n_ns, 3))
    for ic in range(n_cell):
        k = ic % n_ns
        for j in range(3):
            base[k, j] += cells[ic, j]
    for k in range(n_ns):
        d = base[k, 0] * s_long + m
        base[k, 1] = (base[k, 1] * s_long + m * qh) / d
        base[k, 2] = (base[k, 2] * s_long + m * qm) / d
    b = np.empty((n_cell, 2))
    flat = np.zeros((n_ns, 2))  # the uniform mean, for carriers without traffic
    for ic in range(n_cell):
        k = ic % n_ns
        inv = 1.0 / (cells[ic, 0] * s_long + m)
        for j in range(2):
            b[ic, j] = (cells[ic, j + 1] * s_long + m * base[k, j + 1]) * inv
            flat[k, j] += b[ic, j]
    qs = np.zeros((n_c * n_ns, 2))
    i1 = 0
    for c in range(n_c):
        for r in range(n_r):
            for p in range(n_p):
                for k in range(n_ns):
                    w = long1[i1]
                    ic = (r * n_p + p) * n_ns + k
                    qs[c * n_ns + k, 0] += w * b[ic, 0]
                    qs[c * n_ns + k, 1] += w * b[ic, 1]
                    i1 += 1
    for i2 in range(n_c * n_ns):
        w = lvl2[i2, 4]
        for j in range(2):
            bbar = qs[i2, j] / w if w > 0.0 else flat[i2 % n_ns, j] / (n_r * n_p)
            qs[i2, j] = ql2[i2, j] / bbar
    return b, qs


@njit(cache=True, nogil=True, inline="always")
def _shaped(qs, b):
    """The level-1 prior mean (human, machine) qs·b, scaled down together if their sum
    passes _MAX_ANSWER."""
    h = qs[0] * b[0]
    x = qs[1] * b[1]
    f = 1.0 if h + x <= _MAX_ANSWER else _MAX_ANSWER / (h + x)
    return h * f, x * f


@njit(cache=True, nogil=True, inline="always")
def _long_node(row, scale, m, qh, qm, v):
    """Dirichlet step of the long chain at one node: (p_human, p_machine, var p_human)
    from the node's long counts and its parent's posterior (qh, qm, v)."""
    tot = row[4] * scale
    d = tot + m
    h = (row[6] * scale + m * qh) / d
    x = (row[7] * scale + m * qm) / d
    shrink = m / d
    return h, x, h * (1.0 - h) / (d + 1.0) + shrink * shrink * v


@njit(cache=True, nogil=True, inline="always")
def _long_mean(row, scale, m, qh, qm):
    """`_long_node` without the variance."""
    inv = 1.0 / (row[4] * scale + m)
    return (row[6] * scale + m * qh) * inv, (row[7] * scale + m * qm) * inv


@njit(cache=True, nogil=True, inline="always")
def _theta_node(row, scale, eh, em, m, th, tm, vh, qh):
    """Gamma-Poisson step of the short-term correction at one node.

    O = the node's short-decayed human (machine) count, E = eh (em) its expected count
    under the long model, prior θ = the parent's (th, tm) with m·p̄ pseudo-expected
    answers, p̄ = E / n_short. Returns (θ_human, θ_machine, var θ_human). A node
    without short data keeps its parent's θ and adds the prior's own variance
    θ/(m·qh) (qh: the node's long rate), the limit of the formula as its data vanish.
    """
    # With p̄ = E/n: θ = (n·O/E + m·θ_parent) / (n + m), and E + m·p̄ = E·(n + m)/n.
    n = row[0] * scale
    if n > 0.0 and eh > 0.0:
        inv = 1.0 / (n + m)
        shrink = m * inv
        th0 = (n * (row[2] * scale) / eh + m * th) * inv
        v = th0 * n * inv / eh + shrink * shrink * vh
    else:
        th0 = th
        v = vh + th / (m * max(qh, 1e-12))
    tm0 = tm
    if n > 0.0 and em > 0.0:
        tm0 = (n * (row[3] * scale) / em + m * tm) / (n + m)
    return th0, tm0, v


@njit(cache=True, nogil=True)
def _table_kernel(
    dims, lvl0, lvl1, lvl2, lvl3, lvl4, root, cells, long1, s_short, s_long, m_long, m_short,
    prior,
    p_answer, p_human, p_machine, scratch, var_human, want_var,
):
    """Two-timescale estimate of every leaf, dense passes, each tree node computed once.

    1. Long chain, top-down: Dirichlet back-off over the long columns (strengths
       `m_long`, root prior mean `prior`; level 1's prior mean shaped by its cell, see
       `_cell_shapes`) gives p_long (human, machine) per node and leaf. The same pass sums
       the expected short-term answers E(v) = Σ_leaves n_short(leaf)·p_long(leaf) per
       node (levels 1 and 2 directly, 3 to the root from level 2).
    2. Short-term correction, top-down: θ(v) = (O(v) + m·p̄·θ(parent)) / (E(v) + m·p̄)
       per node, θ(root's parent) = 1, strengths `m_short`; a leaf's estimate is
       p_long·θ, human and machine each, scaled down together when their sum
       exceeds 0.999. With `want_var`, `var_human` gets the first-order variance
       θ²·var(p_long) + p_long²·var(θ) (each chain carries its parent's variance down).
    Outputs are flat (n_segments,) arrays; `scratch` is one more, overwritten. The
    first pass parks per leaf the two terms of p_long·θ = a + b·θ(level 1) for human
    and machine in the outputs and `scratch`, so the second pass reads 32 bytes a leaf
    instead of its 64-byte count row (both passes are bound by memory bandwidth).
    Counts are multiplied by `s_short` / `s_long` (the decay from the reference epoch
    to now).
    """
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    n1 = lvl1.shape[0]
    n2 = n_c * n_n * n_s
    n3 = n_c * n_n
    # ---- 1. long chain: root and the small levels
    l5h, l5m, l5v = _long_node(root[0], s_long, m_long[5], prior[0], prior[1], 0.0)
    ql4 = np.empty((n_c, 3))
    ql3 = np.empty((n3, 3))
    ql2 = np.empty((n2, 3))
    for c in range(n_c):
        ql4[c, 0], ql4[c, 1], ql4[c, 2] = _long_node(lvl4[c], s_long, m_long[4], l5h, l5m, l5v)
    for i3 in range(n3):
        q = ql4[i3 // n_n]
        ql3[i3, 0], ql3[i3, 1], ql3[i3, 2] = _long_node(lvl3[i3], s_long, m_long[3],
                                                       q[0], q[1], q[2])
    for i2 in range(n2):
        q = ql3[i2 // n_s]
        ql2[i2, 0], ql2[i2, 1], ql2[i2, 2] = _long_node(lvl2[i2], s_long, m_long[2],
                                                       q[0], q[1], q[2])
    b, qs = _cell_shapes(dims, long1, lvl2, cells, s_long, m_long[1], l5h, l5m, ql2)
    # ---- 1b. leaves, and E summed bottom-up
    e1 = np.empty((n1, 2))
    e2 = np.zeros((n2, 2))
    m0 = m_long[0]
    ms0 = m_short[0]
    i1 = 0
    for c in range(n_c):
        for r in range(n_r):
            for p in range(n_p):
                for n in range(n_n):
                    for s in range(n_s):
                        i2 = (c * n_n + n) * n_s + s
                        qh, qm = _shaped(qs[i2], b[((r * n_p + p) * n_n + n) * n_s + s])
                        if want_var:
                            # The prior mean is the parent's times a factor: so is its sd.
                            f = qh / ql2[i2, 0]
                            h1, x1, v1 = _long_node(lvl1[i1], s_long, m_long[1],
                                                    qh, qm, ql2[i2, 2] * f * f)
                        else:
                            h1, x1 = _long_mean(lvl1[i1], s_long, m_long[1], qh, qm)
                            v1 = 0.0
                        eh = 0.0
                        em = 0.0
                        for a in range(n_a):
                            i0 = i1 * n_a + a
                            row = lvl0[i0]
                            # _long_node written out, one division per leaf
                            inv = 1.0 / (row[4] * s_long + m0)
                            h0 = (row[6] * s_long + m0 * h1) * inv
                            x0 = (row[7] * s_long + m0 * x1) * inv
                            ns = row[0] * s_short
                            eh += ns * h0
                            em += ns * x0
                            # θ at a leaf, where p̄ = E/n = p_long: p_long·θ =
                            # (O + m·p_long·θ(parent)) / (n + m), also when n = 0.
                            invs = 1.0 / (ns + ms0)
                            p_answer[i0] = row[2] * s_short * invs
                            p_human[i0] = ms0 * h0 * invs
                            p_machine[i0] = row[3] * s_short * invs
                            scratch[i0] = ms0 * x0 * invs
                            if want_var:
                                var_human[i0] = (h0 * (1.0 - h0) * inv / (1.0 + inv)
                                                 + (m0 * inv) * (m0 * inv) * v1)
                        e1[i1, 0] = eh
                        e1[i1, 1] = em
                        e2[i2, 0] += eh
                        e2[i2, 1] += em
                        i1 += 1
    e3 = np.zeros((n3, 2))
    for i2 in range(n2):
        e3[i2 // n_s, 0] += e2[i2, 0]
        e3[i2 // n_s, 1] += e2[i2, 1]
    e4 = np.zeros((n_c, 2))
    for i3 in range(n3):
        e4[i3 // n_n, 0] += e3[i3, 0]
        e4[i3 // n_n, 1] += e3[i3, 1]
    e5h = 0.0
    e5m = 0.0
    for c in range(n_c):
        e5h += e4[c, 0]
        e5m += e4[c, 1]
    # ---- 2. short-term correction θ, top-down
    t5h, t5m, t5v = _theta_node(root[0], s_short, e5h, e5m, m_short[5], 1.0, 1.0, 0.0, l5h)
    t4 = np.empty((n_c, 3))
    t3 = np.empty((n3, 3))
    t2 = np.empty((n2, 3))
    for c in range(n_c):
        t4[c, 0], t4[c, 1], t4[c, 2] = _theta_node(lvl4[c], s_short, e4[c, 0], e4[c, 1],
                                                   m_short[4], t5h, t5m, t5v, ql4[c, 0])
    for i3 in range(n3):
        t = t4[i3 // n_n]
        t3[i3, 0], t3[i3, 1], t3[i3, 2] = _theta_node(lvl3[i3], s_short, e3[i3, 0], e3[i3, 1],
                                                      m_short[3], t[0], t[1], t[2], ql3[i3, 0])
    for i2 in range(n2):
        t = t3[i2 // n_s]
        t2[i2, 0], t2[i2, 1], t2[i2, 2] = _theta_node(lvl2[i2], s_short, e2[i2, 0], e2[i2, 1],
                                                      m_short[2], t[0], t[1], t[2], ql2[i2, 0])
    i1 = 0
    for c in range(n_c):
        for r in range(n_r):
            for p in range(n_p):
                for n in range(n_n):
                    for s in range(n_s):
                        i2 = (c * n_n + n) * n_s + s
                        t = t2[i2]
                        row1 = lvl1[i1]
                        h1 = 1.0  # the node's long rate: only a variance reads it
                        if want_var:
                            qh, qm = _shaped(qs[i2], b[((r * n_p + p) * n_n + n) * n_s + s])
                            h1, _ = _long_mean(row1, s_long, m_long[1], qh, qm)
                        t1h, t1m, t1v = _theta_node(row1, s_short, e1[i1, 0], e1[i1, 1],
                                                    m_short[1], t[0], t[1], t[2], h1)
                        for a in range(n_a):
                            i0 = i1 * n_a + a
                            b_h = p_human[i0]
                            ph = p_answer[i0] + b_h * t1h
                            pm = p_machine[i0] + scratch[i0] * t1m
                            tot = ph + pm
                            f = 1.0 if tot <= _MAX_ANSWER else _MAX_ANSWER / tot
                            p_human[i0] = ph * f
                            p_machine[i0] = pm * f
                            p_answer[i0] = (ph + pm) * f
                            if want_var:
                                ns = lvl0[i0, 0] * s_short
                                invs = 1.0 / (ns + ms0)
                                lh = b_h / (ms0 * invs)
                                t0h = ph / lh
                                if ns > 0.0:
                                    t0v = t0h * invs / lh + (ms0 * invs) * (ms0 * invs) * t1v
                                else:
                                    t0v = t1v + t1h / (ms0 * lh)
                                var_human[i0] = f * f * (
                                    t0h * t0h * var_human[i0] + lh * lh * t0v)
                        i1 += 1
