"""The Numba cache follows the sources: an edit in any kernel package starts a new one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from smartdial import jitcache

ROOT = Path(__file__).resolve().parents[1]


def _copy_sources(dst: Path) -> None:
    for pkg in ("smartdial", "dialer", "sim", "optimizer"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def test_editing_a_called_module_changes_the_cache_version(tmp_path):
    _copy_sources(tmp_path)
    before = jitcache.source_hash(tmp_path)
    assert jitcache.source_hash(tmp_path) == before  # stable
    pacing = tmp_path / "dialer" / "pacing.py"
    pacing.write_text(pacing.read_text() + "\n# tuned\n")
    assert jitcache.source_hash(tmp_path) != before


def _cache_dir_in_child(env: dict[str, str]) -> dict[str, str]:
    code = (
        "import json, os, subprocess, sys, numba, sim.kernel\n"
        "child = subprocess.run([sys.executable, '-c', 'import numba, dialer.pacing; "
        "print(numba.config.CACHE_DIR)'], capture_output=True, text=True, check=True)\n"
        "print(json.dumps({'own': numba.config.CACHE_DIR, 'child': child.stdout.strip()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_kernels_cache_beneath_the_users_numba_cache_dir_and_children_share_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUMBA_CACHE_DIR")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    got = _cache_dir_in_child(env)
    expected = tmp_path / f"src-{jitcache.source_hash()}"
    assert got == {"own": str(expected), "child": str(expected)}
    assert expected.is_dir()


def test_old_source_versions_are_pruned(tmp_path, monkeypatch):
    for i in range(6):
        (tmp_path / f"src-{i:016x}").mkdir()
        os.utime(tmp_path / f"src-{i:016x}", (i, i))
    (tmp_path / "unrelated").mkdir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SMARTDIAL_NUMBA_CACHE_DIR", raising=False)
    from numba.core import config  # configure() repoints it: restore it after the test

    monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)
    current = jitcache.configure()
    left = sorted(p.name for p in tmp_path.iterdir())
    # The current version plus the two most recently used others; foreign folders stay.
    assert left == sorted([current.name, "src-0000000000000004", "src-0000000000000005",
                           "unrelated"])
