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

# Columns of every count table: decayed sums of attempts, answered, human, machine.
N_STATS = 4
# Levels of the back-off tree, leaf first: 0 (c,r,p,n,s,a), 1 (c,r,p,n,s), 2 (c,n,s),
# 3 (c,n), 4 (c); the root (global) is kept apart as level 5.
N_LEVELS = 6

_LN2 = np.log(2.0)

# Outcome codes (smartdial.outcomes.Outcome), repeated as plain ints for Numba.
_MACHINE = 2
_N_OUTCOMES = 8
_CONTACT = 0


# Rows are handled in chunks: a compute pass (validate, leaf id, weight, the small
# ring and handle tables) into chunk-sized scratch, then a tight scatter-add into
# the leaf table. The leaf table (tens of MB) is far larger than the caches, so the
# scatter is bound by cache misses: it prefetches the row _PREFETCH_AHEAD updates
# ahead (faster here than grouping the chunk by leaf-id block first, which cost an
# extra pass over the chunk; large NumPy arrays sit on huge pages, so TLB misses
# are few).
_CHUNK_ROWS = 1 << 16
_PREFETCH_AHEAD = 24


@intrinsic
def _prefetch_row(typingctx, table, row):
    """Hint the CPU to fetch table[row, 0] for writing (llvm.prefetch); no effect
    on results."""
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
        # rw = 1 (write), locality = 3 (keep in all levels), data cache.
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _update_kernel(
    carrier, region, product, network, slot, bucket, outcome, t_s, ring_s, talk_s,
    dims, t_ref, half_life_s, t_max, leaves, ring, handle, bad,
):
    """Add each well-formed row, weighted 2**((t - t_ref)/half_life), to the leaf table.

    `leaves` (n_segments, 4): attempts, answered, human, machine. `ring`
    (carrier*network, 4): weight and weighted ring time over all attempts, then
    over answered ones; `handle` (product, 2): weight and weighted talk time over
    CONTACT rows. Malformed rows are skipped; `bad` gets [count, first row].
    The upper levels of the tree are derived from `leaves` by `_levels_kernel`.
    """
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    rate = _LN2 / half_life_s
    n_rows = outcome.shape[0]
    chunk = max(min(n_rows, _CHUNK_ROWS), 1)
    leaf = np.empty(chunk, np.int64)
    wgt = np.empty(chunk, np.float64)
    kind = np.empty(chunk, np.int8)
    n_bad = 0
    first_bad = -1
    for lo in range(0, n_rows, chunk):
        hi = min(lo + chunk, n_rows)
        m = 0
        for i in range(lo, hi):
            c = np.int64(carrier[i])
            r = np.int64(region[i])
            p = np.int64(product[i])
            n = np.int64(network[i])
            s = np.int64(slot[i])
            a = np.int64(bucket[i])
            o = outcome[i]
            t = t_s[i]
            if (
                c < 0 or c >= n_c or r < 0 or r >= n_r or p < 0 or p >= n_p
                or n < 0 or n >= n_n or s < 0 or s >= n_s or a < 0 or a >= n_a
                or o < 0 or o >= _N_OUTCOMES or not (t <= t_max)  # also rejects NaN
                or not np.isfinite(t)
            ):
                if first_bad < 0:
                    first_bad = i
                n_bad += 1
                continue
            w = np.exp((t - t_ref) * rate)
            # kind: 0 human, 1 machine, 2 not answered
            k = 0 if o < _MACHINE else (1 if o == _MACHINE else 2)
            leaf[m] = ((((c * n_r + r) * n_p + p) * n_n + n) * n_s + s) * n_a + a
            wgt[m] = w
            kind[m] = k
            m += 1
            # Branch-free on purpose: outcomes are unpredictable, selects are cheap.
            rs = np.float64(ring_s[i])
            ok = rs >= 0.0 and rs < np.inf
            wr = w if ok else 0.0
            rs = rs if ok else 0.0
            wa = wr if k < 2 else 0.0
            i3 = c * n_n + n
            ring[i3, 0] += wr
            ring[i3, 1] += wr * rs
            ring[i3, 2] += wa
            ring[i3, 3] += wa * rs
            ts = np.float64(talk_s[i])
            ok = o == _CONTACT and ts >= 0.0 and ts < np.inf
            wt = w if ok else 0.0
            ts = ts if ok else 0.0
            handle[p, 0] += wt
            handle[p, 1] += wt * ts
        _scatter(leaf, wgt, kind, m, leaves)
    bad[0] = n_bad
    bad[1] = first_bad


@njit(cache=True, nogil=True, inline="always")
def _scatter(leaf, wgt, kind, m, leaves):
    for j in range(m):
        if j + _PREFETCH_AHEAD < m:
            _prefetch_row(leaves, leaf[j + _PREFETCH_AHEAD])
        i = leaf[j]
        w = wgt[j]
        k = kind[j]
        leaves[i, 0] += w
        leaves[i, 1] += w if k < 2 else 0.0
        leaves[i, 2] += w if k == 0 else 0.0
        leaves[i, 3] += w if k == 1 else 0.0


