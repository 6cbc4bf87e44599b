"""The `smartdial` command: one entry point, a subcommand per job.

Heavy modules (Numba kernels, OR-Tools, matplotlib) are imported inside the
subcommands so that `smartdial --help` answers at once.
"""

import argparse
import json
import sys
from pathlib import Path

from smartdial.errors import SmartdialError

SCENARIOS = Path(__file__).resolve().parent.parent / "configs" / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "mx-collections.yaml"

PACING = ("progressive", "ratio", "poisson", "adaptive", "predictive")
ROUTING = ("round_robin", "static", "cheapest", "optimizer", "oracle")
LEADS = ("oldest", "value")


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive amount, got {text!r}")
    return v


def _config_check(args) -> int:
    from rich.console import Console

    from configs import describe, load

    obj = load(args.file)
    console = Console()
    for table in describe(obj):
        console.print(table)
    console.print(f"[green]{args.file}: OK[/green]")
    return 0


def _policy(scenario, args):
    from configs.scenario import PolicySpec

    name = args.policy or scenario.default_policy
    if name not in scenario.policies:
        known = ", ".join(sorted(scenario.policies))
        raise SmartdialError(f"unknown policy {name!r}; the scenario defines: {known}")
    base = scenario.policies[name]
    override = {k: v for k, v in (("pacing", args.pacing), ("routing", args.routing),
                                  ("leads", args.leads)) if v}
    return PolicySpec(**{**base.model_dump(), **override})


