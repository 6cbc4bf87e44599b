"""ContactModel: kernels against a naive twin, shrinkage, decay,
exploration, checkpoints and warm start from Parquet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.history import INDEX_COLUMNS, OutcomeBatch, read_history, write_day
from optimizer.model import ContactModel
from smartdial.outcomes import Outcome

SHAPE = (3, 2, 2, 2, 3, 2)
ROOT_PRIOR = (1 / 3, 1 / 3)
DAY0 = 1_750_000_000.0  # some Unix time, seconds


# ------------------------------------------------------------------ helpers


def make_batch(rng, n, shape=SHAPE, t0=0.0, t1=100.0, p_human=0.2, p_machine=0.1,
               bad_fraction=0.0, **fixed):
    """Random outcomes; `fixed` pins index columns (e.g. carrier=1)."""
    cols = {name: rng.integers(0, size, n) for name, size in zip(INDEX_COLUMNS, shape, strict=True)}
    for name, value in fixed.items():
        cols[name] = np.full(n, value)
    u = rng.random(n)
    outcome = np.where(u < p_human, Outcome.CONTACT,
                       np.where(u < p_human + p_machine, Outcome.MACHINE, Outcome.NO_ANSWER))
    if bad_fraction:
        bad = rng.random(n) < bad_fraction
        outcome = np.where(bad & (rng.random(n) < 0.5), 9, outcome)
        cols["slot"] = np.where(bad & (outcome != 9), shape[4] + 1, cols["slot"])
    return OutcomeBatch(
        **cols, outcome=outcome, t_s=np.sort(rng.uniform(t0, t1, n)),
        ring_s=rng.uniform(0, 30, n), talk_s=rng.uniform(30, 300, n),
    )


def naive_counts(batches, shape, now_s, half_life_s, long_half_life_s=259_200.0):
    """Per segment tuple: [attempts, answered, human, machine] decayed to now_s with the
    short half-life, then the same four with the long one."""
    counts: dict[tuple, list[float]] = {}
    for batch in batches:
        for i in range(len(batch)):
            seg = tuple(int(getattr(batch, name)[i]) for name in INDEX_COLUMNS)
            o = int(batch.outcome[i])
            t = float(batch.t_s[i])
            if not all(0 <= x < s for x, s in zip(seg, shape, strict=True)) or not 0 <= o < 8:
                continue
            row = counts.setdefault(seg, [0.0] * 8)
            for half, hl in enumerate((half_life_s, long_half_life_s)):
                w = 2.0 ** ((t - now_s) / hl)
                row[4 * half + 0] += w
                row[4 * half + 1] += w * (o in (0, 1, 2))
                row[4 * half + 2] += w * (o in (0, 1))
                row[4 * half + 3] += w * (o == 2)
    return counts


LEVEL_KEYS = [
    lambda s: s,
    lambda s: s[:5],
    lambda s: (s[0], s[3], s[4]),
    lambda s: (s[0], s[3]),
    lambda s: (s[0],),
    lambda s: (),
]


def _node_sums(counts, level, key):
    tot = np.zeros(8)
    for s, row in counts.items():
        if LEVEL_KEYS[level](s) == key:
            tot += row
    return tot


def _cell_shape(counts, shape, m, root, seg):
    """b / bbar of `seg`'s level-1 node (human, machine): its cell (region, product,
    network, slot) pooled over carriers against the carrier's traffic-weighted mean cell."""
    def pooled(match):
        tot = np.zeros(8)
        for key, row in counts.items():
            if match(key):
                tot += row
        return tot

    def rate(tot, prior):
        return (tot[6:8] + m * prior) / (tot[4] + m)

    c, _, _, n, s = seg[:5]
    base = rate(pooled(lambda k: k[3:5] == (n, s)), np.asarray(root))
    b = {(r, p): rate(pooled(lambda k, r=r, p=p: k[1:5] == (r, p, n, s)), base)
         for r in range(shape[1]) for p in range(shape[2])}
    w = {rp: pooled(lambda k, rp=rp: k[:5] == (c, *rp, n, s))[4] for rp in b}
    total = sum(w.values())
    bbar = sum(w[rp] * b[rp] for rp in b) / total if total > 0 else sum(b.values()) / len(b)
    return b[seg[1:3]] / bbar


