"""The contact model's checkpoint: restored when a learning loop starts, saved as it runs.

The I/O shell around `ContactModel.save` / `load` for the live optimiser and the simulator:
`restore` finds what an earlier run learnt (None on a first start, a clear error for a file
that cannot be used), `Checkpoints` saves every few minutes and once more at the end. A save
that fails is logged and counted, never raised: the loop keeps learning in memory.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

from optimizer.model import ContactModel
from smartdial.errors import SmartdialError

log = logging.getLogger(__name__)

DAY_S = 86_400.0


class CheckpointError(SmartdialError, ValueError):
    """A checkpoint file that cannot be restored (the message names it and says why)."""


def _when(t_unix: float) -> str:
    return datetime.fromtimestamp(t_unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def restore(path: str | PathLike[str], shape: tuple[int, ...], start_unix: float, *,
            redate: bool = False) -> ContactModel | None:
    """The model saved at `path`, or None when there is no file yet (a first start).

    Raises `CheckpointError` naming the file when it is not a readable checkpoint, holds another
    segment shape (carriers, regions, products, networks, slots, attempt buckets), or was
    saved after `start_unix`. With `redate`, a checkpoint from later in the calendar is moved
    back by whole days instead, so that it ends before `start_unix`: a simulated day run
    again on its scenario's date starts from what the previous run learnt.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        model = ContactModel.load(path)
    except Exception as exc:  # a truncated or foreign file: zip, JSON and key errors alike
        said = str(exc)
        if not said.startswith(str(path)):
            said = f"{path}: not a readable contact-model checkpoint ({type(exc).__name__}: {said})"
        raise CheckpointError(said) from exc
    saved = tuple(int(x) for x in model.shape)
    if saved != tuple(int(x) for x in shape):
        raise CheckpointError(
            f"{path}: the checkpoint's segment shape {saved} does not match this campaign's "
            f"{tuple(int(x) for x in shape)} (carriers, regions, products, networks, slots, "
            "attempt buckets)")
    late = model.now_s_ - start_unix
    if late > 0:
        if not redate:
            raise CheckpointError(f"{path}: saved at {_when(model.now_s_)}, after this run "
                                  f"starts ({_when(start_unix)})")
        model.shift_time(-DAY_S * math.ceil(late / DAY_S))
    log.info("contact model restored from %s (saved at %s, %d outcomes learnt)", path,
             _when(model.now_s_), model.n_seen_)
    return model


class Checkpoints:
    """Saves a model to `path` at most every `every_s` seconds (of the loop's clock).

    `n_saved` and `n_failed` count the saves; a failed one (disk full, no permission) is
    logged with its reason and retried at the next call.
    """

    def __init__(self, path: str | PathLike[str], every_s: float = 300.0) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s!r}")
        self.path = Path(path)
        self.every_s = float(every_s)
        self.saved_at_s = -math.inf
        self.n_saved = 0
        self.n_failed = 0

    def maybe_save(self, model: ContactModel, now_s: float) -> bool:
        """Save if `every_s` has passed since the last save; True when a save was written."""
        if now_s - self.saved_at_s < self.every_s:
            return False
        return self.save(model, now_s)

    def save(self, model: ContactModel, now_s: float) -> bool:
        try:
            model.save(self.path)
        except OSError as exc:
            self.n_failed += 1
            log.error("contact model checkpoint not saved to %s: %s (%d failed so far)",
                      self.path, exc, self.n_failed)
            return False
        self.saved_at_s = float(now_s)
        self.n_saved += 1
        return True


__all__ = ["CheckpointError", "Checkpoints", "restore"]
