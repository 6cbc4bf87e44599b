"""Quality of the optimizer routing against the oracle and the baseline routings, over seeds.

    PYTHONPATH=. python benchmarks/quality_optimizer.py configs/scenarios/small.yaml --seeds 5
    PYTHONPATH=. python benchmarks/quality_optimizer.py SCENARIO --pacing predictive --leads value
    PYTHONPATH=. python benchmarks/quality_optimizer.py SCENARIO --seeds 5 --first-seed 6

Every routing runs on the same seeds (common random numbers) at the same pacing and lead
order (default adaptive and oldest: routing is the only difference; `--pacing predictive
--leads value` gives the whole product, `smartdial`, against the same parts with other
routings), beside the VICIdial-style `baseline` (adaptive, static, oldest).
`optimizer-7d` is warm-started from 7 simulated days of history: 7 other seeds, dated 1..7
days before, dialled under `--history-routing` (default static: the shares a site runs before
the optimiser, and fast to simulate). Prints mean ± sd of contacts, cost and cost per contact, the
ratio to the oracle and to the best baseline, the route factor (`kpis.route_factors`: how much the
routes taken raise P(a human answers), whatever pacing makes of it), and the worst rule-violation
count; `--oracle-budget` adds the oracle on each baseline's spend. Not collected
by pytest (no `bench_` prefix): it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from configs import load_scenario
from configs.scenario import PolicySpec
from sim import kpis
from sim.controller import save_history
from sim.run import simulate

ROUTINGS = ("static", "round_robin", "cheapest", "oracle", "optimizer")


def history_days(scenario, n_days: int, first_seed: int, out: Path,
                 routing: str = "static") -> list[Path]:
    paths = []
    for d in range(1, n_days + 1):
        rec = simulate(scenario, PolicySpec(pacing="adaptive", routing=routing),
                       seed=first_seed + d)
        paths.append(save_history(rec, out / f"day-{d}.parquet", days_before=d))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--history-days", type=int, default=7)
    ap.add_argument("--history-routing", default="static")
    ap.add_argument("--pacing", default="adaptive")
    ap.add_argument("--leads", default="oldest")
    ap.add_argument("--budget-of", action="append", choices=("static", "round_robin", "cheapest"),
                    help="also run the optimizer on this baseline's spend (repeatable)")
    ap.add_argument("--oracle-budget", action="store_true",
                    help="also run the oracle on each --budget-of baseline's spend: what "
                         "perfect knowledge makes of the same money")
    ap.add_argument("--json", type=Path, help="also write the raw per-seed KPIs here")
    args = ap.parse_args(argv)
    sc = load_scenario(args.scenario)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    budget_of = args.budget_of or ["cheapest", "round_robin"]
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        hist = history_days(sc, args.history_days, 1000, Path(tmp),
                                                 args.history_routing) if args.history_days else []
        for seed in seeds:
            for routing in ROUTINGS:
                rec = simulate(sc, PolicySpec(pacing=args.pacing, routing=routing,
                                              leads=args.leads), seed=seed)
                rows.setdefault(routing, []).append(kpis.compute(rec))
            if (args.pacing, args.leads) != ("adaptive", "oldest"):  # else it is `static`
                rec = simulate(sc, PolicySpec(pacing="adaptive", routing="static"), seed=seed)
                rows.setdefault("baseline", []).append(kpis.compute(rec))
            if hist:
                rec = simulate(sc, PolicySpec(pacing=args.pacing, routing="optimizer",
                                              leads=args.leads), seed=seed, history=hist)
                rows.setdefault("optimizer-7d", []).append(kpis.compute(rec))
            for b in budget_of:
                for routing in ("optimizer", "oracle") if args.oracle_budget else ("optimizer",):
                    rec = simulate(sc, PolicySpec(pacing=args.pacing, routing=routing,
                                                  leads=args.leads), seed=seed,
                                   budget_mxn=rows[b][-1]["cost"])
                    rows.setdefault(f"{routing}@{b}", []).append(kpis.compute(rec))
            print(f"seed {seed} done", flush=True)

    def arr(name, key):
        return np.array([k[key] for k in rows[name]], float)

    oracle = arr("oracle", "contacts")
    base = {b: arr(b, "contacts") for b in ("static", "round_robin", "cheapest")}
    best = max(base, key=lambda b: base[b].mean())
    print(f"\n{sc.name}: {len(seeds)} seeds, pacing {args.pacing}, leads {args.leads}; "
          f"best baseline routing = {best}")
    head = (f"{'policy':22} {'contacts':>16} {'cost MXN':>16} {'MXN/contact':>14} "
            f"{'/oracle':>14} {'/best base':>14} {'route':>6} {'value M':>8} {'abandon %':>10} "
            f"{'viol':>5}")
    print(head)
    for name in rows:
        c, cost, cpc = arr(name, "contacts"), arr(name, "cost"), arr(name, "cost_per_contact")
        r_or, r_b = c / oracle, c / base[best]
        viol = int(arr(name, "violations_total").max())
        ab, ab24 = 100 * arr(name, "abandon_rate"), 100 * arr(name, "abandon_rate_24h_max")
        print(f"{name:22} {c.mean():9.0f} ± {c.std(ddof=1):4.0f} {cost.mean():9.0f} ± "
              f"{cost.std(ddof=1):4.0f} {cpc.mean():7.3f} ± {cpc.std(ddof=1):.3f} "
              f"{r_or.mean():7.1%} ± {r_or.std(ddof=1):.1%} {r_b.mean():7.1%} ± "
              f"{r_b.std(ddof=1):.1%} {arr(name, 'route_factor').mean():6.3f} "
              f"{arr(name, 'value').mean() / 1e6:8.2f} "
              f"{ab.mean():5.2f}/{ab24.mean():4.2f} "
              f"{viol:5d}")
    # How much routing raised P(a human answers), against the ceiling of every attempt on its
    # best route (capacity and contracts aside): what pacing then made of it is the table's.
    base_route = arr(best, "route_factor")
    lift = {n: arr(n, "route_factor") / base_route - 1 for n in ("oracle", "optimizer")}
    lift["every attempt's best route"] = arr(best, "route_factor_best") / base_route - 1
    print(f"route factor over {best}'s: " + ", ".join(
        f"{n} {v.mean():+.1%} ± {v.std(ddof=1):.1%}" for n, v in lift.items()))
    for b in budget_of:
        c, cost = arr(f"optimizer@{b}", "contacts"), arr(f"optimizer@{b}", "cost")
        r_c, r_cost = c / arr(b, "contacts"), cost / arr(b, "cost")
        print(f"optimizer on {b}'s spend: contacts {r_c.mean() - 1:+.1%} ± {r_c.std(ddof=1):.1%}, "
              f"cost {r_cost.mean() - 1:+.1%} ± {r_cost.std(ddof=1):.1%} against {b}")
        if f"oracle@{b}" in rows:
            r_o = c / arr(f"oracle@{b}", "contacts")
            cpc = {n: arr(n, "cost_per_contact").mean()
                   for n in (f"oracle@{b}", f"optimizer@{b}", b)}
            print(f"  the oracle on it: MXN/contact {cpc[f'oracle@{b}']:.3f} (optimizer "
                  f"{cpc[f'optimizer@{b}']:.3f}, {b} {cpc[b]:.3f}); the optimizer's contacts "
                  f"{r_o.mean():.1%} ± {r_o.std(ddof=1):.1%} of the oracle's")
    if args.json:
        slim = {n: [{k: v for k, v in x.items() if k not in ("per_hour",)} for x in ks]
                for n, ks in rows.items()}
        args.json.write_text(json.dumps(slim))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
