"""Contact-probability model: decayed outcome counts per segment, shrunk along a back-off tree.

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
The posterior at a node is Dirichlet over (human, machine, not answered) whose
prior mean is the parent's posterior mean and whose strength is fixed per level
(`prior_strength`; see DESIGN notes in the class docstring). Because all three
rates share one Dirichlet, p_answer = p_human + p_machine exactly.
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
_FORMAT = "smartdial.contact_model/1"


def _kernels():  # -> the kernels module, imported on first use
    from optimizer import _model_kernels

    return _model_kernels


class ContactModel:
    """Online estimate of P(answer), P(human), P(machine) per attempt, by segment.

    Parameters
    ----------
    shape : (n_carriers, n_regions, n_products, n_networks, n_slots, n_attempt_buckets)
    half_life_s : counts lose half their weight after this many seconds.
    prior_strength : pseudo-attempts a node borrows from its parent's posterior mean.
        One float for every level, or six (leaf level first, root last). Fixed,
        not estimated: method-of-moments estimates on decayed counts swing with
        the few segments that carry traffic early in the day, and a steady
        strength makes the allocation stable; see `suggest_prior_strength` for
        an empirical-Bayes estimate to set it from history.
    exploration : how `sample` scores segments: "thompson" draws p_human from its
        posterior, "ucb" adds `ucb_c` posterior standard deviations, "none" returns
        the posterior mean.
    random_state : seed or Generator for Thompson draws.

    Learned state (after `partial_fit`): `counts_` ((n_segments, 4) float64 leaf
    count table: attempts, answered, human, machine, scaled to epoch `t_ref_`; the
    upper levels are its sums, rebuilt in one dense pass when a prediction needs
    them after an update),
    `ring_` ((n_carriers*n_networks, 4): weight and ring-seconds over all attempts,
    then over answered), `handle_` ((n_products, 2): weight and talk-seconds over
    CONTACT outcomes), `now_s_`, `n_seen_`, `n_rejected_`.

    Decay is kept against one global epoch instead of a last-update time per
    segment: a row at time t adds weight 2**((t - t_ref_)/half_life), so every
    sum equals its value decayed to t_ref_, and multiplying by
    2**((t_ref_ - now)/half_life) decays all of them to now at once. This is the
    same number as decaying each segment lazily when touched, without
    per-segment bookkeeping in the hot loop.
    """

    def __init__(
        self,
        shape: Sequence[int],
        half_life_s: float = 1800.0,
        prior_strength: float | Sequence[float] = 20.0,
        exploration: Exploration = "thompson",
        ucb_c: float = 1.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.shape = shape
        self.half_life_s = half_life_s
        self.prior_strength = prior_strength
        self.exploration = exploration
        self.ucb_c = ucb_c
        self.random_state = random_state

    # ----------------------------------------------------------------- params
    def get_params(self) -> dict[str, object]:
        return {
            "shape": self.shape,
            "half_life_s": self.half_life_s,
            "prior_strength": self.prior_strength,
            "exploration": self.exploration,
            "ucb_c": self.ucb_c,
            "random_state": self.random_state,
        }

    def set_params(self, **params: object) -> ContactModel:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"ContactModel has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def _dims(self) -> np.ndarray:
        dims = np.asarray(self.shape, dtype=np.int64)
        if dims.shape != (6,) or (dims <= 0).any():
            raise ValueError(f"shape must be 6 positive sizes, got {self.shape!r}")
        return dims

    def _strength(self) -> np.ndarray:
        m = np.broadcast_to(np.asarray(self.prior_strength, dtype=np.float64), (N_LEVELS,))
        if not (np.isfinite(m).all() and (m > 0).all()):
            raise ValueError(f"prior_strength must be positive, got {self.prior_strength!r}")
        return np.ascontiguousarray(m)

    def _check_hyper(self) -> None:
        if not (self.half_life_s > 0 and math.isfinite(self.half_life_s)):
            raise ValueError(f"half_life_s must be positive, got {self.half_life_s!r}")
        if self.exploration not in ("thompson", "ucb", "none"):
            raise ValueError(f"exploration must be thompson, ucb or none: {self.exploration!r}")
        self._strength()

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
        self.counts_ = np.zeros((self.level_sizes()[0], 4))
        self._tree_stale = True
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

    def _rebase(self, t_new: float) -> None:
        factor = 2.0 ** ((self.t_ref_ - t_new) / self.half_life_s)
        for table in (self.counts_, self.ring_, self.handle_):
            table *= factor
        self.t_ref_ = float(t_new)
        self._tree_stale = True

    def _tree(self) -> list[np.ndarray]:
        """Count tables of levels 0-5 (leaf first), upper levels rebuilt if stale."""
        self._check_fitted()
        if getattr(self, "_tree_stale", True) or not hasattr(self, "_upper"):
            if not hasattr(self, "_upper"):
                self._upper = [np.empty((size, 4)) for size in self.level_sizes()[1:]]
            u = self._upper
            _kernels()._levels_kernel(self._dims(), self.counts_, u[0], u[1], u[2], u[3], u[4])
            self._tree_stale = False
        return [self.counts_, *self._upper]

    def _scale(self, now_s: float | None) -> float:
        now = self.now_s_ if now_s is None else float(now_s)
        return 2.0 ** ((self.t_ref_ - now) / self.half_life_s)

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
        if self.now_s_ - self.t_ref_ > _REBASE_HALF_LIVES * self.half_life_s:
            self._rebase(self.now_s_)
        if len(batch) == 0:
            return self
        bad = np.zeros(2, dtype=np.int64)
        _kernels()._update_kernel(
            batch.carrier, batch.region, batch.product, batch.network, batch.slot,
            batch.attempt_bucket, batch.outcome, batch.t_s, batch.ring_s, batch.talk_s,
            self._dims(), self.t_ref_, float(self.half_life_s),
            float(now_s) + FUTURE_TOLERANCE_S, self.counts_, self.ring_, self.handle_, bad,
        )
        self._tree_stale = True
        n_bad = int(bad[0])
        self.n_seen_ += len(batch) - n_bad
        if n_bad:
            self.n_rejected_ += n_bad
            log.warning(
                "outcome rows skipped as malformed: count=%d first_row=%d total_rejected=%d",
                n_bad, int(bad[1]), self.n_rejected_,
            )
        return self

    def rescale_human(self, carrier: int, ratio: float) -> ContactModel:
        """Multiply everything learnt about `carrier`'s human answers by `ratio`.

        For a detected change point (see `optimizer.drift`): the route's rate moved by a
        factor, everywhere at once, so its counts are moved with it instead of being
        forgotten (forgetting would pull it back to its parents' rate, not to the new one).
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
        self._tree_stale = True
        return self

    def warm_start(
        self,
        paths: str | PathLike[str] | Iterable[str | PathLike[str]],
        now_s: float,
    ) -> ContactModel:
        """Reset the model and fit it from history day files (see `optimizer.history`).

        Every row keeps its own time, so older days weigh 2**(-age/half_life).
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

    def _posterior(self, segments: np.ndarray, now_s: float | None) -> tuple[np.ndarray, ...]:
        self._check_fitted()
        seg = self._segments(segments)
        mean = np.empty((seg.size, 3))
        var = np.empty(seg.size)
        lv = self._tree()
        _kernels()._posterior_kernel(
            seg, self._dims(), lv[0], lv[1], lv[2], lv[3], lv[4], lv[5],
            self._scale(now_s), self._strength(), np.asarray(_ROOT_PRIOR), mean, var,
        )
        return mean, var

    def predict(
        self, segments: np.ndarray, now_s: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior means (p_answer, p_human, p_machine) per attempt for flat segment ids.

        Counts are decayed to `now_s` (default: the latest `now_s` seen).
        """
        mean, _ = self._posterior(segments, now_s)
        return mean[:, 0].copy(), mean[:, 1].copy(), mean[:, 2].copy()

    def predict_table(
        self,
        now_s: float | None = None,
        out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p_answer, p_human, p_machine) for every segment, each an array of `shape`.

        Same numbers as `predict(np.arange(n_segments))`, computed top-down with
        every tree node visited once (one dense pass; for the allocator's grids).
        `out`: three C-contiguous float64 arrays of `shape` to fill and return
        (saves allocating ~24 bytes per segment on every refresh).
        """
        lv = self._tree()
        shape = tuple(int(x) for x in self._dims())
        if out is None:
            out = tuple(np.empty(shape) for _ in range(3))
        elif len(out) != 3 or any(
            a.shape != shape or a.dtype != np.float64 or not a.flags.c_contiguous for a in out
        ):
            raise ValueError(f"out must be three C-contiguous float64 arrays of shape {shape}")
        flat = [a.reshape(-1) for a in out]
        _kernels()._table_kernel(
            self._dims(), lv[0], lv[1], lv[2], lv[3], lv[4], lv[5], self._scale(now_s),
            self._strength(), np.asarray(_ROOT_PRIOR), flat[0], flat[1], flat[2],
        )
        return out[0], out[1], out[2]

    def predict_human_var(self, segments: np.ndarray, now_s: float | None = None) -> np.ndarray:
        """Posterior variance of p_human, with the ancestors' uncertainty carried down."""
        return self._posterior(segments, now_s)[1]

    def sample(
        self,
        segments: np.ndarray,
        rng: np.random.Generator | None = None,
        now_s: float | None = None,
    ) -> np.ndarray:
        """Exploration score of p_human per segment, by `exploration`.

        thompson: one draw per segment from a Beta matched to the posterior mean
        and variance of p_human (the variance includes the ancestors', so a
        carrier whose data has decayed away gets wide draws and is tried again);
        ucb: mean + ucb_c * sd, capped at 1; none: the mean.
        """
        mean, var = self._posterior(segments, now_s)
        mu = mean[:, 1]
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
        f = self._scale(now_s)
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
        f = self._scale(now_s)
        w, x = self.handle_[:, 0] * f, self.handle_[:, 1] * f
        total = w.sum()
        glob = x.sum() / total if total > 0 else np.nan
        return (x + glob) / (w + 1.0)

    def decayed_counts(self, level: int = 0, now_s: float | None = None) -> np.ndarray:
        """Count table of a tree level decayed to `now_s`: columns attempts, answered,
        human, machine."""
        return self._tree()[level] * self._scale(now_s)

    def suggest_prior_strength(self, now_s: float | None = None) -> np.ndarray:
        """Empirical-Bayes (method of moments) prior strength per level, for p_human.

        For each level the children's rates scatter around their parent's rate;
        between-child variance = observed weighted variance minus the binomial
        part, and strength = mean(p(1-p)) / between-variance - 1. Levels without
        enough spread return NaN. Meant for offline tuning, not the hot path.
        """
        tree = self._tree()
        out = np.full(N_LEVELS, np.nan)
        f = self._scale(now_s)
        for level, parent in enumerate(self._parent_ids()):
            child, par = tree[level] * f, tree[level + 1][parent] * f
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
        ps = self.prior_strength
        params["prior_strength"] = ps if np.isscalar(ps) else [float(x) for x in ps]
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
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: not a {_FORMAT} checkpoint")
            params = meta["params"]
            params["shape"] = tuple(params["shape"])
            model = cls(**params)
            model.counts_ = data["counts"].copy()
            model.ring_ = data["ring"].copy()
            model.handle_ = data["handle"].copy()
        dims = model._dims()
        expect = [(model.level_sizes()[0], 4), (int(dims[0] * dims[3]), 4), (int(dims[2]), 2)]
        if [model.counts_.shape, model.ring_.shape, model.handle_.shape] != expect:
            raise ValueError(f"{path}: count tables do not match shape {params['shape']}")
        model._tree_stale = True
        for name in ("t_ref_", "now_s_", "n_seen_", "n_rejected_"):
            setattr(model, name, meta[name])
        return model
