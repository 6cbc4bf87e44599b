"""The operation as telephony ops configures it: carriers, regions, products, campaigns, rules.

Pure, frozen pydantic models with cross-checks; no I/O except checking that a
referenced DNC file exists. Loading YAML and turning errors into messages is `configs.load`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index i is `date.weekday() == i`."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class CrossCheckError(ValueError):
    """Problems found by a model-level check, each with the field path it is about.

    `configs.load` prefixes each path with the model's own location so that the
    message names the exact field (`campaigns[0] (x).products[1]`), not the model.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


def _check_name(v: str) -> str:
    # Names end up in MQTT topics, metric labels and file names: no spaces, '/', '+', '#'.
    if not _NAME_RE.match(v):
        raise ValueError(
            f"{v!r} is not a valid name: use letters, digits, '_', '-', '.', "
            "starting with a letter or digit"
        )
    return v


def _check_timezone(v: str) -> str:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {v!r} (e.g. 'America/Mexico_City')") from None
    return v


def _parse_clock(v: Any) -> Any:
    # YAML 1.1 reads unquoted 17:00 as the integer 1020 (base 60) and pydantic would take an
    # integer as seconds: refuse numbers outright so a clock time is never silently wrong.
    if isinstance(v, dt.time):
        return v
    if isinstance(v, str):
        m = _CLOCK_RE.match(v.strip())
        if m:
            h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
            if h < 24 and mi < 60 and s < 60:
                return dt.time(h, mi, s)
    raise ValueError(f"expected a clock time 'HH:MM' (quoted in YAML), got {v!r}")


def _names_or_all(v: Any) -> Any:
    if v == "all":
        return v
    if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
        if not v:
            raise ValueError("an empty list covers nothing; use 'all' or name at least one")
        return tuple(v)
    raise ValueError(f"expected 'all' or a list of names, got {v!r}")