def naive_estimate(counts, shape, strength, short_strength=None):
    """The two-timescale estimate of every leaf, written out node by node.

    Returns {segment: (p_answer, p_human, p_machine, var p_human)}. Long chain: Dirichlet
    back-off over the long counts, the level-1 prior mean shaped by its cell (see
    `_cell_shape`); short correction: O/E ratios shrunk down the tree (Gamma prior with m·p̄
    pseudo-expected answers around the parent's θ, p̄ = E/n_short); estimate p_long·θ capped
    at p_human + p_machine = 0.999.
    """
    m_long = np.broadcast_to(np.asarray(strength, float), (6,))
    m_short = m_long if short_strength is None else np.broadcast_to(
        np.asarray(short_strength, float), (6,))
    leaves = all_segments(shape)
    # Long chain: per leaf, the (h, m, var) of every level from the root down.
    long_chain = {}
    for seg in leaves:
        qh, qm, v = *ROOT_PRIOR, 0.0
        chain = {}
        for level in range(5, -1, -1):
            tot = _node_sums(counts, level, LEVEL_KEYS[level](seg))
            m = m_long[level]
            if level == 1:
                fh, fm = _cell_shape(counts, shape, m, chain[5][:2], seg)
                f = min(1.0, 0.999 / (qh * fh + qm * fm))
                qh, qm, v = qh * fh * f, qm * fm * f, v * (fh * f) ** 2
            d = tot[4] + m
            qh, qm = (tot[6] + m * qh) / d, (tot[7] + m * qm) / d
            v = qh * (1 - qh) / (d + 1) + (m / d) ** 2 * v
            chain[level] = (qh, qm, v)
        long_chain[seg] = chain
    # Expected short-term answers per node under the long model.
    expect: dict[tuple, np.ndarray] = {}
    for seg in leaves:
        n_short = counts.get(seg, [0.0] * 8)[0]
        h0, m0, _ = long_chain[seg][0]
        for level in range(6):
            key = (level, LEVEL_KEYS[level](seg))
            expect[key] = expect.get(key, np.zeros(2)) + n_short * np.array([h0, m0])
    out = {}
    for seg in leaves:
        th, tm, vt = 1.0, 1.0, 0.0
        for level in range(5, -1, -1):
            key = LEVEL_KEYS[level](seg)
            tot = _node_sums(counts, level, key)
            eh, em = expect[(level, key)]
            n, m = tot[0], m_short[level]
            if n > 0 and eh > 0:
                pb = eh / n
                new_th = (tot[2] + m * pb * th) / (eh + m * pb)
                vt = new_th / (eh + m * pb) + (m * pb / (eh + m * pb)) ** 2 * vt
            else:
                new_th = th
                vt = vt + th / (m * long_chain[seg][level][0])
            if n > 0 and em > 0:
                pb = em / n
                tm = (tot[3] + m * pb * tm) / (em + m * pb)
            th = new_th
        lh, lm, lv = long_chain[seg][0]
        ph, pm = lh * th, lm * tm
        f = min(1.0, 0.999 / (ph + pm))
        out[seg] = (f * (ph + pm), f * ph, f * pm, f * f * (th * th * lv + lh * lh * vt))
    return out


def all_segments(shape=SHAPE):
    return [tuple(int(x) for x in ix) for ix in np.ndindex(*shape)]


# ----------------------------------------------------------- kernel vs twin


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(0, 120), min_size=1, max_size=3),
    half_life_s=st.sampled_from([5.0, 60.0, 1800.0]),
    long_half_life_s=st.sampled_from([100.0, 259_200.0]),
    strength=st.sampled_from([0.5, 5.0, 20.0]),
    short_strength=st.sampled_from([None, 2.0, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]),
)
def test_kernel_agrees_with_naive_twin_on_random_batches(
    seed, sizes, half_life_s, long_half_life_s, strength, short_strength
):
    rng = np.random.default_rng(seed)
    batches, t = [], 0.0
    for n in sizes:
        batches.append(make_batch(rng, n, t0=t, t1=t + 50.0, bad_fraction=0.1))
        t += 50.0
    model = ContactModel(SHAPE, half_life_s=half_life_s, long_half_life_s=long_half_life_s,
                         prior_strength=strength, short_strength=short_strength)
    for k, b in enumerate(batches):
        model.partial_fit(b, now_s=50.0 * (k + 1))
    counts = naive_counts(batches, SHAPE, 50.0 * len(batches), half_life_s, long_half_life_s)
    segs = all_segments()
    ids = model.segment_ids(*np.array(segs).T)
    got = np.stack([*model.predict(ids), model.predict_human_var(ids)], axis=1)
    twin = naive_estimate(counts, SHAPE, strength, short_strength)
    want = np.array([twin[s] for s in segs])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for memory, cols in (("short", slice(0, 4)), ("long", slice(4, 8))):
        leaf = model.decayed_counts(0, memory=memory)
        for s, row in counts.items():
            np.testing.assert_allclose(leaf[np.ravel_multi_index(s, SHAPE)], row[cols],
                                       rtol=1e-9)


