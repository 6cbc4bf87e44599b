"""Per-carrier change detection on the model's residuals: has a route's human answer rate moved?

Holds `ResidualCusum` (the alarms) and `SinceAlarm` (an alarmed carrier's level read from its
answers since, a factor on the model's predictions); never estimates rates from scratch (the
contact model does) and never routes.
A carrier's raw answer rate moves all day with the local hour and with the traffic the
optimiser sends it, so a CUSUM on the raw rate raises alarms for nothing; here each attempt is
scored against the model's own prediction for its segment, made before the model saw it.
"""

from __future__ import annotations

import math

import numpy as np


class ResidualCusum:
    """Two-sided Bernoulli CUSUM per carrier of outcomes x_i against predictions p_i.

    Each attempt adds the log-likelihood ratio of p_i·(1 ± shift) against p_i. Crossing `h`
    raises an alarm with `ratio_[c]`: observed / predicted human answers since the statistic
    last left zero (the change-point estimate), the factor the carrier's rate moved by.
    That window is chosen by the excursion, so its ratio overshoots: it is clipped to
    [min_ratio, max_ratio] (×½ to ×2 per alarm; a bigger move raises a second alarm).

    With h = 11 and p around 0.1, a halving is flagged after about 550 attempts on the carrier,
    a false alarm comes about once per e^11 ≈ 60 000 in-control attempts per side or rarer.
    """

    def __init__(self, n_carriers: int, h: float = 11.0, shift: float = 0.5,
                 min_ratio: float = 0.5, max_ratio: float = 2.0) -> None:
        self.n_carriers = n_carriers
        self.h = h
        self.shift = shift
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio

    def _init_state(self) -> None:
        n = int(self.n_carriers)
        self.s_ = np.zeros((n, 2))  # S+ (up), S- (down)
        self.since_ = np.zeros((n, 2, 2))  # per side: Σ x, Σ p since the side left zero
        self.ratio_ = np.ones(n)
        self.direction_ = np.zeros(n, np.int8)
        self.n_alarms_ = np.zeros(n, np.int64)

    def update(self, carrier: np.ndarray, human: np.ndarray, p_pred: np.ndarray) -> np.ndarray:
        """Feed attempts in time order; boolean mask of carriers whose rate changed."""
        if not hasattr(self, "s_"):
            self._init_state()
        alarm = np.zeros(int(self.n_carriers), bool)
        p = np.clip(np.asarray(p_pred, float), 1e-4, 1 - 1e-4)
        up = np.minimum(p * (1 + self.shift), 0.5 * (1 + p))
        dn = p * (1 - self.shift)
        x = np.asarray(human, bool)
        llr_up = np.where(x, np.log(up / p), np.log((1 - up) / (1 - p)))
        llr_dn = np.where(x, np.log(dn / p), np.log((1 - dn) / (1 - p)))
        s, since = self.s_, self.since_
        for i, c in enumerate(np.asarray(carrier, np.int64)):
            for side, llr in ((0, llr_up[i]), (1, llr_dn[i])):
                if s[c, side] == 0.0:
                    since[c, side] = 0.0
                s[c, side] = max(0.0, s[c, side] + llr)
                since[c, side, 0] += x[i]
                since[c, side, 1] += p[i]
                if s[c, side] > self.h:
                    obs, exp_ = since[c, side]
                    self.ratio_[c] = min(max(obs / exp_ if exp_ > 0 else 1.0, self.min_ratio),
                                         self.max_ratio)
                    self.direction_[c] = 1 if side == 0 else -1
                    alarm[c] = True
                    s[c] = 0.0
                    since[c] = 0.0
        self.n_alarms_ += alarm
        return alarm

    @staticmethod
    def kl_attempts(p: float, shift: float = 0.5, h: float = 11.0) -> float:
        """Expected attempts to flag a move of p by (1 - shift) (h / KL)."""
        q = p * (1 - shift)
        kl = q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))
        return h / kl


class SinceAlarm:
    """Each alarmed carrier's attempts since its last alarm: its level read from them alone.

    After a change the model's short memory still holds the carrier's old level for minutes,
    the longer as the plan cuts its traffic. `factor` is the carrier's human answers since
    the alarm over what the model predicts for those attempts now, shrunk toward 1 by
    `strength` expected answers: scored against the model as it is now (never against the
    predictions made before), it fades to 1 as the model catches up, and a false alarm only
    adds the noise of a few minutes' answers for `window_s`. Attempts count from the batch
    after the alarm's: the excursion that raised it was chosen for being low.
    """

    def __init__(self, window_s: float = 900.0, strength: float = 20.0) -> None:
        if not (window_s >= 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be finite and >= 0 (0: off), got {window_s!r}")
        if not (strength > 0 and math.isfinite(strength)):
            raise ValueError(f"strength must be finite and > 0, got {strength!r}")
        self.window_s = window_s
        self.strength = strength
        self.open_: dict[int, tuple[float, list[np.ndarray], list[np.ndarray]]] = {}

    def open(self, carrier: int, now_s: float) -> None:
        """(Re)start the carrier's window: an alarm was raised on it at `now_s`."""
        self.open_[int(carrier)] = (float(now_s), [], [])

    def add(self, carrier: np.ndarray, segment: np.ndarray, human: np.ndarray) -> None:
        """Attempts (carrier, flat model segment, human answer) of the open carriers."""
        for c, (_, segs, hums) in self.open_.items():
            mine = carrier == c
            if mine.any():
                segs.append(segment[mine])
                hums.append(human[mine])

    def factor(self, now_s: float, n_carriers: int, predict) -> np.ndarray | None:
        """(C,) level factors (1 where no window is open; None when none is); `predict`
        maps flat segment ids to the model's p_human now. Expired windows are closed."""
        f = None
        for c in list(self.open_):
            t, segs, hums = self.open_[c]
            if now_s - t > self.window_s:
                del self.open_[c]
                continue
            if not segs:
                continue
            expected = float(predict(np.concatenate(segs)).sum())
            observed = float(sum(h.sum() for h in hums))
            if f is None:
                f = np.ones(n_carriers)
            f[c] = (observed + self.strength) / (expected + self.strength)
        return f
