"""How fast the optimizer moves traffic off a carrier whose answer rate halves, and back.

    PYTHONPATH=. python benchmarks/drift_optimizer.py --seeds 5 [--first-seed 6]
        [--policy smartdial [--routing oracle]] [--case tier1|telcel]

Two cases on mx-collections: the shipped incident (tier1-mx halves at 13:00 for the rest of the
day; its 10 % contract minimum still stands) and a test incident with a recovery (telcel-direct
halves at 11:00 for 60 min). Shares are measured per minute from the attempt log, as they
come and on the calls of the half hour before the incident (`*_same_mix`: the carrier's
share in each region × product × network cell, weighted by that half hour's attempts), so
that what the routing did is told from which leads were being dialled. `--policy` runs
another of the scenario's policies (default `optimizer`: the optimizer's routing on the
baseline's adaptive pacing), `--routing` swaps its routing (`oracle`: the upper bound),
`--case` runs one of the two (one process a case, on two cores).
Each day's calling-rule and carrier-limit violations are counted (`violations`); any makes
the exit status 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from configs import load_scenario
from configs.scenario import Incident
from sim import kpis
from sim.run import simulate

MX = Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "mx-collections.yaml"


def with_recovery(sc):
    inc = Incident(kind="answer_rate", at="11:00", carrier="telcel-direct", factor=0.5,
                   duration_min=60)
    return sc.model_copy(update={"truth": sc.truth.model_copy(update={"incidents": (inc,)})})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--policy", default="optimizer")
    ap.add_argument("--routing", choices=("optimizer", "oracle"))
    ap.add_argument("--case", choices=("tier1", "telcel"))
    args = ap.parse_args(argv)
    sc = load_scenario(MX)
    policy = sc.policies[args.policy]
    if args.routing:
        policy = policy.model_copy(update={"routing": args.routing})
    cases = [
        ("tier1-mx x0.5 at 13:00 (shipped)", sc, "tier1-mx", 300, None),
        ("telcel-direct x0.5 11:00-12:00", with_recovery(sc), "telcel-direct", 180, 240),
    ]
    if args.case:
        cases = [c for c in cases if c[2].startswith(args.case)]
    n_violations = 0
    for name, scen, carrier, t0, t1 in cases:
        c = scen.operation.carrier_index(carrier)
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rec = simulate(scen, policy, seed=seed)
            d = kpis.drift_response(rec, c, t0, t1)
            d["violations"] = float(sum(kpis.violations(rec).values()))
            n_violations += int(d["violations"])
            for suffix in ("", "_same_mix"):  # the share kept, as a fraction of the one before
                before = d["before" + suffix]
                d["kept_5_30_min" + suffix] = \
                    d["share_5_30_min" + suffix] / before if before else float("nan")
            alarms = [(round(t / 60), a, s) for t, a, s in getattr(rec.controller, "alarms", [])]
            rows.append(d)
            print(name, "seed", seed, {k: round(v, 3) for k, v in d.items()}, "alarms", alarms,
                  flush=True)
        for key in dict.fromkeys(k for r in rows for k in r):
            v = np.array([r.get(key, np.nan) for r in rows], float)
            print(f"  {key}: {np.nanmean(v):.3f} ± {np.nanstd(v, ddof=1):.3f} "
                  f"(missing {int(np.isnan(v).sum())})")
    return 1 if n_violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
