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


def naive_counts(batches, shape, now_s, half_life_s):
    """Per segment tuple: decayed [attempts, answered, human, machine] at now_s."""
    counts: dict[tuple, list[float]] = {}
    for batch in batches:
        for i in range(len(batch)):
            seg = tuple(int(getattr(batch, name)[i]) for name in INDEX_COLUMNS)
            o = int(batch.outcome[i])
            t = float(batch.t_s[i])
            if not all(0 <= x < s for x, s in zip(seg, shape, strict=True)) or not 0 <= o < 8:
                continue
            w = 2.0 ** ((t - now_s) / half_life_s)
            row = counts.setdefault(seg, [0.0, 0.0, 0.0, 0.0])
            row[0] += w
            row[1] += w * (o in (0, 1, 2))
            row[2] += w * (o in (0, 1))
            row[3] += w * (o == 2)
    return counts


LEVEL_KEYS = [
    lambda s: s,
    lambda s: s[:5],
    lambda s: (s[0], s[3], s[4]),
    lambda s: (s[0], s[3]),
    lambda s: (s[0],),
    lambda s: (),
]


def naive_posterior(counts, seg, strength):
    """(p_answer, p_human, p_machine) of one segment tuple by the back-off chain."""
    qh, qm = ROOT_PRIOR
    for level in range(5, -1, -1):
        key = LEVEL_KEYS[level](seg)
        tot = [0.0, 0.0, 0.0, 0.0]
        for s, row in counts.items():
            if LEVEL_KEYS[level](s) == key:
                tot = [a + b for a, b in zip(tot, row, strict=True)]
        m = strength
        qh = (tot[2] + m * qh) / (tot[0] + m)
        qm = (tot[3] + m * qm) / (tot[0] + m)
    return qh + qm, qh, qm


def all_segments(shape=SHAPE):
    return [tuple(int(x) for x in ix) for ix in np.ndindex(*shape)]


# ----------------------------------------------------------- kernel vs twin


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(0, 120), min_size=1, max_size=3),
    half_life_s=st.sampled_from([5.0, 60.0, 1800.0]),
    strength=st.sampled_from([0.5, 5.0, 20.0]),
)
def test_kernel_agrees_with_naive_twin_on_random_batches(seed, sizes, half_life_s, strength):
    rng = np.random.default_rng(seed)
    batches, t = [], 0.0
    for n in sizes:
        batches.append(make_batch(rng, n, t0=t, t1=t + 50.0, bad_fraction=0.1))
        t += 50.0
    model = ContactModel(SHAPE, half_life_s=half_life_s, prior_strength=strength)
    for k, b in enumerate(batches):
        model.partial_fit(b, now_s=50.0 * (k + 1))
    counts = naive_counts(batches, SHAPE, 50.0 * len(batches), half_life_s)
    segs = all_segments()
    got = np.stack(model.predict(model.segment_ids(*np.array(segs).T)), axis=1)
    want = np.array([naive_posterior(counts, s, strength) for s in segs])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    leaf = model.decayed_counts(0)
    for s, row in counts.items():
        np.testing.assert_allclose(leaf[np.ravel_multi_index(s, SHAPE)], row, rtol=1e-9)


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


# ---------------------------------------------------------------- exploration


def _recovering_carrier_model(exploration):
    """Carrier 0: incumbent at 30 %, lots of fresh data. Carrier 1: was 5 % hours ago,
    now recovering at 35 % with only a trickle of recent attempts."""
    rng = np.random.default_rng(8)
    model = ContactModel(SHAPE, half_life_s=1800.0, exploration=exploration, random_state=8)
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


def test_thompson_draws_are_reproducible_with_random_state():
    a, seg = _recovering_carrier_model("thompson")
    b, _ = _recovering_carrier_model("thompson")
    np.testing.assert_array_equal(a.sample(seg), b.sample(seg))


# --------------------------------------------------------------------- CUSUM


# ------------------------------------------------------- checkpoint and history


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    model = ContactModel(SHAPE, half_life_s=900.0, prior_strength=[1, 2, 3, 4, 5, 6],
                         exploration="ucb", ucb_c=2.0)
    model.partial_fit(make_batch(rng, 300), now_s=100.0)
    path = model.save(tmp_path / "model.npz")
    back = ContactModel.load(path)
    assert back.get_params() == {**model.get_params(), "shape": SHAPE,
                                 "prior_strength": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}
    segs = np.arange(model.n_segments)
    np.testing.assert_array_equal(np.stack(back.predict(segs)), np.stack(model.predict(segs)))
    np.testing.assert_array_equal(back.sample(segs), model.sample(segs))
    for a, b in zip(back.mean_ring_s(), model.mean_ring_s(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (back.now_s_, back.t_ref_, back.n_seen_) == (model.now_s_, model.t_ref_, model.n_seen_)


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
    # Older days decay by their age: day 0 weighs 2**-8 of today's per attempt.
    assert model.decayed_counts(5)[0, 0] < 400 * (1 + 2**-4 + 2**-8)


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
