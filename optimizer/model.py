"""Contact-probability model: two memories of outcome counts per segment, shrunk along a tree.

Holds `ContactModel` (online estimator, Thompson/UCB exploration, checkpoints,
warm start from history; the change detector is `optimizer/drift.py`); it
never allocates traffic or touches the network. Numba loads on first use.

Segment = (carrier, region, product, network, slot, attempt_bucket); `network`
is the destination carrier of the number, `slot` the local time slot. A flat
segment id is ``np.ravel_multi_index(segment, shape)`` (C order).

Back-off tree, leaf first (level: key):
    0: (carrier, region, product, network, slot, attempt_bucket)
    1: (carrier, region, product, network, slot)
    2: (carrier, network, slot)
    3: (carrier, network)
    4: (carrier,)
    5: global
Two timescales: every leaf keeps its outcomes decayed twice, with a short
half-life (minutes: today's level, drift) and a long one (days: the shapes history
teaches, by hour, carrier × network, region, product). The estimate is the long
model times a short-term correction:

* long chain: at each node a Dirichlet over (human, machine, not answered) on the
  long counts, prior mean = the parent's posterior mean, strength fixed per level
  (`prior_strength`); gives p_long (human, machine) per node and leaf. At level 1 the
  prior mean is the parent's times the cell's shape b / b̄: b the long rate of the cell
  (region, product, network, slot) pooled over carriers (shrunk toward its network and
  slot), b̄ its mean over the carrier's own traffic there. A level-1 node is thin, and
  its parent averages over the regions the carrier serves: without the shape, a route
  that only serves good regions reads better, cell for cell, than one that serves all.
* short correction: per node the observed short-term answers O against the
  expected E = Σ_leaves n_short(leaf)·p_long(leaf) under it; the ratio θ = O/E is
  shrunk down the same tree (Poisson-Gamma: θ(v) = (O + m·p̄·θ(parent)) /
  (E + m·p̄), p̄ = E/n_short, strengths `short_strength`), θ = 1 above the root.
* estimate: p_human = p_long_human·θ_human(leaf), p_machine likewise (both scaled
  down together if their sum passes 0.999), p_answer = p_human + p_machine.

A carrier whose rate halves gets θ ≈ ½ at level 4 within minutes and every leaf of
it follows, while the hour shapes learnt from history survive a day of decay.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np

from optimizer.history import OutcomeBatch, Rejects, read_history

log = logging.getLogger(__name__)

Exploration = Literal["thompson", "ucb", "none"]

N_LEVELS = 6
_STATS = ("attempts", "answered", "human", "machine")
# Prior mean of the root, (human, machine): uniform over human / machine / not answered.
_ROOT_PRIOR = (1.0 / 3.0, 1.0 / 3.0)
# Outcomes stamped later than now_s + this are treated as malformed (clock skew).
FUTURE_TOLERANCE_S = 3600.0
# Re-base the weight epoch once now is this many half-lives past it (2**128 is far
# from float64 overflow, and old weights lose nothing they had not already lost).
_REBASE_HALF_LIVES = 128.0
_FORMAT = "smartdial.contact_model/2"
_FORMAT_V1 = "smartdial.contact_model/1"
_N_COLS = 8  # short attempts, answered, human, machine; then the same, long-decayed
_LINE = 64  # bytes: a leaf row (8 float64) is one cache line when the table is aligned


def _kernels():  # -> the kernels module, imported on first use
    from optimizer import _model_kernels

    return _model_kernels


def _aligned_zeros(rows: int, cols: int) -> np.ndarray:
    """Zeroed (rows, cols) float64 table whose data starts on a 64-byte boundary."""
    buf = np.zeros(rows * cols + _LINE // 8)
    skip = (-buf.ctypes.data % _LINE) // 8
    return buf[skip:skip + rows * cols].reshape(rows, cols)


class ContactModel:
    """Online estimate of P(answer), P(human), P(machine) per attempt, by segment.

    Parameters
    ----------
    shape : (n_carriers, n_regions, n_products, n_networks, n_slots, n_attempt_buckets)
    half_life_s : the short memory's counts lose half their weight after this many
        seconds (it sets how fast the estimate follows a drift within the day).
    long_half_life_s : the same for the long memory (default 3 days: yesterday
        weighs 0.79, a week ago 0.2); it holds the shapes the short-term
        correction multiplies.
    prior_strength : pseudo-attempts a node of the long chain borrows from its
        parent's posterior mean. One float for every level, or six (leaf level
        first, root last). Fixed, not estimated: method-of-moments estimates on
        decayed counts swing with the few segments that carry traffic early in
        the day, and a steady strength makes the allocation stable; see
        `suggest_prior_strength` for an empirical-Bayes estimate from history.
    short_strength : pseudo-attempts behind the short-term correction's prior at each
        level (θ of the parent), same forms; None: `prior_strength`. Stronger than the
        long chain's by default: while today's data sit in both memories, each attempt
        counts in both chains, and what varies within a day is mostly a carrier's or a
        route's level (upper levels, where traffic is thick), not the shapes.
    exploration : how `sample` scores segments: "thompson" draws p_human from its
        posterior, "ucb" adds `ucb_c` posterior standard deviations, "none" returns
        the posterior mean.
    random_state : seed or Generator for Thompson draws.

    Learned state (after `partial_fit`): `counts_` ((n_segments, 8) float64 leaf
    count table, 64-byte rows: attempts, answered, human, machine with the short
    half-life, then the same with the long one, scaled to epoch `t_ref_`; the
    upper levels are its sums, rebuilt in one dense pass when a prediction needs
    them after an update),
    `ring_` ((n_carriers*n_networks, 4): weight and ring-seconds over all attempts,
    then over answered), `handle_` ((n_products, 2): weight and talk-seconds over
    CONTACT outcomes), both with the long half-life, `now_s_`, `n_seen_`,
    `n_rejected_`.

    Decay is kept against one global epoch instead of a last-update time per
    segment: a row at time t adds weight 2**((t - t_ref_)/half_life) to the short
    half (2**((t - t_ref_)/long_half_life) to the long one), so every sum equals its
    value decayed to t_ref_, and multiplying by 2**((t_ref_ - now)/half_life)
    decays all of them to now at once. This is the same number as decaying each
    segment lazily when touched, without per-segment bookkeeping in the hot loop.

    Uncertainty (`predict_human_var`, `sample`): first order in the two factors,
    var(p_human) ≈ θ²·var(p_long) + p_long²·var(θ), where var(p_long) is the
    Dirichlet chain's (parent's variance carried down, shrunk; at level 1 scaled by the
    square of the cell's shape factor, as the prior mean is) and var(θ) the Gamma
    chain's (θ/(E + m·p̄) plus the parent's, shrunk). A node with no short-term data
    keeps its parent's θ and adds the prior's variance θ/(m·p_long): a route whose
    recent attempts have decayed away gets wide draws even when history knows it well.
    """

    def __init__(
        self,
        shape: Sequence[int],
        half_life_s: float = 1800.0,
        prior_strength: float | Sequence[float] = 20.0,
        long_half_life_s: float = 259_200.0,
        short_strength: float | Sequence[float] | None = 100.0,
        exploration: Exploration = "thompson",
        ucb_c: float = 1.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.shape = shape
        self.half_life_s = half_life_s
        self.prior_strength = prior_strength
        self.long_half_life_s = long_half_life_s
        self.short_strength = short_strength
        self.exploration = exploration
        self.ucb_c = ucb_c
        self.random_state = random_state

    # ----------------------------------------------------------------- params
    def get_params(self) -> dict[str, object]:
        return {
            "shape": self.shape,
            "half_life_s": self.half_life_s,
            "prior_strength": self.prior_strength,
            "long_half_life_s": self.long_half_life_s,
            "short_strength": self.short_strength,
            "exploration": self.exploration,
            "ucb_c": self.ucb_c,
            "random_state": self.random_state,
        }

    def set_params(self, **params: object) -> ContactModel:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"ContactModel has no parameter {name!r}")
            setattr(self, name, value)
        self._table_cache = None  # estimates depend on the strengths
        return self

    def _dims(self) -> np.ndarray:
        dims = np.asarray(self.shape, dtype=np.int64)
        if dims.shape != (6,) or (dims <= 0).any():
            raise ValueError(f"shape must be 6 positive sizes, got {self.shape!r}")
        return dims

    def _strength(self, short: bool = False) -> np.ndarray:
        name = "short_strength" if short and self.short_strength is not None else "prior_strength"
        value = getattr(self, name)
        m = np.broadcast_to(np.asarray(value, dtype=np.float64), (N_LEVELS,))
        if not (np.isfinite(m).all() and (m > 0).all()):
            raise ValueError(f"{name} must be positive, got {value!r}")
        return np.ascontiguousarray(m)

    def _check_hyper(self) -> None:
        for name in ("half_life_s", "long_half_life_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.exploration not in ("thompson", "ucb", "none"):
            raise ValueError(f"exploration must be thompson, ucb or none: {self.exploration!r}")
        self._strength()
        self._strength(short=True)

    @property
    def n_segments(self) -> int:
        return int(np.prod(self._dims()))

    def level_sizes(self) -> tuple[int, ...]:
        c, r, p, n, s, a = (int(x) for x in self._dims())
        return (c * r * p * n * s * a, c * r * p * n * s, c * n * s, c * n, c, 1)

    def segment_ids(self, *index: np.ndarray | int) -> np.ndarray:
        """Flat segment ids of six broadcastable index arrays (carrier ... attempt_bucket)."""
        if len(index) != 6:
            raise ValueError(f"segment_ids takes 6 index arrays, got {len(index)}")
        idx = np.broadcast_arrays(*index)
        return np.ravel_multi_index(tuple(idx), tuple(int(x) for x in self._dims())).astype(
            np.int64
        )

    # ------------------------------------------------------------------ state
    def _init_state(self, now_s: float) -> None:
        self._check_hyper()
        dims = self._dims()
        self.counts_ = _aligned_zeros(self.level_sizes()[0], _N_COLS)
        self._changed()
        self.ring_ = np.zeros((int(dims[0] * dims[3]), 4))
        self.handle_ = np.zeros((int(dims[2]), 2))
        self.t_ref_ = float(now_s)
        self.now_s_ = float(now_s)
        self.n_seen_ = 0
        self.n_rejected_ = 0

    def _is_fitted(self) -> bool:
        return hasattr(self, "counts_")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError("ContactModel is not fitted: call partial_fit or warm_start")

    def _changed(self) -> None:
        """The counts moved: upper levels and the cached leaf table are stale."""
        self._tree_stale = True
        self._table_cache = None

    def _rebase(self, t_new: float) -> None:
        short, long = self._scales(t_new)
        self.counts_[:, :4] *= short
        self.counts_[:, 4:] *= long
        self.ring_ *= long
        self.handle_ *= long
        self.t_ref_ = float(t_new)
        self._changed()

    def _tree(self) -> list[np.ndarray]:
        """Count tables of levels 0-5 (leaf first, 8 columns), upper levels rebuilt if stale;
        `_cells` (level 1 pooled over carriers) and `_long1` (its long attempts) with them."""
        self._check_fitted()
        if getattr(self, "_cells", None) is None:  # first use: the buffers, once
            _, r, p, n, s, _ = (int(x) for x in self._dims())
            self._upper = [np.empty((size, _N_COLS)) for size in self.level_sizes()[1:]]
            self._cells = np.empty((r * p * n * s, 3))
            self._long1 = np.empty(self.level_sizes()[1])
            self._tree_stale = True
        if self._tree_stale:
            u = self._upper
            _kernels()._levels_kernel(self._dims(), self.counts_, u[0], u[1], u[2], u[3], u[4],
                                      self._cells, self._long1)
            self._tree_stale = False
        return [self.counts_, *self._upper]

    def _scales(self, now_s: float | None) -> tuple[float, float]:
        """Decay factors (short, long) from the epoch `t_ref_` to `now_s`."""
        now = self.now_s_ if now_s is None else float(now_s)
        return (2.0 ** ((self.t_ref_ - now) / self.half_life_s),
                2.0 ** ((self.t_ref_ - now) / self.long_half_life_s))

    # -------------------------------------------------------------- learning
    def partial_fit(self, batch: OutcomeBatch, now_s: float) -> ContactModel:
        """Add a batch of outcomes observed up to `now_s` (seconds, Unix epoch).

        Malformed rows (index out of `shape`, unknown outcome code, time not
        finite or more than `FUTURE_TOLERANCE_S` after `now_s`) are skipped,
        counted in `n_rejected_` and logged; they never raise.
        """
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be finite, got {now_s!r}")
        if not self._is_fitted():
            self._init_state(now_s)
        self._check_hyper()
        self.now_s_ = max(self.now_s_, float(now_s))
        shortest = min(self.half_life_s, self.long_half_life_s)
        if self.now_s_ - self.t_ref_ > _REBASE_HALF_LIVES * shortest:
            self._rebase(self.now_s_)
        if len(batch) == 0:
            return self
        bad = np.zeros(2, dtype=np.int64)
        _kernels()._update_kernel(
            batch.carrier, batch.region, batch.product, batch.network, batch.slot,
            batch.attempt_bucket, batch.outcome, batch.t_s, batch.ring_s, batch.talk_s,
            self._dims(), self.t_ref_, float(self.half_life_s), float(self.long_half_life_s),
            float(now_s) + FUTURE_TOLERANCE_S, self.counts_, self.ring_, self.handle_, bad,
        )
        self._changed()
        n_bad = int(bad[0])
        self.n_seen_ += len(batch) - n_bad
        if n_bad:
            self.n_rejected_ += n_bad
            log.warning(
                "outcome rows skipped as malformed: count=%d first_row=%d total_rejected=%d",
                n_bad, int(bad[1]), self.n_rejected_,
            )
        return self

    def add_handle_times(self, product: np.ndarray, talk_s: np.ndarray,
                         t_s: np.ndarray) -> ContactModel:
        """Learn the talk (handle) seconds of CONTACT outcomes apart from their class, for
        attempts whose class `partial_fit` learnt at the answer, before the talk ended.
        Rows with a product out of range or a time or talk not finite are skipped."""
        self._check_fitted()
        p = np.asarray(product, np.int64)
        talk = np.asarray(talk_s, float)
        t = np.asarray(t_s, float)
        ok = (p >= 0) & (p < self.handle_.shape[0]) & np.isfinite(talk) & (talk >= 0) \
            & np.isfinite(t)
        w = np.exp2((t[ok] - self.t_ref_) / self.long_half_life_s)
        np.add.at(self.handle_, (p[ok], 0), w)
        np.add.at(self.handle_, (p[ok], 1), w * talk[ok])
        return self

    def rescale_human(self, carrier: int, ratio: float) -> ContactModel:
        """Multiply what the short memory holds of `carrier`'s human answers by `ratio`.

        For a detected change point (see `optimizer.drift`): the route's rate moved by a
        factor, everywhere at once, so its recent counts are moved with it instead of being
        forgotten (forgetting would pull it back to its parents' rate, not to the new one).
        Only the short memory: it sets the carrier's level now (θ), while the long memory
        holds the shapes and the carrier's usual level, which one incident should not
        rewrite for days (when the carrier recovers, the long model is still right).
        """
        self._check_fitted()
        if not (ratio >= 0 and math.isfinite(ratio)):
            raise ValueError(f"ratio must be finite and >= 0, got {ratio!r}")
        dims = self._dims()
        per_carrier = self.level_sizes()[0] // int(dims[0])
        rows = self.counts_[carrier * per_carrier:(carrier + 1) * per_carrier]
        human = np.minimum(rows[:, 2] * ratio, rows[:, 0] - rows[:, 3])
        rows[:, 1] += human - rows[:, 2]
        rows[:, 2] = human
        self._changed()
        return self

    def shift_time(self, delta_s: float) -> ContactModel:
        """Move the model's clock by `delta_s` seconds, every count keeping its age (to
        re-date a checkpoint, see `optimizer.checkpoint`)."""
        self._check_fitted()
        if not math.isfinite(delta_s):
            raise ValueError(f"delta_s must be finite, got {delta_s!r}")
        self.t_ref_ += float(delta_s)
        self.now_s_ += float(delta_s)
        self._table_cache = None
        return self

    def warm_start(
        self,
        paths: str | PathLike[str] | Iterable[str | PathLike[str]],
        now_s: float,
    ) -> ContactModel:
        """Reset the model and fit it from history day files (see `optimizer.history`).

        Every row keeps its own time: in the long memory older days weigh
        2**(-age/long_half_life_s), the short memory has all but forgotten them.
        Malformed rows are skipped and reported in `warm_start_rejects_` (count,
        first file, first row) and in the log.
        """
        rejects = Rejects()
        batch = read_history(paths, shape=tuple(int(x) for x in self._dims()), rejects=rejects)
        self._init_state(now_s)
        self.partial_fit(batch, now_s)
        self.warm_start_rejects_ = rejects
        self.n_rejected_ += rejects.count
        return self

    # ------------------------------------------------------------ prediction
    def _segments(self, segments: np.ndarray) -> np.ndarray:
        seg = np.ascontiguousarray(segments, dtype=np.int64)
        if seg.ndim != 1:
            raise ValueError(f"segments must be a 1-D array of flat ids, got shape {seg.shape}")
        if seg.size and (seg.min() < 0 or seg.max() >= self.level_sizes()[0]):
            raise ValueError("segment id out of range for shape " + repr(tuple(self.shape)))
        return seg

    def _run_table(self, now_s: float | None, flat: Sequence[np.ndarray], var: np.ndarray | None):
        lv = self._tree()
        short, long = self._scales(now_s)
        _kernels()._table_kernel(
            self._dims(), lv[0], lv[1], lv[2], lv[3], lv[4], lv[5], self._cells, self._long1,
            short, long, self._strength(), self._strength(short=True), np.asarray(_ROOT_PRIOR),
            flat[0], flat[1], flat[2], self._scratch(), np.empty(0) if var is None else var,
            var is not None,
        )

    def _scratch(self) -> np.ndarray:
        """A leaf-sized buffer the table kernel overwrites (kept: allocating ~8 bytes a
        segment on every refresh costs page faults)."""
        n = self.level_sizes()[0]
        if getattr(self, "_scratch_buf", None) is None or self._scratch_buf.size != n:
            self._scratch_buf = np.empty(n)
        return self._scratch_buf

    def _leaf_table(self, now_s: float | None) -> tuple[np.ndarray, ...]:
        """Flat (p_answer, p_human, p_machine, var p_human) of every leaf at `now_s`,
        cached until the counts change or another `now_s` is asked for."""
        self._check_fitted()
        now = self.now_s_ if now_s is None else float(now_s)
        cache = getattr(self, "_table_cache", None)
        if cache is None or cache[0] != now:
            n = self.level_sizes()[0]
            arrays = tuple(np.empty(n) for _ in range(4))
            self._run_table(now, arrays[:3], arrays[3])
            self._table_cache = cache = (now, arrays)
        return cache[1]

    def _posterior(self, segments: np.ndarray, now_s: float | None) -> tuple[np.ndarray, ...]:
        self._check_fitted()
        seg = self._segments(segments)
        table = self._leaf_table(now_s)
        return tuple(t[seg] for t in table)

    def predict(
        self, segments: np.ndarray, now_s: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Estimates (p_answer, p_human, p_machine) per attempt for flat segment ids.

        Counts are decayed to `now_s` (default: the latest `now_s` seen). Read from the
        whole leaf table (`predict_table`'s numbers), built once per `now_s` and update.
        """
        pa, ph, pm, _ = self._posterior(segments, now_s)
        return pa, ph, pm

    def predict_table(
        self,
        now_s: float | None = None,
        out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p_answer, p_human, p_machine) for every segment, each an array of `shape`.

        Same numbers as `predict(np.arange(n_segments))`, computed in dense passes with
        every tree node visited once (for the allocator's grids).
        `out`: three C-contiguous float64 arrays of `shape` to fill and return
        (saves allocating ~24 bytes per segment on every refresh).
        """
        self._check_fitted()
        shape = tuple(int(x) for x in self._dims())
        if out is None:
            out = tuple(np.empty(shape) for _ in range(3))
        elif len(out) != 3 or any(
            a.shape != shape or a.dtype != np.float64 or not a.flags.c_contiguous for a in out
        ):
            raise ValueError(f"out must be three C-contiguous float64 arrays of shape {shape}")
        now = self.now_s_ if now_s is None else float(now_s)
        cache = getattr(self, "_table_cache", None)
        if cache is not None and cache[0] == now:
            for a, t in zip(out, cache[1], strict=False):
                a.reshape(-1)[:] = t
        else:
            self._run_table(now, [a.reshape(-1) for a in out], None)
        return out[0], out[1], out[2]

    def predict_human_var(self, segments: np.ndarray, now_s: float | None = None) -> np.ndarray:
        """Variance of p_human (first order in p_long and θ, see the class docstring)."""
        return self._posterior(segments, now_s)[3]

    def sample(
        self,
        segments: np.ndarray,
        rng: np.random.Generator | None = None,
        now_s: float | None = None,
    ) -> np.ndarray:
        """Exploration score of p_human per segment, by `exploration`.

        thompson: one draw per segment from a Beta matched to the mean and variance
        of p_human (the variance includes the ancestors', so a carrier whose recent
        data has decayed away gets wide draws and is tried again);
        ucb: mean + ucb_c * sd, capped at 1; none: the mean.
        """
        _, mu, _, var = self._posterior(segments, now_s)
        if self.exploration == "none":
            return mu.copy()
        if self.exploration == "ucb":
            return np.minimum(mu + self.ucb_c * np.sqrt(var), 1.0)
        if rng is None:
            if not hasattr(self, "_rng"):
                self._rng = np.random.default_rng(self.random_state)
            rng = self._rng
        mu = np.clip(mu, 1e-9, 1.0 - 1e-9)
        kappa = np.maximum(mu * (1.0 - mu) / np.maximum(var, 1e-300) - 1.0, 1e-6)
        return rng.beta(mu * kappa, (1.0 - mu) * kappa)

    def mean_ring_s(self, now_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean ring seconds per attempt and per answered attempt, (n_carriers, n_networks).

        Families with little data lean on the all-family mean (strength 1
        attempt); NaN where there is no ring data at all.
        """
        self._check_fitted()
        dims = self._dims()
        f = self._scales(now_s)[1]
        out = []
        for w_col in (0, 2):
            w, x = self.ring_[:, w_col] * f, self.ring_[:, w_col + 1] * f
            total = w.sum()
            glob = x.sum() / total if total > 0 else np.nan
            out.append(((x + glob) / (w + 1.0)).reshape(int(dims[0]), int(dims[3])))
        return out[0], out[1]

    def mean_handle_s(self, now_s: float | None = None) -> np.ndarray:
        """Mean talk (handle) seconds of a CONTACT, per product, shrunk like `mean_ring_s`."""
        self._check_fitted()
        f = self._scales(now_s)[1]
        w, x = self.handle_[:, 0] * f, self.handle_[:, 1] * f
        total = w.sum()
        glob = x.sum() / total if total > 0 else np.nan
        return (x + glob) / (w + 1.0)

    def decayed_counts(self, level: int = 0, now_s: float | None = None,
                       memory: Literal["short", "long"] = "short") -> np.ndarray:
        """Count table of a tree level decayed to `now_s`: columns attempts, answered,
        human, machine; of the short memory (recent traffic) or the long one."""
        if memory not in ("short", "long"):
            raise ValueError(f"memory must be short or long, got {memory!r}")
        short, long = self._scales(now_s)
        if memory == "short":
            return self._tree()[level][:, :4] * short
        return self._tree()[level][:, 4:] * long

    def suggest_prior_strength(self, now_s: float | None = None) -> np.ndarray:
        """Empirical-Bayes (method of moments) prior strength per level, for p_human of
        the long chain (its counts).

        For each level the children's rates scatter around their parent's rate;
        between-child variance = observed weighted variance minus the binomial
        part, and strength = mean(p(1-p)) / between-variance - 1. Levels without
        enough spread return NaN. Meant for offline tuning, not the hot path.
        """
        tree = [self.decayed_counts(level, now_s, "long") for level in range(N_LEVELS)]
        out = np.full(N_LEVELS, np.nan)
        for level, parent in enumerate(self._parent_ids()):
            child, par = tree[level], tree[level + 1][parent]
            keep = child[:, 0] > 1.0
            if keep.sum() < 2:
                continue
            w = child[keep, 0]
            rate = child[keep, 2] / w
            q = par[keep, 2] / par[keep, 0]
            pq = q * (1.0 - q)
            between = (np.sum(w * (rate - q) ** 2) - pq.sum()) / w.sum()
            if between > 0:
                out[level] = max(np.sum(w * pq) / w.sum() / between - 1.0, 0.0)
        return out

    def _parent_ids(self) -> list[np.ndarray]:
        """For levels 0..4, the index of each node's parent in the next level."""
        c, r, p, n, s, a = (int(x) for x in self._dims())
        i1 = np.arange(c * r * p * n * s)
        cc, _, _, nn, ss = np.unravel_index(i1, (c, r, p, n, s))
        return [
            np.arange(c * r * p * n * s * a) // a,
            (cc * n + nn) * s + ss,
            np.arange(c * n * s) // s,
            np.arange(c * n) // n,
            np.zeros(c, dtype=np.int64),
        ]

    # ------------------------------------------------------------ checkpoint
    def save(self, path: str | PathLike[str]) -> Path:
        """Write learned arrays and hyper-parameters to one .npz file (atomic replace)."""
        self._check_fitted()
        path = Path(path)
        params = self.get_params()
        params["shape"] = [int(x) for x in self._dims()]
        for name in ("prior_strength", "short_strength"):
            ps = params[name]
            params[name] = ps if ps is None or np.isscalar(ps) else [float(x) for x in ps]
        if not (params["random_state"] is None or isinstance(params["random_state"], int)):
            params["random_state"] = None
        meta = {
            "format": _FORMAT,
            "params": params,
            "t_ref_": self.t_ref_,
            "now_s_": self.now_s_,
            "n_seen_": self.n_seen_,
            "n_rejected_": self.n_rejected_,
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), counts=self.counts_,
                     ring=self.ring_, handle=self.handle_)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | PathLike[str]) -> ContactModel:
        """Read a `save` checkpoint. A /1 checkpoint (one memory) is converted: both
        memories start as its counts (the long one then decays with `long_half_life_s`
        from the checkpoint's epoch), and a warning says so."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            fmt = meta.get("format")
            if fmt not in (_FORMAT, _FORMAT_V1):
                raise ValueError(f"{path}: not a {_FORMAT} checkpoint (format {fmt!r})")
            params = meta["params"]
            params["shape"] = tuple(params["shape"])
            model = cls(**params)
            counts = data["counts"]
            model.ring_ = data["ring"].copy()
            model.handle_ = data["handle"].copy()
        dims = model._dims()
        if fmt == _FORMAT_V1 and counts.ndim == 2 and counts.shape[1] == 4:
            log.warning("%s: a %s checkpoint (one memory); loaded as both the short and "
                        "the long memory", path, _FORMAT_V1)
            counts = np.concatenate([counts, counts], axis=1)
        expect = [(model.level_sizes()[0], _N_COLS), (int(dims[0] * dims[3]), 4),
                  (int(dims[2]), 2)]
        if [counts.shape, model.ring_.shape, model.handle_.shape] != expect:
            raise ValueError(f"{path}: count tables do not match shape {params['shape']}")
        model.counts_ = _aligned_zeros(*expect[0])
        model.counts_[...] = counts
        model._changed()
        for name in ("t_ref_", "now_s_", "n_seen_", "n_rejected_"):
            setattr(model, name, meta[name])
        return model