def test_decay_weights_match_exp2_to_the_last_bits():
    """The update kernel's SIMD 2**x (polynomial and exponent bits) against NumPy's,
    over every age a weight can have, down to the clamp at -1000 half-lives."""
    from optimizer._model_kernels import _exp2_scaled_into

    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-1000.0, 2.0, 100_000), np.arange(-1000.0, 3.0, 0.5),
                        [-0.5, 0.5, -1e-300, 0.0, 1e-300]])
    got = _exp2_scaled_into(x, 1.0)
    np.testing.assert_allclose(got, np.exp2(x), rtol=4e-16, atol=0)
    assert _exp2_scaled_into(np.array([-1e6, -1020.0]), 1.0).tolist() == [2.0**-1000] * 2
    # the rate scales the age first: 2**(dt / half-life)
    np.testing.assert_allclose(_exp2_scaled_into(np.array([-3600.0]), 1 / 1800.0), [0.25],
                               rtol=4e-16)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    p_human=st.floats(0.0, 1.0),
    machine_share=st.floats(0.0, 1.0),
    half_life_s=st.sampled_from([1.0, 60.0, 1800.0]),
    now_s=st.floats(100.0, 1e6),
)
def test_estimates_are_probabilities(seed, n, p_human, machine_share, half_life_s, now_s):
    rng = np.random.default_rng(seed)
    model = ContactModel(SHAPE, half_life_s=half_life_s, long_half_life_s=600.0,
                         prior_strength=0.5, short_strength=0.5)
    model.partial_fit(make_batch(rng, n, p_human=p_human,
                                 p_machine=(1 - p_human) * machine_share), now_s=100.0)
    pa, ph, pm = model.predict_table(now_s)
    var = model.predict_human_var(np.arange(model.n_segments), now_s)
    for p in (pa, ph, pm):
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert (ph + pm <= 0.999 + 1e-12).all()
    np.testing.assert_allclose(pa, ph + pm, rtol=1e-12)
    assert np.isfinite(var).all() and (var >= 0).all()


def test_table_and_point_predictions_agree():
    rng = np.random.default_rng(1)
    model = ContactModel(SHAPE).partial_fit(make_batch(rng, 500), now_s=100.0)
    table = model.predict_table()
    point = model.predict(np.arange(model.n_segments))
    for t, p in zip(table, point, strict=True):
        np.testing.assert_allclose(t.ravel(), p, rtol=1e-12)
    np.testing.assert_allclose(table[0], table[1] + table[2], rtol=1e-12)


def test_large_batch_partitioned_path_matches_small_batches():
    shape = (4, 5, 3, 2, 48, 4)  # > one partition block, so big batches are partitioned
    rng = np.random.default_rng(2)
    batch = make_batch(rng, 70_000, shape=shape, t0=0, t1=3600)
    one = ContactModel(shape).partial_fit(batch, now_s=3600.0)
    many = ContactModel(shape)
    for lo in range(0, len(batch), 1000):
        many.partial_fit(batch.take(np.arange(lo, min(lo + 1000, len(batch)))), now_s=3600.0)
    np.testing.assert_allclose(one.counts_, many.counts_, rtol=1e-9)
    np.testing.assert_allclose(one.ring_, many.ring_, rtol=1e-9)