@njit(cache=True, nogil=True)
def _levels_kernel(dims, lvl0, lvl1, lvl2, lvl3, lvl4, root):
    """Overwrite levels 1-4 and the root with sums of the leaf table, one dense pass."""
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    lvl2[:] = 0.0
    i1 = 0
    for c in range(n_c):
        for _r in range(n_r):
            for _p in range(n_p):
                for n in range(n_n):
                    for s in range(n_s):
                        i2 = (c * n_n + n) * n_s + s
                        for j in range(4):
                            acc = 0.0
                            for a in range(n_a):
                                acc += lvl0[i1 * n_a + a, j]
                            lvl1[i1, j] = acc
                            lvl2[i2, j] += acc
                        i1 += 1
    lvl3[:] = 0.0
    for i2 in range(lvl2.shape[0]):
        for j in range(4):
            lvl3[i2 // n_s, j] += lvl2[i2, j]
    lvl4[:] = 0.0
    for i3 in range(lvl3.shape[0]):
        for j in range(4):
            lvl4[i3 // n_n, j] += lvl3[i3, j]
    root[:] = 0.0
    for c in range(n_c):
        for j in range(4):
            root[0, j] += lvl4[c, j]


@njit(cache=True, nogil=True)
def _table_kernel(
    dims, lvl0, lvl1, lvl2, lvl3, lvl4, root, scale, strength, prior, p_answer, p_human, p_machine,
):
    """Posterior means of every leaf, top-down, each tree node computed once.

    Outputs are flat (n_segments,) arrays; same shrinkage as `_posterior_kernel`.
    """
    n_c, n_r, n_p, n_n, n_s, n_a = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
    m = strength[5]
    tot = root[0, 0] * scale
    gh = (root[0, 2] * scale + m * prior[0]) / (tot + m)
    gm = (root[0, 3] * scale + m * prior[1]) / (tot + m)
    q4 = np.empty((n_c, 2))
    q3 = np.empty((n_c * n_n, 2))
    q2 = np.empty((n_c * n_n * n_s, 2))
    m = strength[4]
    for c in range(n_c):
        tot = lvl4[c, 0] * scale
        q4[c, 0] = (lvl4[c, 2] * scale + m * gh) / (tot + m)
        q4[c, 1] = (lvl4[c, 3] * scale + m * gm) / (tot + m)
    m = strength[3]
    for i3 in range(n_c * n_n):
        tot = lvl3[i3, 0] * scale
        q3[i3, 0] = (lvl3[i3, 2] * scale + m * q4[i3 // n_n, 0]) / (tot + m)
        q3[i3, 1] = (lvl3[i3, 3] * scale + m * q4[i3 // n_n, 1]) / (tot + m)
    m = strength[2]
    for i2 in range(n_c * n_n * n_s):
        tot = lvl2[i2, 0] * scale
        q2[i2, 0] = (lvl2[i2, 2] * scale + m * q3[i2 // n_s, 0]) / (tot + m)
        q2[i2, 1] = (lvl2[i2, 3] * scale + m * q3[i2 // n_s, 1]) / (tot + m)
    m1 = strength[1]
    m0 = strength[0]
    i1 = 0
    for c in range(n_c):
        for _r in range(n_r):
            for _p in range(n_p):
                for n in range(n_n):
                    for s in range(n_s):
                        i2 = (c * n_n + n) * n_s + s
                        tot = lvl1[i1, 0] * scale
                        h1 = (lvl1[i1, 2] * scale + m1 * q2[i2, 0]) / (tot + m1)
                        x1 = (lvl1[i1, 3] * scale + m1 * q2[i2, 1]) / (tot + m1)
                        for a in range(n_a):
                            i0 = i1 * n_a + a
                            tot = lvl0[i0, 0] * scale
                            h0 = (lvl0[i0, 2] * scale + m0 * h1) / (tot + m0)
                            x0 = (lvl0[i0, 3] * scale + m0 * x1) / (tot + m0)
                            p_answer[i0] = h0 + x0
                            p_human[i0] = h0
                            p_machine[i0] = x0
                        i1 += 1


@njit(cache=True, nogil=True)
def _posterior_kernel(
    seg, dims, lvl0, lvl1, lvl2, lvl3, lvl4, root, scale, strength, prior,
    mean_out, var_out,
):
    """Posterior of each leaf segment by shrinking down the back-off tree.

    At every level the Dirichlet prior over (human, machine, not answered) has
    mean = the parent's posterior mean and strength `strength[level]`; the root's
    prior mean is `prior` (human, machine). Counts are multiplied by `scale` (the
    decay from the reference epoch to now). `mean_out[k]` = (p_answer, p_human,
    p_machine); `var_out[k]` = variance of p_human, including the parent's
    uncertainty carried down (law of total variance, first order).
    """
    n_r, n_p, n_n, n_s, n_a = dims[1], dims[2], dims[3], dims[4], dims[5]
    m5 = strength[5]
    tot = root[0, 0] * scale
    root_h = (root[0, 2] * scale + m5 * prior[0]) / (tot + m5)
    root_m = (root[0, 3] * scale + m5 * prior[1]) / (tot + m5)
    root_v = root_h * (1.0 - root_h) / (tot + m5 + 1.0)
    for k in range(seg.shape[0]):
        i0 = seg[k]
        i1 = i0 // n_a
        s = i1 % n_s
        rest = i1 // n_s
        n = rest % n_n
        c = rest // (n_n * n_p * n_r)
        i3 = c * n_n + n
        i2 = i3 * n_s + s
        qh = root_h
        qm = root_m
        v = root_v
        for level in range(4, -1, -1):
            if level == 4:
                row = lvl4[c]
            elif level == 3:
                row = lvl3[i3]
            elif level == 2:
                row = lvl2[i2]
            elif level == 1:
                row = lvl1[i1]
            else:
                row = lvl0[i0]
            m = strength[level]
            tot = row[0] * scale
            shrink = m / (tot + m)
            qh = (row[2] * scale + m * qh) / (tot + m)
            qm = (row[3] * scale + m * qm) / (tot + m)
            v = qh * (1.0 - qh) / (tot + m + 1.0) + shrink * shrink * v
        mean_out[k, 0] = qh + qm
        mean_out[k, 1] = qh
        mean_out[k, 2] = qm
        var_out[k] = v