Name = Annotated[str, AfterValidator(_check_name)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
ClockTime = Annotated[dt.time, BeforeValidator(_parse_clock)]
NamesOrAll = Annotated[tuple[str, ...] | Literal["all"], BeforeValidator(_names_or_all)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _duplicates(items: Iterable[str]) -> list[str]:
    return [k for k, n in Counter(items).items() if n > 1]


class CallingWindow(_Frozen):
    """Local hours [start, end) on the given weekdays when a lead may be called.

    Evaluated on the lead's wall clock (CONDUSEF allows collection calls 07:00–22:00).
    """

    days: tuple[Weekday, ...] = WEEKDAYS
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _check(self) -> CallingWindow:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if not self.days:
            raise ValueError("days is empty: a window must apply on at least one weekday")
        if dup := _duplicates(self.days):
            raise ValueError(f"days repeats {dup}")
        return self

    def contains(self, local: dt.datetime) -> bool:
        """Whether `local` (a wall-clock time in the lead's zone) falls inside this window."""
        return WEEKDAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


def within_calling_hours(windows: Iterable[CallingWindow], local: dt.datetime) -> bool:
    """Whether any window allows a call at the local wall-clock time `local`."""
    return any(w.contains(local) for w in windows)


class Distribution(_Frozen):
    """A positive duration law, given by mean and sd in seconds (what people measure)."""

    kind: Literal["exponential", "lognormal", "gamma", "fixed"]
    mean_s: float = Field(gt=0)
    sd_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        if self.kind in ("lognormal", "gamma") and self.sd_s <= 0:
            raise ValueError(f"a {self.kind} distribution needs sd_s > 0")
        return self

    def lognormal_params(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal for a lognormal with this mean and sd."""
        sigma2 = math.log1p((self.sd_s / self.mean_s) ** 2)
        return math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Draw `size` durations in seconds (exponential ignores sd_s, fixed ignores both)."""
        if self.kind == "fixed":
            return np.full(size, self.mean_s)
        if self.kind == "exponential":
            return rng.exponential(self.mean_s, size)
        if self.kind == "lognormal":
            mu, sigma = self.lognormal_params()
            return rng.lognormal(mu, sigma, size)
        shape = (self.mean_s / self.sd_s) ** 2
        return rng.gamma(shape, self.sd_s**2 / self.mean_s, size)


class Network(_Frozen):
    """A destination mobile/fixed network (who serves the number: Telcel, AT&T…)."""

    name: Name


class Region(_Frozen):
    """Where a lead lives: fixes its local clock, hence when it may be called."""

    code: Name
    name: str
    timezone: TimeZoneName
    calling_hours: tuple[CallingWindow, ...] | None = None
    """None = the operation's default calling hours."""

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Product(_Frozen):
    """A debt product; its contact value lets the optimiser weigh a contact against its cost."""

    name: Name
    contact_value_mxn: float = Field(gt=0)
    """Expected recovery (MXN) of one right-party contact."""


class Coverage(_Frozen):
    """Which destination regions and networks a carrier can terminate."""

    regions: NamesOrAll = "all"
    networks: NamesOrAll = "all"

    def covers(self, region: str, network: str) -> bool:
        return (self.regions == "all" or region in self.regions) and (
            self.networks == "all" or network in self.networks
        )


class Carrier(_Frozen):
    """An outbound SIP trunk with its hard limits, price and contract."""

    name: Name
    dial_string: str
    """Asterisk dial string; `{number}` becomes the dialled number (PJSIP/{number}@trunk-a)."""
    channels: int = Field(gt=0)
    """Concurrent calls the trunk accepts (ringing and talking)."""
    cps: float = Field(gt=0)
    """Call setups per second the trunk accepts."""
    cost_per_minute_mxn: float = Field(ge=0)
    billing_initial_s: int = Field(default=60, ge=1)
    """Minimum billed duration of a connected call (60/60, 30/6, 1/1 billing)."""
    billing_increment_s: int = Field(default=60, ge=1)
    cost_per_attempt_mxn: float = Field(default=0.0, ge=0)
    """Charged on every attempt, connected or not (setup fee)."""
    coverage: Coverage = Coverage()
    min_share: Fraction = 0.0
    """Contractual minimum share of the campaign's attempts (volume commitment)."""
    max_share: Fraction = 1.0
    enabled: bool = True

    @field_validator("dial_string")
    @classmethod
    def _has_number(cls, v: str) -> str:
        if "{number}" not in v:
            raise ValueError(f"dial_string {v!r} must contain '{{number}}'")
        return v

    @model_validator(mode="after")
    def _check(self) -> Carrier:
        if self.min_share > self.max_share:
            raise ValueError(f"min_share {self.min_share} exceeds max_share {self.max_share}")
        return self

    def billed_seconds(self, talk_s: float) -> float:
        """Billed duration of a call connected for `talk_s` seconds (0 if never connected)."""
        if talk_s <= 0:
            return 0.0
        extra = max(0.0, talk_s - self.billing_initial_s)
        return self.billing_initial_s + math.ceil(extra / self.billing_increment_s) * (
            self.billing_increment_s
        )

    def call_cost_mxn(self, talk_s: float) -> float:
        """Cost of one attempt connected (billed) for `talk_s` seconds."""
        billed = self.billed_seconds(talk_s)
        return self.cost_per_attempt_mxn + billed / 60.0 * self.cost_per_minute_mxn


class RetryRules(_Frozen):
    """Attempt caps and minimum gaps by last outcome (regulatory and anti-harassment).

    Invalid numbers are never retried; there is deliberately no gap for them.
    """

    max_attempts_per_day: int = Field(default=3, ge=1)
    max_attempts_per_7d: int = Field(default=7, ge=1)
    min_gap_after_busy_s: float = Field(default=900, ge=0)
    min_gap_after_no_answer_s: float = Field(default=3600, ge=0)
    min_gap_after_machine_s: float = Field(default=7200, ge=0)
    min_gap_after_congestion_s: float = Field(default=300, ge=0)
    min_gap_after_abandoned_s: float = Field(default=3600, ge=0)
    stop_after_contact: bool = True
    """No further attempt that day once the debtor has spoken to an agent."""

    @model_validator(mode="after")
    def _check(self) -> RetryRules:
        if self.max_attempts_per_day > self.max_attempts_per_7d:
            raise ValueError(
                f"max_attempts_per_day {self.max_attempts_per_day} exceeds "
                f"max_attempts_per_7d {self.max_attempts_per_7d}"
            )
        return self


class AgentSlot(_Frozen):
    start: ClockTime
    agents: int = Field(ge=0)


class AgentSchedule(_Frozen):
    """Logged-in agents through the day, piecewise constant in the schedule's own zone.

    Slot i's head-count holds from its start until the next slot's start (the last until `end`).
    """

    timezone: TimeZoneName
    end: ClockTime
    slots: tuple[AgentSlot, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AgentSchedule:
        problems = []
        for i, (a, b) in enumerate(zip(self.slots, self.slots[1:], strict=False)):
            if b.start <= a.start:
                problems.append(
                    (f"slots[{i + 1}].start", f"{b.start} is not after the previous {a.start}")
                )
        if self.slots[-1].start >= self.end:
            problems.append(
                ("end", f"{self.end} is not after the last slot {self.slots[-1].start}")
            )
        if problems:
            raise CrossCheckError(problems)
        return self

    @property
    def start(self) -> dt.time:
        return self.slots[0].start

    def agents_at(self, t: dt.time) -> int:
        """Agents logged in at local time `t` (0 before the first slot and from `end`)."""
        if t < self.start or t >= self.end:
            return 0
        i = bisect.bisect_right([s.start for s in self.slots], t) - 1
        return self.slots[i].agents

    def agent_hours(self) -> float:
        """Total agent-hours over the day (for staffing summaries)."""
        total = 0.0
        bounds = [s.start for s in self.slots[1:]] + [self.end]
        for slot, until in zip(self.slots, bounds, strict=True):
            total += slot.agents * (_seconds(until) - _seconds(slot.start)) / 3600
        return total


def _seconds(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


class DialerSettings(_Frozen):
    """Parameters of the pacing policies (each policy reads only its own)."""

    tick_s: float = Field(default=1.0, gt=0)
    """Pacing decision period."""
    dial_ratio: float = Field(default=2.5, ge=1)
    """Fixed-ratio pacing: lines dialled per free agent."""
    poisson_calls_per_agent_hour: float = Field(default=60, gt=0)
    """Fixed-rate pacing: dial rate = this × logged-in agents."""
    adaptive_max_level: float = Field(default=4.0, ge=1)
    """VICIdial-style adaptive pacing: highest dial level."""
    adaptive_start_level: float = Field(default=1.5, ge=1)
    adaptive_drop_target: float = Field(default=0.03, gt=0, lt=1)
    """Drop (abandon) rate the adaptive level steers towards."""
    predictive_aim: float = Field(default=0.7, gt=0, le=1)
    """Model-based predictive pacing: the realised abandonment it steers to, as a
    fraction of the campaign's abandon target (0.7 × 3 % = 2.1 %: the margin absorbs
    the controller's overshoot and the noise of a small floor)."""
    predictive_gain: float = Field(default=0.04, gt=0, le=1)
    """Predictive pacing: per-minute gain of the outer controller (log-tolerance step)."""

    @model_validator(mode="after")
    def _check(self) -> DialerSettings:
        if self.adaptive_start_level > self.adaptive_max_level:
            raise ValueError(
                f"adaptive_start_level {self.adaptive_start_level} exceeds "
                f"adaptive_max_level {self.adaptive_max_level}"
            )
        return self


class Campaign(_Frozen):
    """A team of agents working a set of products under one abandon target and rule set."""

    name: Name
    products: tuple[Name, ...] = Field(min_length=1)
    timezone: TimeZoneName
    """The campaign's own clock, for its agent schedule and scenario incidents."""
    abandon_target: float = Field(default=0.03, gt=0, le=0.5)
    """Maximum share of human-answered calls abandoned (hard rule)."""
    abandon_after_s: float = Field(default=2.0, gt=0)
    """An answered call with no agent within this many seconds counts as abandoned."""
    ring_timeout_s: float = Field(default=25, gt=0)
    daily_budget_mxn: float | None = Field(default=None, gt=0)
    """Telecom spend allowed per day. The optimiser then buys cheaper routes as it nears it
    (pacing still dials what the agents can take); unset: contact value alone decides."""
    amd: bool = True
    """Answering-machine detection on: machines are hung up instead of sent to agents."""
    retry: RetryRules = RetryRules()
    agents: AgentSchedule
    dialer: DialerSettings = DialerSettings()
    dnc_file: str | None = None
    """Do-not-call list, one phone number per line; relative to the operation file,
    stored resolved and absolute."""

    @field_validator("dnc_file")
    @classmethod
    def _resolve_dnc(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        base = (info.context or {}).get("base_dir", ".")
        path = (Path(base) / v).resolve()
        if not path.is_file():
            raise ValueError(f"DNC file not found: {path}")
        return str(path)

    def dnc_numbers(self) -> frozenset[str]:
        """The do-not-call numbers (read on demand; blank lines and '#' comments ignored)."""
        if self.dnc_file is None:
            return frozenset()
        lines = Path(self.dnc_file).read_text(encoding="utf-8").splitlines()
        return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


class Operation(_Frozen):
    """Everything telephony ops declares: who we may call, when, over what, for which campaign."""

    name: str
    currency: Literal["MXN"] = "MXN"
    calling_hours: tuple[CallingWindow, ...] = Field(min_length=1)
    """Default local calling windows for every region without its own."""
    networks: tuple[Network, ...] = Field(min_length=1)
    products: tuple[Product, ...] = Field(min_length=1)
    regions: tuple[Region, ...] = Field(min_length=1)
    carriers: tuple[Carrier, ...] = Field(min_length=1)
    campaigns: tuple[Campaign, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_check(self) -> Operation:
        problems: list[tuple[str, str]] = []
        for field, key in (
            ("networks", "name"),
            ("products", "name"),
            ("regions", "code"),
            ("carriers", "name"),
            ("campaigns", "name"),
        ):
            for dup in _duplicates(getattr(x, key) for x in getattr(self, field)):
                problems.append((field, f"{key} {dup!r} appears more than once"))

        regions = {r.code for r in self.regions}
        networks = {n.name for n in self.networks}
        products = {p.name for p in self.products}
        for i, c in enumerate(self.carriers):
            for field, known in (("regions", regions), ("networks", networks)):
                names = getattr(c.coverage, field)
                if names == "all":
                    continue
                for j, n in enumerate(names):
                    if n not in known:
                        problems.append(
                            (
                                f"carriers[{i}] ({c.name}).coverage.{field}[{j}]",
                                f"unknown {field[:-1]} {n!r}",
                            )
                        )
        for i, camp in enumerate(self.campaigns):
            for j, p in enumerate(camp.products):
                if p not in products:
                    problems.append(
                        (f"campaigns[{i}] ({camp.name}).products[{j}]", f"unknown product {p!r}")
                    )

        enabled = [c for c in self.carriers if c.enabled]
        if not enabled:
            problems.append(("carriers", "no enabled carrier: nothing could be dialled"))
        else:
            lo = sum(c.min_share for c in enabled)
            hi = sum(c.max_share for c in enabled)
            if lo > 1 + 1e-9:
                problems.append(("carriers", f"min_share of enabled carriers sums to {lo:.3g} > 1"))
            if hi < 1 - 1e-9:
                problems.append(("carriers", f"max_share of enabled carriers sums to {hi:.3g} < 1"))
        if problems:
            raise CrossCheckError(problems)
        return self

    # -- lookups ------------------------------------------------------------------------

    @property
    def enabled_carriers(self) -> tuple[Carrier, ...]:
        return tuple(c for c in self.carriers if c.enabled)

    def campaign(self, name: str) -> Campaign:
        for c in self.campaigns:
            if c.name == name:
                return c
        raise KeyError(f"no campaign {name!r}; known: {[c.name for c in self.campaigns]}")

    def carrier(self, name: str) -> Carrier:
        return self.carriers[self.carrier_index(name)]

    def carrier_index(self, name: str) -> int:
        return _index(self.carriers, "name", name, "carrier")

    def region(self, code: str) -> Region:
        return self.regions[self.region_index(code)]

    def region_index(self, code: str) -> int:
        return _index(self.regions, "code", code, "region")

    def product_index(self, name: str) -> int:
        return _index(self.products, "name", name, "product")

    def network_index(self, name: str) -> int:
        return _index(self.networks, "name", name, "network")

    def region_calling_hours(self, region: Region | str) -> tuple[CallingWindow, ...]:
        """The region's own calling windows, or the operation's default."""
        r = self.region(region) if isinstance(region, str) else region
        return r.calling_hours if r.calling_hours is not None else self.calling_hours

    def uncovered(self) -> list[tuple[str, str]]:
        """(region, network) pairs no enabled carrier can reach: such leads cannot be dialled."""
        enabled = self.enabled_carriers
        return [
            (r.code, n.name)
            for r in self.regions
            for n in self.networks
            if not any(c.coverage.covers(r.code, n.name) for c in enabled)
        ]


def _index(items: Sequence[Any], key: str, value: str, what: str) -> int:
    for i, x in enumerate(items):
        if getattr(x, key) == value:
            return i
    raise KeyError(f"no {what} {value!r}")
