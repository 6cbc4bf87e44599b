"""Where compiled Numba kernels are cached: one directory per version of their sources.

Numba invalidates a cached function when its own file changes, never when a
function it calls from another file does: after an edit to `dialer/pacing.py`,
the cached `sim/kernel.py` loop would go on running the old pacing, silently.
Keying the cache directory by a hash of every file the kernels are built from
makes any edit start a fresh cache. Imports nothing heavy (not Numba).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("smartdial", "dialer", "sim", "optimizer")  # the kernels and their constants
_KEEP = 3  # caches of this many source versions survive (switching branches back and forth)
_PREFIX = "src-"  # a version's directory: src-<source hash>
_OURS = "SMARTDIAL_NUMBA_CACHE_DIR"  # marks a NUMBA_CACHE_DIR set here, inherited by children


def source_hash(root: Path = _ROOT) -> str:
    """A short hash of the kernel packages' Python sources under `root`."""
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).glob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _base() -> Path:
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env and env == os.environ.get(_OURS):
        return Path(env).parent  # set by a parent process: same base, maybe other sources
    if env:
        return Path(env)  # the user's choice: our versions go beneath it
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "smartdial" / "numba"


def _prune(base: Path, current: Path) -> None:
    try:
        old = sorted(
            (p for p in base.glob(_PREFIX + "*") if p.is_dir() and p != current),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        return
    for p in old[_KEEP - 1:]:
        shutil.rmtree(p, ignore_errors=True)


def configure() -> Path:
    """Point Numba's cache at this source version's directory; returns it.

    Call before any `@njit(cache=True)` function is defined (the kernel
    packages' `__init__` do). Idempotent.
    """
    base = _base()
    path = base / (_PREFIX + source_hash())
    if os.environ.get(_OURS) != str(path):
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.utime(path)  # most recently used: pruning keeps it
        except OSError:
            return path  # unwritable: Numba falls back to __pycache__ beside the sources
        _prune(base, path)
        os.environ["NUMBA_CACHE_DIR"] = os.environ[_OURS] = str(path)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # Numba already imported: its config read the old value
        config.CACHE_DIR = str(path)
    return path
