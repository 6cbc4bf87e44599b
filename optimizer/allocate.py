"""The day plan: how many attempts per carrier × region × product × slot (an OR-Tools LP).

Holds the allocation data, the LP (build, solve, check), the fast column-generation
path ``plan_day``, the live per-slot split and the allocation message. Never does I/O.

Units: time in seconds, money in MXN, attempts are counts per slot (``slot_s`` long).
Arrays are indexed ``[carrier, region, product, slot]`` (``c, r, p, s``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from smartdial.errors import SolverError

if TYPE_CHECKING:  # OR-Tools, SciPy and Numba load on first solve: `smartdial --help` stays fast
    import scipy.sparse as sp
    from ortools.linear_solver.python import model_builder as mb

__all__ = [
    "AllocationData",
    "AllocationModel",
    "AllocationResult",
    "AllocationStatus",
    "Variables",
    "binding_constraints",
    "build_allocation",
    "check_allocation",
    "diagnose",
    "live_split",
    "objective_mxn",
    "plan_day",
    "plan_over_draws",
    "solve",
    "to_message",
]

F64 = NDArray[np.float64]
B = NDArray[np.bool_]

# Columns whose reduced cost is below this (relative to the largest |profit|) count as priced out.
_RC_TOL = 1e-9
# Initial restricted master: this many best cells per segment and criterion.
_INIT_COLUMNS = 8
# Columns entering per pricing round (best reduced cost first, at most one per cell).
_ADD_COLUMNS = 1000
_MAX_ROUNDS = 200


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class AllocationData:
    """Everything the day plan needs, as NumPy arrays (C carriers, R regions, P products, S slots).

    ``x[c, r, p, s]`` (attempts in slot s) is the decision. Slots are ``slot_s`` seconds long and
    cover the rest of the day; slot 0 starts at ``start`` (UTC, optional, used by messages).
    """

    slot_s: float
    p_human: F64  # (C,R,P,S) expected human contacts per attempt
    value_mxn: F64  # (P,) MXN per human contact
    cost_per_attempt_mxn: F64  # (C,R,P,S) expected telecom MXN per attempt (per-minute + per-call)
    hold_s: F64  # (C,R,P,S) expected channel holding time per attempt (ring + talk), s
    handle_s: F64  # (R,P) or (P,) agent time per contact incl. wrap-up, s
    cps: F64  # (C,) contracted calls per second
    channels: F64  # (C,) concurrent channels
    coverage: B  # (C,R) carrier terminates calls into the region, or (C,R,P) per segment
    agents: F64  # (S,) agents logged in per slot
    supply: F64  # (R,P) attempts still allowed today (leads × remaining attempt caps)
    callable: B  # (R,S) region's local calling window covers slot s
    enabled: B | None = None  # (C,) default all True
    cap_cps: F64 | None = None  # (C,) ops override, calls per second; inf = none
    target_occupancy: float = 0.85
    supply_per_slot: F64 | None = None  # (R,P,S) optional per-slot attempt cap; inf = none
    min_share: F64 | None = None  # (C,) contract minimum share of all attempts
    max_share: F64 | None = None  # (C,) contract maximum share of all attempts
    budget_mxn: float = math.inf  # telecom budget for the rest of the day
    cost_weight: float = 1.0  # contact-value MXN per telecom MXN above a cell's cheapest route
    start: datetime | None = None  # UTC start of slot 0
    # (C,R,P,S) the rates the objective values contacts at, when not p_human: a draw from the
    # estimates' posterior (the constraints, and the checker, keep p_human).
    p_value: F64 | None = None

    def __post_init__(self) -> None:
        f = lambda name: np.ascontiguousarray(getattr(self, name), dtype=np.float64)
        for name in (
            "p_human",
            "value_mxn",
            "cost_per_attempt_mxn",
            "hold_s",
            "handle_s",
            "cps",
            "channels",
            "agents",
            "supply",
        ):
            object.__setattr__(self, name, f(name))
        for name in ("coverage", "callable"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=bool))
        n_c, n_r, n_p, n_s = self.p_human.shape
        defaults = {
            "enabled": np.ones(n_c, bool),
            "cap_cps": np.full(n_c, np.inf),
            "min_share": np.zeros(n_c),
            "max_share": np.ones(n_c),
        }
        for name, default in defaults.items():
            v = getattr(self, name)
            arr = default if v is None else np.ascontiguousarray(v, dtype=default.dtype)
            object.__setattr__(self, name, arr)
        for name in ("supply_per_slot", "p_value"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, f(name))
        if self.handle_s.shape == (n_p,):
            object.__setattr__(self, "handle_s", np.broadcast_to(self.handle_s, (n_r, n_p)).copy())
        shapes = {
            "p_human": (n_c, n_r, n_p, n_s),
            "cost_per_attempt_mxn": (n_c, n_r, n_p, n_s),
            "hold_s": (n_c, n_r, n_p, n_s),
            "value_mxn": (n_p,),
            "handle_s": (n_r, n_p),
            "cps": (n_c,),
            "channels": (n_c,),
            "enabled": (n_c,),
            "cap_cps": (n_c,),
            "coverage": (n_c, n_r, n_p) if self.coverage.ndim == 3 else (n_c, n_r),
            "agents": (n_s,),
            "supply": (n_r, n_p),
            "callable": (n_r, n_s),
            "min_share": (n_c,),
            "max_share": (n_c,),
        }
        if self.supply_per_slot is not None:
            shapes["supply_per_slot"] = (n_r, n_p, n_s)
        if self.p_value is not None:
            shapes["p_value"] = (n_c, n_r, n_p, n_s)
        for name, shape in shapes.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"AllocationData.{name}: shape {got}, expected {shape}")
        if not self.slot_s > 0:
            raise ValueError(f"AllocationData.slot_s must be > 0, got {self.slot_s}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.p_human.shape  # type: ignore[return-value]

    def replace(self, **changes: Any) -> AllocationData:
        return dataclasses.replace(self, **changes)

    @functools.cached_property  # the data is frozen; the live split asks every minute
    def priced_cost(self) -> F64:
        """(C,R,P,S) cost as the plan weighs it: the cell's cheapest allowed route at face value,
        what a route costs above it times `cost_weight`. Pacing decides the volume whichever
        routes it takes, so a budget's price falls on the choice of route: it moves traffic to
        cheaper routes rather than out of the plan. Cheapest per attempt where pacing fixes
        the attempts (`supply_per_slot`); per contact where the agents bound the plan, as
        pacing then dials until they are busy, and an attempt that answers less only brings
        another."""
        cost = self.cost_per_attempt_mxn
        if self.cost_weight == 1.0:
            return cost
        allowed = self.allowed()
        if self.supply_per_slot is None:  # the premium per contact, over the cheapest's
            p = self.p_human
            per_contact = np.where(allowed & (p > 0), cost / np.where(p > 0, p, 1.0), np.inf)
            kappa = per_contact.min(axis=0, keepdims=True)
            base = p * np.where(np.isfinite(kappa), kappa, 0.0)
        else:
            base = np.where(allowed, cost, np.inf).min(axis=0, keepdims=True)
            base = np.where(np.isfinite(base), base, 0.0)
        return base + self.cost_weight * (cost - base)

    def coverage_crp(self) -> B:
        """Coverage as (C,R,P): a (C,R) coverage applies to every product."""
        n_c, n_r, n_p, _ = self.shape
        cov = self.coverage if self.coverage.ndim == 3 else self.coverage[:, :, None]
        return np.broadcast_to(cov, (n_c, n_r, n_p))

    def allowed(self) -> B:
        """(C,R,P,S) cells that may carry attempts: enabled, covered, callable, supplied."""
        cps = np.minimum(self.cps, self.cap_cps)
        carrier_ok = self.enabled & (cps > 0) & (self.channels > 0)
        ok = (carrier_ok[:, None, None] & self.coverage_crp())[..., None] & self.callable[
            None, :, None, :
        ]
        ok = ok & (self.supply > 0)[None, :, :, None]
        if self.supply_per_slot is not None:
            ok = ok & (self.supply_per_slot > 0)[None]
        return ok


# ----------------------------------------------------------------------------- results


class AllocationStatus(enum.Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # time limit hit with a feasible, not proven optimal plan
    RELAXED = "relaxed"  # feasible only after relaxing the soft constraints in `relaxed`
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIMED_OUT = "timed_out"  # time limit hit without a feasible plan
    PREVIOUS = "previous"  # nothing solvable: this is the previous allocation, unchanged
    NO_PLAN = "no_plan"  # nothing solvable and no previous allocation: all zeros
    ERROR = "error"  # the solver failed abnormally

    @property
    def usable(self) -> bool:
        return self in (
            AllocationStatus.OPTIMAL,
            AllocationStatus.FEASIBLE,
            AllocationStatus.RELAXED,
            AllocationStatus.PREVIOUS,
        )


@dataclass
class AllocationResult:
    status: AllocationStatus
    objective_mxn: float  # Σ (p_human·value − priced cost)·x of `x` (see `priced_cost`)
    x: F64  # (C,R,P,S) attempts per slot
    duals: dict[str, F64] = field(default_factory=dict)  # d objective / d rhs, by constraint family
    solve_time_s: float = 0.0
    relaxed: list[str] = field(default_factory=list)  # e.g. ["budget", "min_share[3]"]
    conflicts: list[str] = field(default_factory=list)  # named diagnoses that caused relaxing
    message: str = ""
    rounds: int = 0  # column-generation rounds (plan_day)
    n_columns: int = 0  # columns in the final master
    columns: B | None = None  # (C,R,P,S) final master's column set
    warm: Any = field(default=None, repr=False)  # column set + basis for the next plan_day

    @property
    def total_attempts(self) -> float:
        return float(self.x.sum())


# ----------------------------------------------------------------------------- the LP


@dataclass(frozen=True, eq=False)
class _Problem:
    """The LP over segments k (a region × product, or a group of identical ones)."""

    profit: F64  # (C,K,S)
    cost: F64  # (C,K,S)
    hold: F64  # (C,K,S)
    agent_coef: F64  # (C,K,S) agent-s per attempt = p_human · handle
    allowed: B  # (C,K,S)
    cps_cap: F64  # (C,) attempts per slot
    chan_cap: F64  # (C,) channel-seconds per slot
    agent_cap: F64  # (S,) agent-seconds per slot
    supply: F64  # (K,)
    slot_cap: F64 | None  # (K,S)
    min_share: F64  # (C,)
    max_share: F64  # (C,)
    budget: float


@dataclass(frozen=True, eq=False)
class _Rows:
    """Row layout: named blocks, each an index array shaped like its family (−1 = no row).

    Contract shares use auxiliary columns U_c = Σ x[c] and T = Σ U_c: each attempt column then
    has one nonzero (its carrier's total row) instead of one in a dense all-columns row, which
    keeps simplex pivots cheap.
    """

    cps: NDArray[np.int64]  # (C,S)   Σ_k x ≤ cps·slot_s
    chan: NDArray[np.int64]  # (C,S)  Σ_k hold·x ≤ channels·slot_s
    agent: NDArray[np.int64]  # (S,)  Σ p_human·handle·x ≤ agents·slot_s·occupancy
    supply: NDArray[np.int64]  # (K,) Σ_{c,s} x ≤ supply
    slot: NDArray[np.int64]  # (K,S)  Σ_c x ≤ supply_per_slot
    carrier: NDArray[np.int64]  # (C,) Σ x[c] − U_c = 0
    total: int  # Σ U_c − T = 0
    min_share: NDArray[np.int64]  # (C,) U_c − min·T ≥ 0
    max_share: NDArray[np.int64]  # (C,) U_c − max·T ≤ 0
    budget: int  # Σ cost·x ≤ budget
    lb: F64
    ub: F64

    @property
    def n(self) -> int:
        return len(self.lb)

    @property
    def n_aux(self) -> int:
        """Auxiliary columns (U_0..U_{C−1}, T) placed before the attempt columns."""
        return 0 if self.total < 0 else len(self.carrier) + 1


def _problem(data: AllocationData) -> _Problem:
    n_c, n_r, n_p, n_s = data.shape
    k = n_r * n_p
    ph = data.p_human.reshape(n_c, k, n_s)
    pv = ph if data.p_value is None else data.p_value.reshape(n_c, k, n_s)
    cost = data.cost_per_attempt_mxn.reshape(n_c, k, n_s)
    value = np.broadcast_to(data.value_mxn, (n_r, n_p)).reshape(k)
    handle = data.handle_s.reshape(k)
    cps = np.where(data.enabled, np.minimum(data.cps, data.cap_cps), 0.0)
    chan = np.where(data.enabled, data.channels, 0.0)
    return _Problem(
        profit=pv * value[None, :, None] - data.priced_cost.reshape(n_c, k, n_s),
        cost=cost,
        hold=data.hold_s.reshape(n_c, k, n_s),
        agent_coef=ph * handle[None, :, None],
        allowed=data.allowed().reshape(n_c, k, n_s),
        cps_cap=cps * data.slot_s,
        chan_cap=chan * data.slot_s,
        agent_cap=data.agents * data.slot_s * data.target_occupancy,
        supply=data.supply.reshape(k),
        slot_cap=None if data.supply_per_slot is None else data.supply_per_slot.reshape(k, n_s),
        min_share=data.min_share,
        max_share=data.max_share,
        budget=float(data.budget_mxn),
    )


def _rows(pb: _Problem) -> _Rows:
    n_c, n_k, n_s = pb.profit.shape
    lb: list[F64] = []
    ub: list[F64] = []
    n = 0

    def block(lo: F64, hi: F64) -> NDArray[np.int64]:
        nonlocal n
        idx = np.arange(n, n + lo.size).reshape(lo.shape)
        lb.append(lo.ravel())
        ub.append(hi.ravel())
        n += lo.size
        return idx

    inf = np.inf
    cps = block(np.full((n_c, n_s), -inf), np.repeat(pb.cps_cap[:, None], n_s, 1))
    chan = block(np.full((n_c, n_s), -inf), np.repeat(pb.chan_cap[:, None], n_s, 1))
    agent = block(np.full(n_s, -inf), pb.agent_cap)
    supply = block(np.full(n_k, -inf), pb.supply)
    slot = np.full((n_k, n_s), -1, np.int64)
    if pb.slot_cap is not None:
        finite = np.isfinite(pb.slot_cap)
        slot[finite] = block(np.full(finite.sum(), -inf), pb.slot_cap[finite])
    carrier = np.full(n_c, -1, np.int64)
    min_c = np.full(n_c, -1, np.int64)
    max_c = np.full(n_c, -1, np.int64)
    total = -1
    has_min = pb.min_share > 0
    has_max = pb.max_share < 1
    if has_min.any() or has_max.any():
        carrier = block(np.zeros(n_c), np.zeros(n_c))
        total = int(block(np.zeros(1), np.zeros(1))[0])
        min_c[has_min] = block(np.zeros(has_min.sum()), np.full(has_min.sum(), inf))
        max_c[has_max] = block(np.full(has_max.sum(), -inf), np.zeros(has_max.sum()))
    budget = -1
    if np.isfinite(pb.budget):
        budget = int(block(np.full(1, -inf), np.full(1, pb.budget))[0])
    return _Rows(
        cps,
        chan,
        agent,
        supply,
        slot,
        carrier,
        total,
        min_c,
        max_c,
        budget,
        np.concatenate(lb),
        np.concatenate(ub),
    )


def _matrix(pb: _Problem, rows: _Rows, cols: NDArray[np.int64]) -> tuple[sp.csr_matrix, F64]:
    """Constraint matrix and objective: auxiliary columns first, then `cols` (flat (C,K,S))."""
    import scipy.sparse as sp

    n_c, n_k, n_s = pb.profit.shape
    c, k, s = np.unravel_index(cols, (n_c, n_k, n_s))
    n_aux = rows.n_aux
    j = np.arange(len(cols)) + n_aux
    ones = np.ones(len(cols))
    r_parts = [rows.cps[c, s], rows.chan[c, s], rows.agent[s], rows.supply[k]]
    v_parts = [ones, pb.hold.ravel()[cols], pb.agent_coef.ravel()[cols], ones]
    j_parts = [j, j, j, j]
    if pb.slot_cap is not None:
        r = rows.slot[k, s]
        m = r >= 0
        r_parts.append(r[m])
        v_parts.append(ones[m])
        j_parts.append(j[m])
    if n_aux:
        u = np.arange(n_c)
        t = n_c
        r_parts += [rows.carrier[c], rows.carrier, np.full(n_c, rows.total), [rows.total]]
        v_parts += [ones, -np.ones(n_c), np.ones(n_c), [-1.0]]
        j_parts += [j, u, u, [t]]
        for share_rows, share in ((rows.min_share, pb.min_share), (rows.max_share, pb.max_share)):
            has = np.flatnonzero(share_rows >= 0)
            r_parts += [share_rows[has], share_rows[has]]
            v_parts += [np.ones(len(has)), -share[has]]
            j_parts += [has, np.full(len(has), t)]
    if rows.budget >= 0:
        r_parts.append(np.full(len(cols), rows.budget))
        v_parts.append(pb.cost.ravel()[cols])
        j_parts.append(j)
    n_cols = n_aux + len(cols)
    a = sp.csr_matrix(
        (np.concatenate(v_parts), (np.concatenate(r_parts), np.concatenate(j_parts))),
        shape=(rows.n, n_cols),
    )
    a.sum_duplicates()
    a.sort_indices()
    obj = np.zeros(n_cols)
    obj[n_aux:] = pb.profit.ravel()[cols]
    return a, obj


@dataclass(frozen=True, eq=False)
class Variables:
    """Where the LP's columns live: column j is flat cell ``index[j]`` of the (C,R,P,S) array."""

    shape: tuple[int, int, int, int]
    index: NDArray[np.int64]
    n_aux: int  # auxiliary columns before the attempt columns (contract shares: U_c, T)


@dataclass(eq=False)
class AllocationModel:
    """An OR-Tools ModelBuilder LP plus the layout that maps its rows and columns back."""

    model: mb.Model
    variables: Variables
    rows: _Rows
    problem: _Problem


def _fill(pb: _Problem, rows: _Rows, cols: NDArray[np.int64]) -> mb.Model:
    from ortools.linear_solver.python import model_builder as mb

    a, obj = _matrix(pb, rows, cols)
    model = mb.Model()
    # One C++ call with the whole sparse matrix: ModelBuilder takes numpy + scipy.sparse directly.
    model.helper.fill_model_from_sparse_data(
        np.zeros(a.shape[1]), np.full(a.shape[1], np.inf), obj, rows.lb, rows.ub, a
    )
    model.helper.set_maximize(True)
    return model


def build_allocation(data: AllocationData) -> tuple[AllocationModel, Variables]:
    """The full LP: one column per allowed (c,r,p,s) cell, built from sparse arrays."""
    pb = _problem(data)
    rows = _rows(pb)
    cols = np.flatnonzero(pb.allowed)
    model = _fill(pb, rows, cols)
    variables = Variables(data.shape, cols, rows.n_aux)
    return AllocationModel(model, variables, rows, pb), variables


def _duals(rows: _Rows, y: F64) -> dict[str, F64]:
    def take(idx: NDArray[np.int64]) -> F64:
        return np.where(idx >= 0, y[np.maximum(idx, 0)], 0.0) if y.size else np.zeros(idx.shape)

    return {
        "cps": take(rows.cps),
        "channels": take(rows.chan),
        "agents": take(rows.agent),
        "supply": take(rows.supply),
        "supply_per_slot": take(rows.slot),
        "carrier_total": take(rows.carrier),
        "min_share": take(rows.min_share),
        "max_share": take(rows.max_share),
        "budget": np.array(y[rows.budget] if rows.budget >= 0 else 0.0),
    }


def _solve_lp(
    model: mb.Model, time_limit_s: float, solver: str
) -> tuple[AllocationStatus, F64, F64, float]:
    from ortools.linear_solver.python import model_builder_helper as mbh

    from_solver = {
        mbh.SolveStatus.OPTIMAL: AllocationStatus.OPTIMAL,
        mbh.SolveStatus.FEASIBLE: AllocationStatus.FEASIBLE,
        mbh.SolveStatus.INFEASIBLE: AllocationStatus.INFEASIBLE,
        mbh.SolveStatus.UNBOUNDED: AllocationStatus.UNBOUNDED,
    }
    s = mbh.ModelSolverHelper(solver)
    if not s.solver_is_supported():
        raise SolverError(f"LP solver {solver!r} is not available in this OR-Tools build")
    s.set_time_limit_in_seconds(max(float(time_limit_s), 1e-3))
    t0 = time.perf_counter()
    s.solve(model.helper)
    elapsed = time.perf_counter() - t0
    raw = s.status()
    status = from_solver.get(raw, AllocationStatus.ERROR)
    if raw == mbh.SolveStatus.NOT_SOLVED or (
        status is AllocationStatus.ERROR and elapsed >= time_limit_s * 0.98
    ):
        status = AllocationStatus.TIMED_OUT
    if s.has_solution():
        return status, s.variable_values(), s.dual_values(), elapsed
    return status, np.zeros(0), np.zeros(0), elapsed


def solve(
    model: AllocationModel, time_limit_s: float = 60.0, solver: str = "glop"
) -> AllocationResult:
    """Solve a built LP with GLOP (default) or PDLP (``solver="pdlp"``)."""
    var = model.variables
    status, v, y, elapsed = _solve_lp(model.model, time_limit_s, solver)
    x = np.zeros(int(np.prod(var.shape)))
    if v.size:
        x[var.index] = np.maximum(v[var.n_aux :], 0.0)
    x = x.reshape(var.shape)
    obj = float((model.problem.profit.ravel() * x.ravel()).sum())
    return AllocationResult(
        status=status,
        objective_mxn=obj,
        x=x,
        duals=_duals(model.rows, y),
        solve_time_s=elapsed,
        n_columns=len(var.index),
    )


# ----------------------------------------------------------------------------- checking


def check_allocation(
    data: AllocationData, result: AllocationResult, tol: float = 1e-6
) -> list[str]:
    """Re-verify every constraint of `data` on ``result.x`` with NumPy alone; [] = fine.

    `tol` is relative to the constraint's scale (max(1, |rhs|)). Constraints the result says
    it relaxed (``result.relaxed``) are not checked.
    """
    x = np.asarray(result.x, dtype=np.float64)
    out: list[str] = []
    if x.shape != data.shape:
        return [f"x has shape {x.shape}, data has {data.shape}"]
    if not np.isfinite(x).all():
        return ["x has non-finite entries"]

    def over(name: str, lhs: F64, rhs: F64, sense: str = "<=") -> None:
        lhs, rhs = np.broadcast_arrays(np.asarray(lhs, float), np.asarray(rhs, float))
        slack = (rhs - lhs) if sense == "<=" else (lhs - rhs)
        bad = slack < -tol * np.maximum(1.0, np.abs(np.where(np.isfinite(rhs), rhs, 0.0)))
        for idx in zip(*np.nonzero(np.atleast_1d(bad)), strict=True):
            at = ",".join(str(int(i)) for i in idx)
            lv, rv = np.atleast_1d(lhs)[idx], np.atleast_1d(rhs)[idx]
            out.append(f"{name}[{at}]: {lv:.6g} {'>' if sense == '<=' else '<'} {rv:.6g}")

    neg = x < -tol
    if neg.any():
        out.append(f"negative attempts in {int(neg.sum())} cells, min {x.min():.6g}")
    allowed = data.allowed()
    masks = (
        ("disabled carrier", ~data.enabled[:, None, None, None]),
        ("uncovered region", ~data.coverage_crp()[..., None]),
        ("outside calling window", ~data.callable[None, :, None, :]),
    )
    for name, mask in masks:
        m = np.broadcast_to(mask, x.shape) & (np.abs(x) > tol)
        if m.any():
            out.append(f"{name}: {int(m.sum())} cells carry attempts, max {np.abs(x[m]).max():.6g}")
    m = ~allowed & (np.abs(x) > tol)
    if m.any() and not out:
        out.append(f"not allowed: {int(m.sum())} cells carry attempts")
    per_cs = x.sum(axis=(1, 2))
    cps = np.where(data.enabled, np.minimum(data.cps, data.cap_cps), 0.0)[:, None]
    over("cps", per_cs, cps * data.slot_s)
    chan = np.where(data.enabled, data.channels, 0.0)[:, None]
    over("channels", np.einsum("crps,crps->cs", data.hold_s, x), chan * data.slot_s)
    agent_load = np.einsum("crps,rp,crps->s", data.p_human, data.handle_s, x)
    over("agents", agent_load, data.agents * data.slot_s * data.target_occupancy)
    over("supply", x.sum(axis=(0, 3)), data.supply)
    if data.supply_per_slot is not None:
        over("supply_per_slot", x.sum(axis=0), data.supply_per_slot)
    total = x.sum()
    per_c = x.sum(axis=(1, 2, 3))
    skip = set(result.relaxed)
    for c in range(data.shape[0]):
        if data.min_share[c] > 0 and f"min_share[{c}]" not in skip and "min_share" not in skip:
            over(
                f"min_share[{c}]", np.array([per_c[c]]), np.array([data.min_share[c] * total]), ">="
            )
        if data.max_share[c] < 1:
            over(f"max_share[{c}]", np.array([per_c[c]]), np.array([data.max_share[c] * total]))
    if np.isfinite(data.budget_mxn) and "budget" not in skip:
        over(
            "budget", np.array([(data.cost_per_attempt_mxn * x).sum()]), np.array([data.budget_mxn])
        )
    return out


def binding_constraints(result: AllocationResult, tol: float = 1e-9, top: int = 20) -> list[str]:
    """Named constraints with the largest |dual| (MXN per unit of rhs), most valuable first."""
    items: list[tuple[float, str]] = []
    for family, d in result.duals.items():
        d = np.atleast_1d(d)
        for idx in zip(*np.nonzero(np.abs(d) > tol), strict=True):
            at = ",".join(str(int(i)) for i in idx)
            items.append((abs(float(d[idx])), f"{family}[{at}]"))
    items.sort(reverse=True)
    return [name for _, name in items[:top]]


# ----------------------------------------------------------------------------- diagnosis


def diagnose(data: AllocationData) -> list[tuple[str, str]]:
    """Structural conflicts among the soft constraints, as (relaxable name, explanation).

    The LP itself is feasible at x = 0 unless a right-hand side is negative, so the conflicts
    that matter are the ones that make the optimum degenerate: a contracted minimum share on a
    carrier that can carry nothing forces the whole day to zero attempts.
    """
    out: list[tuple[str, str]] = []
    if data.budget_mxn < 0:
        out.append(("budget", f"budget_mxn = {data.budget_mxn:.2f} < 0 (already overspent)"))
    allowed_c = data.allowed().any(axis=(1, 2, 3))
    for c in np.flatnonzero(data.min_share > 0):
        if not allowed_c[c]:
            out.append(
                (
                    f"min_share[{c}]",
                    f"min_share[{c}] = {data.min_share[c]:g} but carrier {c} "
                    "can carry no attempt (disabled, no callable covered region or no capacity); "
                    "it would force zero attempts on every carrier",
                )
            )
        elif data.min_share[c] > data.max_share[c]:
            out.append(
                (
                    f"min_share[{c}]",
                    f"min_share[{c}] = {data.min_share[c]:g} > "
                    f"max_share[{c}] = {data.max_share[c]:g}",
                )
            )
    live = data.min_share.copy()
    for name, _ in out:
        if name.startswith("min_share["):
            live[int(name[10:-1])] = 0.0
    if live.sum() > 1 + 1e-12:
        for c in np.flatnonzero(live > 0):
            out.append((f"min_share[{c}]", f"contract minimum shares sum to {live.sum():g} > 1"))
    return out


def _relax(data: AllocationData, names: Sequence[str]) -> AllocationData:
    changes: dict[str, Any] = {}
    if "budget" in names:
        changes["budget_mxn"] = math.inf if data.budget_mxn >= 0 else 0.0
    mins = [int(n[10:-1]) for n in names if n.startswith("min_share[")]
    if mins:
        ms = data.min_share.copy()
        ms[mins] = 0.0
        changes["min_share"] = ms
    return data.replace(**changes) if changes else data


# ----------------------------------------------------------------------------- fast path


def objective_mxn(data: AllocationData, x: F64) -> float:
    """Σ (p·value − priced cost)·x: what `x` earns at the objective's rates p (`p_value` when
    set, else `p_human`)."""
    return float((_problem(data).profit.ravel() * np.asarray(x, float).ravel()).sum())


def _segments(data: AllocationData) -> tuple[NDArray[np.int64], NDArray[np.int64], F64]:
    """Group identical (region, product) segments.

    Returns (group of each segment (K,), representative segment of each group (G,), share of
    the group's attempts each segment takes (K,)). Two segments are identical when every
    per-attempt coefficient, window and coverage agree; they then differ only in supply, so a
    group's attempts split back in proportion to supply (exactly feasible and optimal). With
    per-slot supply caps, segments must also agree on supply.
    """
    n_c, n_r, n_p, n_s = data.shape
    k = n_r * n_p
    seg = lambda a: np.ascontiguousarray(np.moveaxis(a.reshape(n_c, k, n_s), 1, 0)).reshape(k, -1)
    parts = [
        seg(data.p_human),
        seg(data.cost_per_attempt_mxn),
        seg(data.hold_s),
        np.broadcast_to(data.value_mxn, (n_r, n_p)).reshape(k, 1),
        data.handle_s.reshape(k, 1),
        np.repeat(data.callable, n_p, axis=0).astype(float),
        np.moveaxis(data.coverage_crp(), 0, -1).reshape(k, n_c).astype(float),
    ]
    if data.p_value is not None:
        parts.append(seg(data.p_value))
    if data.supply_per_slot is not None:
        parts += [data.supply.reshape(k, 1), data.supply_per_slot.reshape(k, n_s)]
    else:
        parts.append((data.supply.reshape(k, 1) > 0).astype(float))
    key = np.ascontiguousarray(np.concatenate(parts, axis=1))
    groups: dict[bytes, int] = {}
    group = np.empty(k, np.int64)
    reps: list[int] = []
    for i in range(k):  # one dict lookup per segment (hundreds), not per variable
        g = groups.setdefault(key[i].tobytes(), len(groups))
        if g == len(reps):
            reps.append(i)
        group[i] = g
    sup = data.supply.reshape(k)
    gsum = np.bincount(group, weights=sup, minlength=len(reps))
    frac = np.where(gsum[group] > 0, sup / np.where(gsum[group] > 0, gsum[group], 1.0), 0.0)
    return group, np.asarray(reps, np.int64), frac


def _aggregate(pb: _Problem, group: NDArray[np.int64], reps: NDArray[np.int64]) -> _Problem:
    if len(reps) == len(group):
        return pb
    n_g = len(reps)
    return dataclasses.replace(
        pb,
        profit=pb.profit[:, reps],
        cost=pb.cost[:, reps],
        hold=pb.hold[:, reps],
        agent_coef=pb.agent_coef[:, reps],
        allowed=pb.allowed[:, reps],
        supply=np.bincount(group, weights=pb.supply, minlength=n_g),
        slot_cap=None
        if pb.slot_cap is None
        else np.stack([pb.slot_cap[group == g].sum(axis=0) for g in range(n_g)]),
    )


def _initial_columns(pb: _Problem, per_segment: int) -> B:
    """A small first master: each segment's best cells by profit, by profit per agent-second
    and by profit per channel-second (the resources that usually bind), and the same for each
    contracted carrier on its own, so minimum shares can be met from the first solve."""
    n_c, n_k, n_s = pb.profit.shape
    cols = np.zeros(pb.profit.shape, bool)
    live = pb.allowed & (pb.profit > 0)
    criteria = (
        pb.profit,
        pb.profit / np.maximum(pb.agent_coef, 1e-12),
        pb.profit / np.maximum(pb.hold, 1e-12),
    )
    carriers = [np.ones(n_c, bool)] + [
        np.arange(n_c) == c for c in np.flatnonzero(pb.min_share > 0)
    ]
    for only in carriers:
        mask = (live if only.all() else pb.allowed) & only[:, None, None]
        for crit in criteria:
            score = np.where(mask, crit, -np.inf)
            flat = np.moveaxis(score, 1, 0).reshape(n_k, n_c * n_s)
            n = min(per_segment, flat.shape[1] - 1)
            top = np.argpartition(-flat, n, axis=1)[:, :n]
            pick = np.zeros(flat.shape, bool)
            np.put_along_axis(pick, top, True, axis=1)
            cols |= np.moveaxis(pick.reshape(n_k, n_c, n_s), 0, 1)
    return cols & pb.allowed


_MO_STATUS = {
    "TERMINATION_REASON_OPTIMAL": AllocationStatus.OPTIMAL,
    "TERMINATION_REASON_FEASIBLE": AllocationStatus.FEASIBLE,
    "TERMINATION_REASON_INFEASIBLE": AllocationStatus.INFEASIBLE,
    "TERMINATION_REASON_UNBOUNDED": AllocationStatus.UNBOUNDED,
    "TERMINATION_REASON_INFEASIBLE_OR_UNBOUNDED": AllocationStatus.INFEASIBLE,
    "TERMINATION_REASON_NO_SOLUTION_FOUND": AllocationStatus.TIMED_OUT,
}

_Basis = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def _master_solve(
    pb: _Problem, rows: _Rows, cols: NDArray[np.int64], basis: _Basis | None, time_limit_s: float
) -> tuple[AllocationStatus, F64, F64, _Basis | None]:
    """Solve the restricted master with GLOP through MathOpt's proto API, warm from `basis`.

    MathOpt (not ModelBuilder) because it takes an initial basis: after columns enter, the
    previous optimal basis is still primal feasible and GLOP needs only a few pivots. The
    model proto is filled from NumPy arrays; variable ids are stable across rounds (aux
    columns 0..n_aux−1, then n_aux + flat cell index), so a basis carries over by id.
    """
    from ortools.math_opt import (
        callback_pb2,
        model_parameters_pb2,
        model_pb2,
        parameters_pb2,
        result_pb2,
        solution_pb2,
    )
    from ortools.math_opt.core.python import solver as mo_solver

    a, obj = _matrix(pb, rows, cols)
    n_aux = rows.n_aux
    ids = np.concatenate([np.arange(n_aux), cols + n_aux])
    n_v = len(ids)
    m = model_pb2.ModelProto()
    m.variables.ids.extend(ids.tolist())
    m.variables.lower_bounds.extend([0.0] * n_v)
    m.variables.upper_bounds.extend([math.inf] * n_v)
    m.variables.integers.extend([False] * n_v)
    m.objective.maximize = True
    nz = np.flatnonzero(obj)
    m.objective.linear_coefficients.ids.extend(ids[nz].tolist())
    m.objective.linear_coefficients.values.extend(obj[nz].tolist())
    m.linear_constraints.ids.extend(range(rows.n))
    m.linear_constraints.lower_bounds.extend(rows.lb.tolist())
    m.linear_constraints.upper_bounds.extend(rows.ub.tolist())
    mat = m.linear_constraint_matrix
    mat.row_ids.extend(np.repeat(np.arange(rows.n), np.diff(a.indptr)).tolist())
    mat.column_ids.extend(ids[a.indices].tolist())
    mat.coefficients.extend(a.data.tolist())

    params = parameters_pb2.SolveParametersProto()
    params.lp_algorithm = parameters_pb2.LP_ALGORITHM_PRIMAL_SIMPLEX
    limit = max(float(time_limit_s), 1e-3)
    if math.isfinite(limit):  # inf: solve to the end
        params.time_limit.seconds = int(limit)
        params.time_limit.nanos = int((limit - int(limit)) * 1e9)
    mp = model_parameters_pb2.ModelSolveParametersProto()
    mp.reduced_costs_filter.filter_by_ids = True  # not needed: pricing recomputes them
    warm = False
    if basis is not None:
        old_ids, old_status, con_status = basis
        status = np.full(n_v, solution_pb2.BASIS_STATUS_AT_LOWER_BOUND, np.int64)
        pos = np.searchsorted(ids, old_ids)
        hit = (pos < n_v) & (ids[np.minimum(pos, n_v - 1)] == old_ids)
        status[pos[hit]] = old_status[hit]
        # A basis holds exactly one basic entry per constraint. When the rows or the
        # columns changed since it was saved (a closed calling window drops cells),
        # the count is off and GLOP refuses it: start cold instead.
        basic = solution_pb2.BASIS_STATUS_BASIC
        n_basic = int((status == basic).sum()) + int((con_status == basic).sum())
        if len(con_status) == rows.n and n_basic == rows.n:
            mp.initial_basis.variable_status.ids.extend(ids.tolist())
            mp.initial_basis.variable_status.values.extend(status.tolist())
            mp.initial_basis.constraint_status.ids.extend(range(rows.n))
            mp.initial_basis.constraint_status.values.extend(con_status.tolist())
            warm = True

    def run(mp):
        return mo_solver.solve(
            m,
            parameters_pb2.SOLVER_TYPE_GLOP,
            parameters_pb2.SolverInitializerProto(),
            params,
            mp,
            None,
            callback_pb2.CallbackRegistrationProto(),
            None,
            None,
        )

    try:
        res = run(mp)
    except Exception:
        if not warm:
            raise
        # A basis GLOP finds unusable for another reason: the cold solve is still right.
        mp.ClearField("initial_basis")
        res = run(mp)
    reason = result_pb2.TerminationReasonProto.Name(res.termination.reason)
    st = _MO_STATUS.get(reason, AllocationStatus.ERROR)
    if not res.solutions or not res.solutions[0].HasField("primal_solution"):
        return (
            AllocationStatus.TIMED_OUT if st is AllocationStatus.FEASIBLE else st,
            np.zeros(0),
            np.zeros(0),
            None,
        )
    sol = res.solutions[0]
    pv = sol.primal_solution.variable_values
    v = np.zeros(n_v)
    v[np.searchsorted(ids, np.asarray(pv.ids, np.int64))] = pv.values
    y = np.zeros(rows.n)
    if sol.HasField("dual_solution"):
        dv = sol.dual_solution.dual_values
        y[np.asarray(dv.ids, np.int64)] = dv.values
    new_basis = None
    if sol.HasField("basis"):
        b = sol.basis
        new_basis = (
            np.asarray(b.variable_status.ids, np.int64),
            np.asarray(b.variable_status.values, np.int64),
            np.asarray(b.constraint_status.values, np.int64),
        )
    return st, v[n_aux:], y, new_basis


def _column_generation(
    pb: _Problem, start_cols: B, basis: _Basis | None, time_limit_s: float
) -> tuple[AllocationStatus, F64, F64, _Rows, int, B, _Basis | None]:
    from optimizer._pricing import _price  # lazy: numba

    rows = _rows(pb)
    in_master = start_cols & pb.allowed
    add = np.zeros_like(in_master)
    rc = np.empty(pb.profit.shape)
    _, n_k, n_s = pb.profit.shape
    tol = _RC_TOL * max(1.0, float(np.abs(pb.profit).max(initial=0.0)))
    deadline = time.perf_counter() + time_limit_s
    status = AllocationStatus.TIMED_OUT
    x = np.zeros(pb.profit.shape)
    y = np.zeros(rows.n)
    zeros_ks = np.zeros((n_k, n_s))
    rounds = 0
    while rounds < _MAX_ROUNDS:
        rounds += 1
        left = deadline - time.perf_counter()
        if left <= 0:
            status = AllocationStatus.FEASIBLE if rounds > 1 else AllocationStatus.TIMED_OUT
            break
        cols = np.flatnonzero(in_master)
        st, v, y_new, new_basis = _master_solve(pb, rows, cols, basis, left)
        if v.size:
            x = np.zeros(pb.profit.size)
            x[cols] = np.maximum(v, 0.0)
            x = x.reshape(pb.profit.shape)
        if st is not AllocationStatus.OPTIMAL:
            # A time-limited master is feasible for the full problem, just not optimal.
            status = (
                AllocationStatus.FEASIBLE if (v.size and st is AllocationStatus.FEASIBLE) else st
            )
            break
        status, y, basis = st, y_new, new_basis
        d = _duals(rows, y)
        slot_y = d["supply_per_slot"] if pb.slot_cap is not None else zeros_ks
        n_added, _ = _price(
            pb.profit,
            pb.hold,
            pb.agent_coef,
            pb.cost,
            pb.allowed,
            in_master,
            d["cps"],
            d["channels"],
            d["agents"],
            d["supply"],
            np.ascontiguousarray(slot_y),
            d["carrier_total"],
            float(d["budget"]),
            tol,
            1,
            add,
            rc,
        )
        if n_added == 0:
            break
        if n_added > _ADD_COLUMNS:  # the most attractive columns only: small masters pivot fast
            cand = np.flatnonzero(add)
            keep = cand[np.argpartition(-rc.ravel()[cand], _ADD_COLUMNS)[:_ADD_COLUMNS]]
            add[:] = False
            add.ravel()[keep] = True
        in_master |= add
    return status, x, y, rows, rounds, in_master, basis


def plan_day(
    data: AllocationData,
    previous: AllocationResult | None = None,
    time_limit_s: float = 10.0,
) -> AllocationResult:
    """The day plan, fast: segment aggregation + column generation with Numba dual pricing.

    A restricted master holds the few most promising carriers of each (segment, slot) cell;
    the duals of its capacity, agent, supply, share and budget rows price every omitted
    column; columns with positive reduced cost enter until none is left (then the master's
    optimum is the full LP's). `previous` seeds the column set and GLOP's basis (warm start):
    after a partial data change only the columns that changed their minds have to pivot.

    Never raises: soft constraints are relaxed (budget, then contract minimum shares) when they
    conflict, and if nothing can be solved the previous allocation comes back with status
    PREVIOUS (or zeros with NO_PLAN).
    """
    t0 = time.perf_counter()
    try:
        conflicts = diagnose(data)
        relaxed = sorted({name for name, _ in conflicts}, key=lambda n: n != "budget")
        work = _relax(data, relaxed)
        result = _plan(work, previous, time_limit_s)
        if result.status is AllocationStatus.INFEASIBLE:
            # Softest first: budget, then every contract minimum share.
            for step in (
                ["budget"],
                [f"min_share[{c}]" for c in np.flatnonzero(data.min_share > 0)],
            ):
                step = [s for s in step if s not in relaxed]
                if not step:
                    continue
                relaxed += step
                conflicts.append((step[0], f"LP infeasible; relaxing {', '.join(step)}"))
                work = _relax(work, step)
                left = time_limit_s - (time.perf_counter() - t0)
                result = _plan(work, previous, left)
                if result.status is not AllocationStatus.INFEASIBLE:
                    break
        result.conflicts = [why for _, why in conflicts]
        if relaxed and result.status in (AllocationStatus.OPTIMAL, AllocationStatus.FEASIBLE):
            result.relaxed = list(relaxed)
            result.status = AllocationStatus.RELAXED
        if not result.status.usable:
            return _fallback(data, previous, result.status, "; ".join(result.conflicts))
        result.solve_time_s = time.perf_counter() - t0
        return result
    except Exception as exc:  # the 3 a.m. rule: a named status, never an exception
        return _fallback(data, previous, AllocationStatus.ERROR, f"{type(exc).__name__}: {exc}")


def plan_over_draws(
    data: AllocationData,
    result: AllocationResult,
    factors: F64,
    time_limit_s: float = 10.0,
) -> AllocationResult:
    """The mean of the plans that value contacts at ``p_human × factors[k]`` for each draw k
    (`factors` (K, ...) broadcasts to (C,R,P,S)), under `data`'s constraints, each warm from
    `result` (the plan at `p_human`). The constraints are the same in every plan, so their
    mean meets them too. `result` comes back when no draw solves. The draws are solved on
    up to one thread per core: GLOP runs without the GIL, and each solve is deterministic."""

    def solve(f: F64) -> AllocationResult:
        return plan_day(data.replace(p_value=data.p_human * f), previous=result,
                        time_limit_s=time_limit_s)

    factors = np.asarray(factors, float)
    with ThreadPoolExecutor(max(1, min(len(factors), os.cpu_count() or 1))) as pool:
        xs = [r.x for r in pool.map(solve, factors) if r.status.usable]
    if not xs:
        return result
    x = np.mean(xs, axis=0)
    return dataclasses.replace(result, x=x, objective_mxn=objective_mxn(data, x), columns=None)


def _fallback(
    data: AllocationData, previous: AllocationResult | None, why: AllocationStatus, msg: str
) -> AllocationResult:
    message = f"plan_day failed ({why.value}): {msg}".rstrip(": ")
    if previous is not None and previous.x.shape == data.shape:
        return dataclasses.replace(previous, status=AllocationStatus.PREVIOUS, message=message)
    return AllocationResult(AllocationStatus.NO_PLAN, 0.0, np.zeros(data.shape), message=message)


def _plan(
    data: AllocationData, previous: AllocationResult | None, time_limit_s: float
) -> AllocationResult:
    n_c, n_r, n_p, n_s = data.shape
    full = _problem(data)
    group, reps, frac = _segments(data)
    pb = _aggregate(full, group, reps)
    start = _initial_columns(pb, _INIT_COLUMNS)
    basis = None
    if previous is not None and previous.warm is not None:
        prev_group, prev_cols, prev_basis = previous.warm
        if np.array_equal(prev_group, group) and prev_cols.shape == start.shape:
            start |= prev_cols
            basis = prev_basis
    status, xg, y, rows, rounds, cols, basis = _column_generation(pb, start, basis, time_limit_s)
    # Disaggregate: a group's attempts split over its segments in proportion to supply.
    x = (xg[:, group] * frac[None, :, None]).reshape(n_c, n_r, n_p, n_s)
    duals = _duals(rows, y)
    duals["supply"] = duals["supply"][group].reshape(n_r, n_p)
    duals["supply_per_slot"] = duals["supply_per_slot"][group].reshape(n_r, n_p, n_s)
    obj = float((full.profit.ravel() * x.ravel()).sum())
    return AllocationResult(
        status=status,
        objective_mxn=obj,
        x=x,
        duals=duals,
        rounds=rounds,
        n_columns=int(cols.sum()),
        columns=cols[:, group].reshape(n_c, n_r, n_p, n_s),
        warm=(group, cols, basis),
    )


# ----------------------------------------------------------------------------- live split


def route_values(plan: AllocationResult, data: AllocationData, estimates_p_human: F64,
                 slot: int) -> F64:
    """Marginal value ``[c, r, p]`` of one more attempt on each route in `slot`, in MXN:
    p_human·worth − cost at the latest estimates (C,R,P) or (C,R,P,S).

    Agent time is priced at the plan's dual of this slot's agent row: when the floor is
    agent-bound a contact is worth its value less the agent time it takes, so a route that
    only answers more buys no more contacts, and the cheaper route per contact wins.
    """
    est = np.asarray(estimates_p_human, dtype=np.float64)
    if est.ndim == 4:
        est = est[..., slot]
    lam = plan.duals.get("agents")
    lam_s = max(float(lam[slot]), 0.0) if lam is not None and np.size(lam) > slot else 0.0
    worth = data.value_mxn[None, :] - lam_s * data.handle_s  # (R, P) per contact
    return est * worth[None] - data.priced_cost[..., slot]


def live_split(
    plan: AllocationResult, data: AllocationData, estimates_p_human: F64, slot: int
) -> F64:
    """Shares ``[r, p, c]`` of the current slot's traffic over carriers, from the latest estimates.

    The day plan fixes, for this slot, how many attempts each carrier takes and how many each
    region × product gets; the latest contact estimates (C,R,P) or (C,R,P,S) re-decide who goes
    where: a greedy re-fill of the plan's per-carrier capacities by marginal value
    (`route_values`), best first (Numba, well under a millisecond for 20×32×8). Demand the
    greedy cannot place (coverage) keeps the plan's own split. Rows sum to 1 for every segment
    with an allowed carrier in this slot — a segment the plan left empty goes wholly to its best
    carrier — and are 0 where none is allowed; disabled and uncovered carriers get 0.
    """
    from optimizer._pricing import _greedy_split  # lazy: numba

    n_c, n_r, n_p, _ = data.shape
    value = route_values(plan, data, estimates_p_human, slot).reshape(n_c, n_r * n_p)
    allowed = data.allowed()[..., slot].reshape(n_c, n_r * n_p)
    xs = np.where(allowed, plan.x[..., slot].reshape(n_c, n_r * n_p), 0.0)
    out = np.empty((n_r * n_p, n_c))
    _greedy_split(
        np.ascontiguousarray(value),
        np.ascontiguousarray(allowed),
        xs.sum(axis=0),
        xs.sum(axis=1),
        np.ascontiguousarray(xs),
        out,
    )
    return out.reshape(n_r, n_p, n_c)


# ----------------------------------------------------------------------------- message


def slot_at(data: AllocationData, now: datetime) -> int:
    """Index of the slot containing `now` (clipped to the plan), 0 when `data.start` is unset."""
    if data.start is None:
        return 0
    i = int((now - data.start).total_seconds() // data.slot_s)
    return min(max(i, 0), data.shape[3] - 1)


def to_message(
    result: AllocationResult,
    data: AllocationData,
    campaign: str,
    model_version: str,
    valid_until: datetime,
    now: datetime,
    *,
    carrier_names: Sequence[str],
    region_codes: Sequence[str],
    product_names: Sequence[str],
    shares: F64 | None = None,
    slot: int | None = None,
    version: int | None = None,
    pacing: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The ``smartdial.allocation/1`` message for the slot containing `now`.

    `shares` (R,P,C) defaults to the plan's own split of that slot (use `live_split` for the
    re-estimated one). Carrier budgets are the plan's rates for the slot: ``cps_budget`` in
    attempts per second and ``channel_budget`` in concurrent channels (Little's law, rounded up,
    never above the carrier's channels). `version` defaults to `now` in epoch milliseconds.
    """
    n_c, n_r, n_p, _ = data.shape
    if (len(carrier_names), len(region_codes), len(product_names)) != (n_c, n_r, n_p):
        raise ValueError("carrier_names, region_codes, product_names must match the data's shape")
    s = slot_at(data, now) if slot is None else slot
    xs = result.x[..., s]  # (C,R,P)
    if shares is None:
        tot = xs.sum(axis=0)
        shares = np.where(tot > 0, xs / np.where(tot > 0, tot, 1.0), 0.0).transpose(1, 2, 0)
    share_map: dict[str, dict[str, dict[str, float]]] = {}
    for r in range(n_r):
        for p in range(n_p):
            row = {
                carrier_names[c]: round(float(shares[r, p, c]), 6)
                for c in np.flatnonzero(shares[r, p] > 0)
            }
            if row:
                share_map.setdefault(region_codes[r], {})[product_names[p]] = row
    cps_rate = xs.sum(axis=(1, 2)) / data.slot_s
    chans = np.einsum("crp,crp->c", data.hold_s[..., s], xs) / data.slot_s
    chans = np.minimum(np.ceil(chans - 1e-9), np.where(data.enabled, data.channels, 0))
    carriers = {
        carrier_names[c]: {
            "cps_budget": round(float(cps_rate[c]), 4),
            "channel_budget": int(max(chans[c], 0)),
        }
        for c in range(n_c)
    }
    msg: dict[str, Any] = {
        "schema": "smartdial.allocation/1",
        "campaign": campaign,
        "version": int(now.timestamp() * 1000) if version is None else int(version),
        "created_at": now.isoformat(),
        "valid_until": valid_until.isoformat(),
        "model_version": model_version,
        "status": result.status.value,
        "shares": share_map,
        "carriers": carriers,
    }
    if pacing is not None:
        msg["pacing"] = dict(pacing)
    return msg
