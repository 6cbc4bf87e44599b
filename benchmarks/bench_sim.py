"""The simulated day: the Numba kernel on the full floor, beside a plain SimPy model.

Full day: mx-collections.yaml (≈ 300 agents, 10 h, 400 k leads) under "ratio"
pacing, ≈ 500 k attempts, target ≤ 2 s once compiled, and the same day in the
plain SimPy model: SimPy time / Numba time, target ≥ 30×. Also side by side on a
reduced day (150 agents × 5 h, 150 k leads of the same world), where the fixed
per-run set-up both share weighs more.
Peak RSS of a 1 M-lead day in a child process (target ≤ 1 GiB) and the cold
(empty Numba cache) versus warm start of a CLI day. Figures land in
``extra_info``; nothing asserts on wall time.
Run: ``pytest benchmarks/bench_sim.py --benchmark-only --benchmark-columns=min,mean,max,rounds``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from simpy_world import KPI_KEYS, reduced, simulate_simpy

from configs import load_scenario
from sim.kpis import compute
from sim.portfolio import generate
from sim.run import simulate
from sim.world import build_world, clock_for

ROOT = Path(__file__).resolve().parents[1]
MX = ROOT / "configs/scenarios/mx-collections.yaml"
POLICY = "ratio"
GIB = 1 << 30

_times: dict[str, float] = {}
_kpis: dict[str, dict] = {}


@pytest.fixture(scope="module")
def mx():
    return load_scenario(MX)


@pytest.fixture(scope="module")
def reduced_day(mx):
    return reduced(mx, agents=150, hours=5, leads=150_000)


def _kpis_of(k: dict) -> dict:
    return {key: k[key] for key in KPI_KEYS}


def _mean_s(benchmark) -> float:
    return float(benchmark.stats.stats.mean)


def test_day_numba(benchmark, mx):
    simulate(mx, POLICY)  # JIT compile (or load the cache) outside the timing
    rec = benchmark.pedantic(simulate, args=(mx, POLICY), rounds=3, iterations=1)
    k = compute(rec)
    t = _mean_s(benchmark)
    _times["day_numba"] = t
    _kpis["day_numba"] = _kpis_of(k)
    benchmark.extra_info.update(
        attempts=k["attempts"], attempts_per_s=k["attempts"] / t, mean_s=t,
        min_s=float(benchmark.stats.stats.min), kpis=_kpis_of(k),
    )


def test_reduced_day_numba(benchmark, reduced_day):
    simulate(reduced_day, POLICY)
    rec = benchmark(simulate, reduced_day, POLICY)
    _times["numba"] = _mean_s(benchmark)
    _kpis["numba"] = _kpis_of(compute(rec))
    benchmark.extra_info.update(mean_s=_times["numba"], kpis=_kpis["numba"])


def test_reduced_day_simpy(benchmark, reduced_day):
    k = benchmark.pedantic(simulate_simpy, args=(reduced_day, POLICY), rounds=2, iterations=1)
    _times["simpy"] = _mean_s(benchmark)
    _kpis["simpy"] = _kpis_of(k)
    # Both models build the same world first; its share dilutes the ratio on a small day.
    world_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        clock = clock_for(reduced_day)
        build_world(reduced_day, generate(reduced_day, reduced_day.seed), reduced_day.seed, clock)
        world_s.append(time.perf_counter() - t0)
    world = min(world_s)
    info = {"mean_s": _times["simpy"], "kpis": _kpis["simpy"], "world_build_s": world}
    if "numba" in _times:
        info.update(
            numba_mean_s=_times["numba"],
            speedup=_times["simpy"] / _times["numba"],
            speedup_excluding_world_build=(_times["simpy"] - world)
            / max(_times["numba"] - world, 1e-9),
            numba_kpis=_kpis["numba"],
        )
    benchmark.extra_info.update(info)


def test_day_simpy(benchmark, mx):
    """The issue's own day (300 agents × 10 h, 400 k leads) in SimPy: about a minute."""
    k = benchmark.pedantic(simulate_simpy, args=(mx, POLICY), rounds=1, iterations=1)
    t = _mean_s(benchmark)
    info = {"mean_s": t, "kpis": _kpis_of(k)}
    if "day_numba" in _times:
        info.update(numba_mean_s=_times["day_numba"], speedup=t / _times["day_numba"],
                    numba_kpis=_kpis["day_numba"])
    benchmark.extra_info.update(info)


_ONE_MILLION = """
import resource, sys
from configs import load_scenario
from sim.run import simulate
s = load_scenario(sys.argv[1])
s = s.model_copy(update={"portfolio": s.portfolio.model_copy(update={"leads": 1_000_000})})
rec = simulate(s, sys.argv[2])
print(len(rec.log.lead))
"""


def _peak_rss_child(code: str, *args: str) -> tuple[int, int]:
    """Run `code` in a fresh interpreter under /usr/bin/time -v if there is one;
    returns (peak RSS in bytes, the child's stdout first line as int)."""
    cmd = [sys.executable, "-c", code, *args]
    if Path("/usr/bin/time").exists():
        out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        kib = next(int(line.split(":")[1]) for line in out.stderr.splitlines()
                   if "Maximum resident set size" in line)
        return kib * 1024, int(out.stdout.split()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:
        pytest.skip("an earlier, bigger child hides this one's peak RSS")
    return after * 1024, int(out.stdout.split()[0])


def test_peak_memory_1m_leads(benchmark):
    peak, attempts = benchmark.pedantic(
        _peak_rss_child, args=(_ONE_MILLION, str(MX), POLICY), rounds=1, iterations=1
    )
    benchmark.extra_info.update(peak_rss_mib=peak / (1 << 20), attempts=attempts, leads=1_000_000)
    assert peak <= GIB, f"peak RSS {peak / (1 << 20):.0f} MiB with 1 M leads"


def _day_command(policy: str) -> list[str]:
    return [sys.executable, "-m", "smartdial", "sim", "run", str(MX), "--policy", policy,
            "--json", "--quiet", "--report", "none"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cold_then_warm(policy: str) -> dict:
    """Wall and CPU seconds of a CLI day on an empty Numba cache, then on the cache it
    left. CPU seconds (user + system of the child) move less than wall time when other
    work shares the machine; cold / warm is the ratio to watch."""
    cmd = _day_command(policy)
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        times = {}
        for run in ("cold", "warm"):
            cpu0 = _children_cpu_s()
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                                 check=True)
            times[f"{run}_s"] = time.perf_counter() - t0
            times[f"{run}_cpu_s"] = _children_cpu_s() - cpu0
        times["cold_over_warm"] = times["cold_s"] / times["warm_s"]
        times["attempts"] = json.loads(out.stdout)["attempts"]
    times["command"] = " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))
    return times


# baseline: the simulator alone (the ≤ 20 s target); smartdial: the demo's default day,
# which adds the optimiser's model and OR-Tools plans, and the oracle run beside it.
@pytest.mark.parametrize("policy", ["baseline", "smartdial"])
def test_cold_start_cli(benchmark, policy):
    times = benchmark.pedantic(_cold_then_warm, args=(policy,), rounds=1, iterations=1)
    benchmark.extra_info.update(times)
