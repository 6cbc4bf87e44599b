"""Minutes the change detector takes to flag a halving, by a carrier's volume and answer rate.

    PYTHONPATH=. python benchmarks/detection_delay.py [--trials 1000] [--h DETECT_H]
        [--rates 0.08 0.12] [--volumes 50 100 200]

The loop's `ResidualCusum` (threshold `LearningLoop`'s `detect_h`) is fed a carrier's
attempts scored against their true rate, in control for `--warm` attempts (its false alarms
restart it, as in the loop), then at half that rate until it flags the fall. Each trial is
its own carrier of one detector, so the trials run side by side. This is the detector at
its best (a model that predicts the old rate exactly, volume held while it waits); the
halving target leaves about 7.5 min from the change to a full cut (the first 5-min window
at or under half the share before ends by minute 10).
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np

from optimizer.drift import ResidualCusum
from optimizer.service import LearningLoop

# The loop's own threshold, so the table follows it if it is re-tuned.
DETECT_H = inspect.signature(LearningLoop).parameters["detect_h"].default


def minutes_to_flag(p0: float, per_min: float, h: float, trials: int, warm: int,
                    rng: np.random.Generator, max_min: float = 60.0) -> np.ndarray:
    """(trials,) minutes from a halving of `p0` to the first downward alarm (inf: none)."""
    cusum = ResidualCusum(trials, h=h)
    every = np.arange(trials)
    p = np.full(trials, p0)
    for _ in range(warm):
        cusum.update(every, rng.random(trials) < p0, p)
    first = np.full(trials, np.inf)
    for k in range(1, int(max_min * per_min) + 1):
        alarm = cusum.update(every, rng.random(trials) < 0.5 * p0, p)
        new = alarm & (cusum.direction_ < 0) & np.isinf(first)
        first[new] = k / per_min
        if np.isfinite(first).all():
            break
    return first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--h", type=float, default=DETECT_H)
    ap.add_argument("--warm", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rates", type=float, nargs="+", default=[0.08, 0.12],
                    help="P(human) before the halving")
    ap.add_argument("--volumes", type=float, nargs="+", default=[50, 100, 200],
                    help="the carrier's attempts a minute")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print("| P(human) before | attempts / min | median min | 90th pct | P(> 5 min) "
          "| P(> 7.5 min) |")
    print("|---|---|---|---|---|---|")
    for p0 in args.rates:
        for per_min in args.volumes:
            d = minutes_to_flag(p0, per_min, args.h, args.trials, args.warm, rng)
            print(f"| {p0:.2f} | {per_min:g} | {np.median(d):.1f} | {np.quantile(d, 0.9):.1f} "
                  f"| {np.mean(d > 5):.3f} | {np.mean(d > 7.5):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