def test_rebasing_the_weight_epoch_changes_no_estimate():
    rng = np.random.default_rng(3)
    fast = ContactModel(SHAPE, half_life_s=1.0)  # 300 s = 300 half-lives: forces a rebase
    slow_ref = ContactModel(SHAPE, half_life_s=1.0)
    b1 = make_batch(rng, 200, t0=0, t1=10)
    b2 = make_batch(rng, 200, t0=295, t1=300)
    fast.partial_fit(b1, now_s=10.0).partial_fit(b2, now_s=300.0)
    assert fast.t_ref_ == 300.0
    slow_ref.partial_fit(OutcomeBatch.concat([b1, b2]), now_s=300.0)
    np.testing.assert_allclose(fast.predict(np.arange(fast.n_segments)),
                               slow_ref.predict(np.arange(fast.n_segments)), rtol=1e-9)


def test_malformed_rows_are_counted_and_skipped_not_raised():
    rng = np.random.default_rng(4)
    batch = make_batch(rng, 100)
    batch.outcome[3] = 42
    batch.carrier[7] = 99
    batch.t_s[9] = np.nan
    batch.t_s[11] = 1e12  # from the future
    model = ContactModel(SHAPE).partial_fit(batch, now_s=100.0)
    assert model.n_rejected_ == 4
    assert model.n_seen_ == 96
    good = np.setdiff1d(np.arange(100), [3, 7, 9, 11])
    want = np.sum(2.0 ** ((batch.t_s[good] - 100.0) / 1800.0))
    assert model.decayed_counts(5)[0, 0] == pytest.approx(want, rel=1e-12)


def test_batch_values_that_do_not_fit_the_column_type_become_invalid_not_wrapped():
    b = OutcomeBatch(
        carrier=np.array([2**40 + 1]), region=[0], product=[0], network=[0], slot=[0],
        attempt_bucket=[0], outcome=np.array([2**10]), t_s=[1.0], ring_s=[1.0], talk_s=[1.0],
    )
    assert b.carrier[0] == -1 and b.outcome[0] == -1


# ------------------------------------------------------------------ shrinkage


