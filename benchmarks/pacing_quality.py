"""Pacing quality over seeds: abandonment, occupancy and contacts per agent-hour.

    python benchmarks/pacing_quality.py table [--seeds 5] [--scenario small mx]
    python benchmarks/pacing_quality.py curve [--seeds 3] [--scenario small] [--plot curve.png]

`table` runs each pacing policy (predictive, progressive, ratio, VICIdial-style
adaptive) on the shipped scenarios and prints mean ± sd over seeds of the day's
abandonment, its worst rolling-24 h window, occupancy and contacts per
agent-hour. `curve` sweeps each policy's aggressiveness (predictive: the aimed
abandonment; ratio: lines per idle agent; adaptive: its drop target and top
level) and prints the occupancy-versus-abandonment points. Seeds share their
world (common random numbers), so the policies are compared on the same days.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import load_scenario  # noqa: E402
from configs.scenario import PolicySpec  # noqa: E402
from sim.kpis import compute  # noqa: E402
from sim.run import simulate  # noqa: E402

SCENARIOS = {
    "small": ROOT / "configs/scenarios/small.yaml",
    "mx": ROOT / "configs/scenarios/mx-collections.yaml",
}
POLICIES = {
    "predictive": PolicySpec(pacing="predictive", routing="static", leads="value"),
    "progressive": PolicySpec(pacing="progressive", routing="static", leads="oldest"),
    "ratio": PolicySpec(pacing="ratio", routing="static", leads="oldest"),
    "adaptive": PolicySpec(pacing="adaptive", routing="static", leads="oldest"),
}
KPIS = ("abandon_rate", "abandon_rate_24h_max", "occupancy", "contacts_per_agent_hour")
SWEEPS = {
    "predictive": [{"predictive_aim": a} for a in (0.2, 0.4, 0.6, 0.85, 1.0)],
    "ratio": [{"dial_ratio": r} for r in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)],
    "adaptive": [
        {"adaptive_drop_target": d, "adaptive_max_level": m}
        for d, m in ((0.01, 2.0), (0.02, 3.0), (0.03, 4.0), (0.05, 6.0), (0.08, 8.0))
    ],
    "progressive": [{}],
}


def with_dialer(scenario, **settings):
    """The scenario with the campaign's DialerSettings changed."""
    op = scenario.operation
    campaigns = tuple(
        c.model_copy(update={"dialer": c.dialer.model_copy(update=settings)})
        if c.name == scenario.campaign else c
        for c in op.campaigns
    )
    return scenario.model_copy(update={"operation": op.model_copy(update={"campaigns": campaigns})})


def run(scenario, policy: PolicySpec, seeds) -> dict[str, np.ndarray]:
    rows = [compute(simulate(scenario, policy, s)) for s in seeds]
    out = {k: np.array([r[k] for r in rows], float) for k in KPIS}
    out["violations_total"] = np.array([r["violations_total"] for r in rows], float)
    return out


def _fmt(x: np.ndarray, pct: bool) -> str:
    k = 100.0 if pct else 1.0
    return f"{k * x.mean():6.2f} ± {k * x.std(ddof=1 if x.size > 1 else 0):4.2f}"


def table(names, seeds) -> None:
    print("| scenario | pacing | abandon day % | abandon max rolling % | occupancy % "
          "| contacts / agent-h | violations |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        sc = load_scenario(SCENARIOS[name])
        for pol, spec in POLICIES.items():
            r = run(sc, spec, seeds)
            print(f"| {name} | {pol} | {_fmt(r['abandon_rate'], True)} "
                  f"| {_fmt(r['abandon_rate_24h_max'], True)} | {_fmt(r['occupancy'], True)} "
                  f"| {_fmt(r['contacts_per_agent_hour'], False)} "
                  f"| {int(r['violations_total'].sum())} |", flush=True)


def curve(names, seeds, plot: str | None = None) -> None:
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    print("| scenario | pacing | setting | abandon day % | abandon max rolling % | occupancy % "
          "| contacts / agent-h |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        base = load_scenario(SCENARIOS[name])
        for pol, sweep in SWEEPS.items():
            for setting in sweep:
                r = run(with_dialer(base, **setting), POLICIES[pol], seeds)
                label = ", ".join(f"{k}={v}" for k, v in setting.items()) or "-"
                points.setdefault((name, pol), []).append(
                    (100 * r["abandon_rate_24h_max"].mean(), 100 * r["occupancy"].mean())
                )
                print(f"| {name} | {pol} | {label} | {_fmt(r['abandon_rate'], True)} "
                      f"| {_fmt(r['abandon_rate_24h_max'], True)} "
                      f"| {_fmt(r['occupancy'], True)} "
                      f"| {_fmt(r['contacts_per_agent_hour'], False)} |", flush=True)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            for (sc, pol), pts in points.items():
                if sc == name:
                    x, y = zip(*sorted(pts), strict=True)
                    ax.plot(x, y, "o-", label=pol)
            ax.axvline(3.0, color="grey", ls="--", lw=1)
            ax.set(title=name, xlabel="worst rolling-24 h abandonment (%)",
                   ylabel="agent occupancy (%)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("table", "curve"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS), default=["small", "mx"])
    ap.add_argument("--policy", nargs="+", choices=sorted(POLICIES), default=None)
    ap.add_argument("--plot", help="curve: also write the occupancy-vs-abandonment plot here")
    args = ap.parse_args()
    if args.policy:
        for p in list(POLICIES):
            if p not in args.policy:
                POLICIES.pop(p)
                SWEEPS.pop(p, None)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.what == "table":
        table(args.scenario, seeds)
    else:
        curve(args.scenario, seeds, args.plot)


if __name__ == "__main__":
    main()