def _sim_run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from configs import load_scenario
    from sim import kpis, report
    from sim.run import simulate

    scenario = load_scenario(args.scenario)
    policy = _policy(scenario, args)
    if policy.routing != "optimizer" and (args.checkpoint or args.history):
        raise SmartdialError(f"--checkpoint and --history feed the optimizer's model; policy "
                             f"{args.policy or scenario.default_policy!r} routes "
                             f"{policy.routing!r} (add --routing optimizer)")
    if args.budget is not None and policy.routing not in ("optimizer", "oracle"):
        raise SmartdialError(f"--budget is kept by the optimizer's routing; policy "
                             f"{args.policy or scenario.default_policy!r} routes "
                             f"{policy.routing!r} (add --routing optimizer)")
    seed = scenario.seed if args.seed is None else args.seed
    err = Console(stderr=True)
    with Progress(
        TextColumn("simulating {task.description}"), BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
        console=err, transient=True, disable=args.quiet,
    ) as bar:
        task = bar.add_task(f"{scenario.name} (seed {seed})", total=1.0)
        rec = simulate(
            scenario, policy, seed,
            progress=lambda t, end: bar.update(task, completed=t / end if end else 1.0),
            history=args.history or None, checkpoint=args.checkpoint, budget_mxn=args.budget,
        )
        oracle = None
        # Every optimizer run reports its gap to the oracle (same seed: common random numbers).
        vs_oracle = args.vs_oracle or (policy.routing == "optimizer" and not args.no_oracle)
        if vs_oracle and policy.routing != "oracle":
            spec = policy.model_copy(update={"routing": "oracle"})
            bar.update(task, description=f"{scenario.name} oracle (seed {seed})", completed=0.0)
            oracle = simulate(
                scenario, spec, seed,
                progress=lambda t, end: bar.update(task, completed=t / end if end else 1.0),
                budget_mxn=args.budget,
            )
    k = kpis.compute(rec)
    if oracle is not None:
        ko = kpis.compute(oracle)
        k["oracle"] = {n: ko[n] for n in ("contacts", "cost", "cost_per_contact", "attempts",
                                          "violations_total")}
        k["oracle_gap"] = 1.0 - k["contacts"] / ko["contacts"] if ko["contacts"] else 0.0
    budget = getattr(rec.controller, "budget", None)
    if budget is not None:
        k["budget"] = {"budget_mxn": budget.budget_mxn, "spent_mxn": k["cost"],
                       "cost_weight": budget.weight, "over": budget.over}
    if args.checkpoint:
        ck = rec.controller.checkpoints
        k["checkpoint"] = {"path": str(args.checkpoint), "saved": ck.n_saved,
                           "failed": ck.n_failed}
    if args.save_history:
        from sim.controller import save_history

        k["history"] = str(save_history(rec, args.save_history, args.days_ago))
    if args.report != "none":
        name = f"{scenario.name}-{policy.pacing}-{policy.routing}-seed{seed}.html"
        path = Path(args.report) if args.report else Path("reports") / name
        k["report"] = str(report.html_report(rec, k, path))
    if args.json:
        print(json.dumps(k))
    else:
        console = Console()
        for table in report.tables(k):
            console.print(table)
        if "budget" in k:
            b = k["budget"]
            over = "; at its highest price the last plan still expected to spend more" \
                if b["over"] else ""
            console.print(f"daily budget: {b['budget_mxn']:,.0f} MXN, spent "
                          f"{b['spent_mxn']:,.0f} MXN "
                          f"({b['spent_mxn'] / b['budget_mxn'] - 1:+.1%}){over}")
        if "checkpoint" in k:
            ck = k["checkpoint"]
            failed = f", {ck['failed']} failed (see the log)" if ck["failed"] else ""
            console.print(f"model checkpoint: {ck['path']} (saved {ck['saved']} times{failed})")
        if "report" in k:
            console.print(f"report: {k['report']}")
    return 1 if k["violations_total"] else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smartdial",
        description="Predictive dialer and carrier traffic optimiser for collections call centres.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    cfg = sub.add_parser("config", help="configuration files").add_subparsers(
        dest="action", required=True
    )
    check = cfg.add_parser("check", help="validate an operation or scenario file and summarise it")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_config_check)

    sim = sub.add_parser("sim", help="the discrete-event simulator").add_subparsers(
        dest="action", required=True
    )
    run = sim.add_parser("run", help="simulate one campaign day under a policy")
    run.add_argument("scenario", nargs="?", type=Path, default=DEFAULT_SCENARIO,
                     help=f"scenario file (default: {DEFAULT_SCENARIO.name})")
    run.add_argument("--policy", help="a policy named in the scenario (pacing + routing + leads)")
    run.add_argument("--pacing", choices=PACING, help="override the policy's pacing")
    run.add_argument("--routing", choices=ROUTING, help="override the policy's carrier routing")
    run.add_argument("--leads", choices=LEADS, help="override the policy's lead order")
    run.add_argument("--seed", type=int, help="randomness seed (default: the scenario's)")
    run.add_argument("--json", action="store_true", help="print the KPIs as one JSON object")
    run.add_argument("--report", metavar="PATH",
                     help="HTML report path (default reports/<scenario>-...html; 'none' to skip)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--history", type=Path, action="append", metavar="PARQUET",
                     help="warm-start the optimizer's model from this day file (repeatable)")
    run.add_argument("--checkpoint", type=Path, metavar="NPZ",
                     help="optimizer runs: start the model from this checkpoint when it exists "
                     "(instead of --history), save it there every 5 simulated minutes and at "
                     "the end of the day")
    run.add_argument("--budget", type=_positive, metavar="MXN",
                     help="optimizer and oracle routing: keep the day's telecom spend within "
                     "MXN (replaces the campaign's daily_budget_mxn)")
    run.add_argument("--save-history", type=Path, metavar="PARQUET",
                     help="write the day's outcomes as a history day file")
    run.add_argument("--days-ago", type=int, default=1, metavar="N",
                     help="date the saved history N days before the scenario (default 1)")
    run.add_argument("--vs-oracle", action="store_true",
                     help="also run the oracle on the same seed and report the gap to it "
                     "(always on for --routing optimizer)")
    run.add_argument("--no-oracle", action="store_true",
                     help="optimizer runs: skip the oracle run (no gap reported)")
    run.set_defaults(run=_sim_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SmartdialError as e:
        print(f"smartdial: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