def test_sparse_segment_is_pulled_toward_its_parent():
    rng = np.random.default_rng(5)
    busy = make_batch(rng, 20_000, p_human=0.30, p_machine=0.1, attempt_bucket=0)
    # One attempt in a sibling segment, a contact: raw rate 100 %.
    sparse = make_batch(rng, 1, p_human=1.0, p_machine=0.0, attempt_bucket=1)
    model = ContactModel(SHAPE, prior_strength=20.0)
    model.partial_fit(OutcomeBatch.concat([busy, sparse]), now_s=100.0)
    seg = model.segment_ids(*[getattr(sparse, n)[0] for n in INDEX_COLUMNS])
    parent = model.decayed_counts(1)[seg // SHAPE[5]]
    parent_rate = parent[2] / parent[0]
    _, p_human, _ = model.predict(np.array([seg]))
    assert abs(p_human[0] - parent_rate) < 0.05
    assert p_human[0] < 0.5


def test_carriers_serving_different_regions_are_compared_in_the_same_cell():
    """Two equally good carriers; the good region (30 % against 10 %) is nearly all carrier
    0's traffic. Carrier 1's thin cell there borrows the region's shape from every carrier's
    outcomes, not its own average (10.5 %), so both read alike where both can go."""
    shape = (2, 2, 1, 1, 1, 1)
    rng = np.random.default_rng(8)
    parts = []
    for carrier, region, n, rate in ((0, 0, 4000, 0.3), (1, 0, 40, 0.3), (1, 1, 4000, 0.1)):
        parts.append(make_batch(rng, n, shape=shape, t0=0.0, t1=10.0, p_human=rate,
                                p_machine=0.0, carrier=carrier, region=region))
    model = ContactModel(shape, half_life_s=1.0, prior_strength=200.0)
    model.partial_fit(OutcomeBatch.concat(parts), now_s=10.0)
    # The short memory has forgotten it all (θ = 1): the long chain alone.
    _, p_human, _ = model.predict(model.segment_ids([0, 1], 0, 0, 0, 0, 0), now_s=600.0)
    assert p_human[1] / p_human[0] == pytest.approx(1.0, abs=0.1)
    assert p_human[0] == pytest.approx(0.3, abs=0.03)


def test_suggested_prior_strength_is_finite_where_children_differ():
    rng = np.random.default_rng(6)
    parts = [make_batch(rng, 5000, p_human=ph, carrier=c) for c, ph in enumerate((0.1, 0.3, 0.5))]
    model = ContactModel(SHAPE).partial_fit(OutcomeBatch.concat(parts), now_s=100.0)
    m = model.suggest_prior_strength()
    assert m.shape == (6,)
    assert np.isfinite(m[4]) and 0 < m[4] < 100  # carriers differ a lot: weak prior


# ---------------------------------------------------------------------- decay


def test_estimate_follows_a_shift_in_the_true_rate_within_two_half_lives():
    rng = np.random.default_rng(7)
    half = 600.0
    model = ContactModel(SHAPE, half_life_s=half)
    seg = model.segment_ids(0, 0, 0, 0, 0, 0)
    fixed = dict(zip(INDEX_COLUMNS, (0, 0, 0, 0, 0, 0), strict=True))
    t = 0.0
    for _ in range(60):  # 1 h at 40 %: steady state
        model.partial_fit(make_batch(rng, 50, t0=t, t1=t + 60, p_human=0.4, **fixed), t + 60)
        t += 60
    assert model.predict(np.array([seg]))[1][0] == pytest.approx(0.4, abs=0.05)
    for _ in range(int(2 * half / 60)):  # rate falls to 10 % for two half-lives
        model.partial_fit(make_batch(rng, 50, t0=t, t1=t + 60, p_human=0.1, **fixed), t + 60)
        t += 60
    # After 2 half-lives the old regime weighs 1/4: expect about 0.75*0.1 + 0.25*0.4.
    assert model.predict(np.array([seg]))[1][0] < 0.2


# ------------------------------------------------------------ two timescales

HOUR_RATES = (0.10, 0.20, 0.40)  # p_human by slot: the history's hour shape


def _day(rng, t0, hours, slots, level=1.0, per_hour=3000, **fixed):
    """`hours` hours of outcomes from t0, spread over `slots`, at HOUR_RATES × level."""
    parts = []
    for h in range(hours):
        for s in slots:
            parts.append(make_batch(rng, per_hour // len(slots), t0=t0 + 3600 * h,
                                    t1=t0 + 3600 * (h + 1), p_human=HOUR_RATES[s] * level,
                                    slot=s, **fixed))
    batch = OutcomeBatch.concat(parts)
    return batch.take(np.argsort(batch.t_s, kind="stable"))


def _slot_rate(model, slot, now):
    """Mean p_human over the leaves of one slot."""
    ph = model.predict_table(now)[1]
    return float(ph[:, :, :, :, slot, :].mean())


@pytest.mark.parametrize("level", [1.0, 0.6])
def test_history_hour_shape_survives_a_day_of_other_hours(tmp_path, level):
    """Warm from 7 days with all slots, then 10 h today in slots 0 and 1 only (at `level`
    times the history's rates): slot 2 still gets the history's rate times today's level,
    where a one-memory model has forgotten slot 2 and backs off to today's other hours."""
    rng = np.random.default_rng(15)
    today = DAY0 + 7 * 86_400
    paths = [write_day(tmp_path / f"d{d}.parquet",
                       _day(rng, today - d * 86_400, 10, (0, 1, 2), per_hour=30_000))
             for d in range(1, 8)]
    live = _day(rng, today, 10, (0, 1), level=level, per_hour=30_000)
    now = today + 10 * 3600
    rates = {}
    for name, long_half_life_s in (("two", 259_200.0), ("one", 600.0)):
        model = ContactModel(SHAPE, half_life_s=600.0, long_half_life_s=long_half_life_s)
        model.warm_start(paths, now_s=today)
        for lo in range(0, len(live), 500):  # minute-sized batches, as the service feeds it
            part = live.take(np.arange(lo, min(lo + 500, len(live))))
            model.partial_fit(part, now_s=float(part.t_s[-1]))
        rates[name] = [_slot_rate(model, s, now) for s in range(3)]
    want = np.array(HOUR_RATES) * level
    np.testing.assert_allclose(rates["two"][:2], want[:2], rtol=0.1)
    if level == 1.0:
        assert rates["two"][2] == pytest.approx(want[2], rel=0.1)
    else:
        # Today's level carries over to the hour not dialled yet, but not all the way: the
        # long memory (the offset) holds today's hours too, so θ under-reads today's fall
        # by today's share of the long memory (about a fifth here).
        assert want[2] < rates["two"][2] < want[2] + 0.3 * (HOUR_RATES[2] - want[2])
    assert rates["one"][2] < 0.75 * want[2]  # without the long memory the shape is gone


def _minute(rng, t, p0, n=600):
    """A minute of traffic over the three carriers at 30 % humans, carrier 0 at `p0`."""
    parts = [make_batch(rng, n // 3, t0=t, t1=t + 60, p_human=0.3 if c else p0, carrier=c)
             for c in range(3)]
    batch = OutcomeBatch.concat(parts)
    return batch.take(np.argsort(batch.t_s, kind="stable"))


def test_a_carrier_that_halves_shows_in_all_its_leaves_within_a_short_half_life():
    rng = np.random.default_rng(16)
    half = 600.0
    model = ContactModel(SHAPE, half_life_s=half)
    t = DAY0
    for d in (3, 2, 1):  # history: three days at the usual rates
        model.partial_fit(_minute(rng, t - d * 86_400, 0.3, n=30_000), t - d * 86_400 + 60)
    for _ in range(60):  # an hour today at the usual rates
        model.partial_fit(_minute(rng, t, 0.3), t + 60)
        t += 60
    before = model.predict_table(t)[1].copy()
    for _ in range(int(half // 60)):  # carrier 0 halves, for one short half-life
        model.partial_fit(_minute(rng, t, 0.15), t + 60)
        t += 60
    ratio = model.predict_table(t)[1] / before
    # After one half-life the short memory is half new: carrier 0's rate reads about
    # 0.75 of before, and every one of its leaves follows; the others barely move.
    assert 0.65 < ratio[0].mean() < 0.85
    assert ratio[0].max() < 0.95
    assert abs(ratio[1:].mean() - 1.0) < 0.05
    assert ratio[1:].min() > 0.85


def test_no_history_estimates_follow_todays_data():
    rng = np.random.default_rng(17)
    model = ContactModel(SHAPE, half_life_s=600.0)
    model.partial_fit(OutcomeBatch.empty(), DAY0)
    _, ph, pm = model.predict_table(DAY0)
    np.testing.assert_allclose(ph, 1 / 3)  # nothing seen: the root prior
    np.testing.assert_allclose(pm, 1 / 3)
    live = _day(rng, DAY0, 3, (0, 1, 2), per_hour=20_000)
    for lo in range(0, len(live), 2000):
        part = live.take(np.arange(lo, min(lo + 2000, len(live))))
        model.partial_fit(part, now_s=float(part.t_s[-1]))
    now = DAY0 + 3 * 3600
    np.testing.assert_allclose([_slot_rate(model, s, now) for s in range(3)], HOUR_RATES,
                               rtol=0.1)
    assert _slot_rate(model, 0, now) < _slot_rate(model, 1, now) < _slot_rate(model, 2, now)


# ---------------------------------------------------------------- exploration


def _recovering_carrier_model(exploration):
    """Carrier 0: incumbent at 30 %, lots of fresh data. Carrier 1: was 5 % hours ago,
    now recovering at 35 % with only a trickle of recent attempts. Both memories have
    the same half-life here, so the bad spell is six half-lives old in both."""
    rng = np.random.default_rng(8)
    model = ContactModel(SHAPE, half_life_s=1800.0, long_half_life_s=1800.0,
                         exploration=exploration, random_state=8)
    old = make_batch(rng, 3000, t0=0, t1=600, p_human=0.05, carrier=1)
    model.partial_fit(old, now_s=600.0)
    now = 600.0 + 3 * 3600.0  # six half-lives: the bad spell weighs 1/64
    fresh = make_batch(rng, 6000, t0=now - 1800, t1=now, p_human=0.30, carrier=0)
    trickle = make_batch(rng, 20, t0=now - 600, t1=now, p_human=0.35, carrier=1)
    model.partial_fit(OutcomeBatch.concat([fresh, trickle]), now_s=now)
    seg = model.segment_ids(np.array([0, 1]), 0, 0, 0, 0, 0)
    return model, seg


def test_thompson_gives_a_recovering_carrier_some_draws_above_the_incumbent():
    model, seg = _recovering_carrier_model("thompson")
    mean = model.predict(seg)[1]
    assert mean[1] < mean[0]  # greedy would never pick carrier 1
    draws = np.stack([model.sample(seg) for _ in range(2000)])
    wins = np.mean(draws[:, 1] > draws[:, 0])
    assert 0.02 < wins < 0.5


def test_ucb_bonus_is_larger_for_the_carrier_with_less_recent_data():
    model, seg = _recovering_carrier_model("ucb")
    mean = model.predict(seg)[1]
    bonus = model.sample(seg) - mean
    assert bonus[1] > 2 * bonus[0] > 0
    assert np.array_equal(model.set_params(exploration="none").sample(seg), mean)


def test_a_route_known_from_history_but_not_dialled_today_gets_wide_draws():
    rng = np.random.default_rng(9)
    model = ContactModel(SHAPE, half_life_s=600.0, exploration="thompson", random_state=9)
    history = [make_batch(rng, 20_000, t0=0, t1=36_000, p_human=0.3, carrier=c) for c in (0, 1)]
    model.partial_fit(OutcomeBatch.concat(history), now_s=36_000.0)
    now = 86_400.0 + 36_000.0  # a day later: the short memory has forgotten yesterday
    model.partial_fit(make_batch(rng, 3000, t0=now - 1800, t1=now, p_human=0.3, carrier=0), now)
    seg = model.segment_ids(np.array([0, 1]), 0, 0, 0, 0, 0)
    mean = model.predict(seg)[1]
    sd = np.sqrt(model.predict_human_var(seg))
    assert mean == pytest.approx([0.3, 0.3], abs=0.05)  # history still gives the level
    assert sd[1] > 1.5 * sd[0]  # but today's level of carrier 1 is unknown
    draws = np.stack([model.sample(seg) for _ in range(2000)])
    assert np.std(draws[:, 1]) > 1.5 * np.std(draws[:, 0])


def test_thompson_draws_are_reproducible_with_random_state():
    a, seg = _recovering_carrier_model("thompson")
    b, _ = _recovering_carrier_model("thompson")
    np.testing.assert_array_equal(a.sample(seg), b.sample(seg))


# --------------------------------------------------------------------- CUSUM


# ------------------------------------------------------- checkpoint and history


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    model = ContactModel(SHAPE, half_life_s=900.0, prior_strength=[1, 2, 3, 4, 5, 6],
                         long_half_life_s=5000.0, short_strength=(6, 5, 4, 3, 2, 1),
                         exploration="ucb", ucb_c=2.0)
    model.partial_fit(make_batch(rng, 300), now_s=100.0)
    path = model.save(tmp_path / "model.npz")
    back = ContactModel.load(path)
    assert back.get_params() == {**model.get_params(), "shape": SHAPE,
                                 "prior_strength": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                                 "short_strength": [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]}
    segs = np.arange(model.n_segments)
    np.testing.assert_array_equal(np.stack(back.predict(segs)), np.stack(model.predict(segs)))
    np.testing.assert_array_equal(back.sample(segs), model.sample(segs))
    for a, b in zip(back.mean_ring_s(), model.mean_ring_s(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (back.now_s_, back.t_ref_, back.n_seen_) == (model.now_s_, model.t_ref_, model.n_seen_)
    assert back.counts_.ctypes.data % 64 == 0


def test_a_one_memory_checkpoint_loads_as_both_memories(tmp_path, caplog):
    import json

    rng = np.random.default_rng(14)
    model = ContactModel(SHAPE, half_life_s=900.0).partial_fit(make_batch(rng, 300), 100.0)
    meta = {"format": "smartdial.contact_model/1", "t_ref_": model.t_ref_,
            "now_s_": model.now_s_, "n_seen_": model.n_seen_, "n_rejected_": 0,
            "params": {"shape": list(SHAPE), "half_life_s": 900.0, "prior_strength": 20.0,
                       "exploration": "thompson", "ucb_c": 1.0, "random_state": None}}
    old = tmp_path / "v1.npz"
    np.savez(old, meta=np.array(json.dumps(meta)), counts=model.counts_[:, :4],
             ring=model.ring_, handle=model.handle_)
    back = ContactModel.load(old)
    assert "contact_model/1" in caplog.text
    np.testing.assert_array_equal(back.counts_[:, 4:], model.counts_[:, :4])
    np.testing.assert_array_equal(back.decayed_counts(3), model.decayed_counts(3))
    assert back.long_half_life_s == 259_200.0
    np.savez(old, meta=np.array(json.dumps({**meta, "format": "other/1"})),
             counts=model.counts_, ring=model.ring_, handle=model.handle_)
    with pytest.raises(ValueError, match=r"not a smartdial\.contact_model/2 checkpoint"):
        ContactModel.load(old)


def test_warm_start_from_parquet_counts_and_skips_a_malformed_row(tmp_path):
    rng = np.random.default_rng(12)
    days = []
    for d in range(3):
        t0 = DAY0 + d * 86_400
        days.append(make_batch(rng, 400, t0=t0, t1=t0 + 36_000))
    days[1].slot[17] = 99  # index out of range
    days[2].outcome[5] = 12  # unknown outcome code
    paths = [write_day(tmp_path / f"day{d}.parquet", b) for d, b in enumerate(days)]
    now = DAY0 + 2 * 86_400 + 36_000
    model = ContactModel(SHAPE, half_life_s=6 * 3600.0).warm_start(paths, now_s=now)
    rej = model.warm_start_rejects_
    assert rej.count == 2
    assert rej.first_file == str(paths[1]) and rej.first_row == 17
    assert model.n_seen_ == 1198

    good = [b.take(np.setdiff1d(np.arange(400), bad)) for b, bad in
            zip(days, ([], [17], [5]), strict=True)]
    twin = ContactModel(SHAPE, half_life_s=6 * 3600.0).partial_fit(OutcomeBatch.concat(good), now)
    np.testing.assert_allclose(model.counts_, twin.counts_, rtol=1e-12)
    # Older days decay by their age: in the short memory day 0 weighs 2**-8 of today's per
    # attempt; in the long one (3-day half-life) a day-old row weighs 2**(-1/3) = 0.79.
    assert model.decayed_counts(5)[0, 0] < 400 * (1 + 2**-4 + 2**-8)
    want = sum(np.sum(2.0 ** ((b.t_s - now) / 259_200.0)) for b in good)
    assert model.decayed_counts(5, memory="long")[0, 0] == pytest.approx(want, rel=1e-12)
    assert want > 0.75 * 1198


def test_read_history_turns_nulls_into_rejects_and_keeps_unknown_times(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(13)
    batch = make_batch(rng, 10)
    table = pa.table({k: pa.array(v) for k, v in batch.columns().items()})
    carrier = table.column("carrier").to_pylist()
    carrier[4] = None
    ring = table.column("ring_s").to_pylist()
    ring[2] = None
    table = table.set_column(0, "carrier", pa.array(carrier, pa.int64()))
    table = table.set_column(table.column_names.index("ring_s"), "ring_s", pa.array(ring))
    pq.write_table(table, tmp_path / "d.parquet")
    back = read_history(tmp_path / "d.parquet", shape=SHAPE)
    assert len(back) == 9
    assert np.isnan(back.ring_s[2])


# --------------------------------------------------------------------- misc


def test_ring_and_handle_means():
    n = 1000
    z = np.zeros(n, dtype=int)
    answered = np.arange(n) % 2 == 0
    batch = OutcomeBatch(
        carrier=z, region=z, product=z, network=z, slot=z, attempt_bucket=z,
        outcome=np.where(answered, Outcome.CONTACT, Outcome.NO_ANSWER), t_s=np.full(n, 10.0),
        ring_s=np.where(answered, 8.0, 30.0), talk_s=np.where(answered, 120.0, np.nan),
    )
    model = ContactModel(SHAPE).partial_fit(batch, now_s=10.0)
    per_attempt, per_answer = model.mean_ring_s()
    assert per_attempt[0, 0] == pytest.approx(19.0, rel=1e-3)
    assert per_answer[0, 0] == pytest.approx(8.0, rel=1e-3)
    assert model.mean_handle_s()[0] == pytest.approx(120.0, rel=1e-3)


def test_importing_the_model_does_not_import_numba():
    code = "import sys, optimizer.model; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_predict_rejects_out_of_range_segments():
    model = ContactModel(SHAPE).partial_fit(OutcomeBatch.empty(), now_s=0.0)
    with pytest.raises(ValueError, match="out of range"):
        model.predict(np.array([model.n_segments]))
