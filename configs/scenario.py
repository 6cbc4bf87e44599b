"""A simulation scenario: an operation, one simulated day, a lead portfolio, a hidden truth.

The truth is the synthetic world the simulator draws from; policies never see it.
Pure models; loading from YAML (and resolving the operation file) is `configs.load`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

from pydantic import Field, model_validator

from configs.schema import (
    Campaign,
    ClockTime,
    CrossCheckError,
    Distribution,
    Operation,
    _Frozen,
)

HOURS_PER_DAY = 24


class Portfolio(_Frozen):
    """How the synthetic lead file is drawn (weights need not sum to 1; they are normalised)."""

    leads: int = Field(ge=1, le=5_000_000)
    product_mix: dict[str, float] = Field(min_length=1)
    network_mix: dict[str, float] = Field(min_length=1)
    region_weights: dict[str, float] | None = None
    """None = uniform over regions."""
    invalid_fraction: float = Field(default=0.04, ge=0, lt=1)
    dnc_fraction: float = Field(default=0.01, ge=0, lt=1)
    days_past_due_max: int = Field(default=180, ge=1)
    prior_attempts_7d_max: int = Field(default=3, ge=0)
    """Attempts already made in the previous 7 days, drawn uniformly 0..max."""
    callback_fraction: float = Field(default=0.02, ge=0, lt=1)
    """Leads with a promised callback today, at a time drawn over the shift."""


class Incident(_Frozen):
    """Something that goes wrong during the simulated day, at a campaign-local clock time."""

    kind: Literal["answer_rate", "outage", "agents_logoff"]
    at: ClockTime
    carrier: str | None = None
    """Required for answer_rate and outage."""
    factor: float = Field(default=0.5, gt=0)
    """answer_rate: multiplier on the carrier's answer probability."""
    duration_min: float | None = Field(default=None, gt=0)
    """None = until the end of the day; required for outage."""
    fraction: float = Field(default=0.5, gt=0, le=1)
    """agents_logoff: share of the logged-in agents that log off."""

    @model_validator(mode="after")
    def _check(self) -> Incident:
        problems = []
        if self.kind in ("answer_rate", "outage") and self.carrier is None:
            problems.append(("carrier", f"a {self.kind} incident must name a carrier"))
        if self.kind == "outage" and self.duration_min is None:
            problems.append(("duration_min", "an outage must give duration_min"))
        if problems:
            raise CrossCheckError(problems)
        return self

    @property
    def end(self) -> dt.time | None:
        """Campaign-local end time, None if it lasts until the end of the day."""
        if self.duration_min is None:
            return None
        start = dt.datetime.combine(dt.date(2000, 1, 1), self.at)
        end = start + dt.timedelta(minutes=self.duration_min)
        return end.time() if end.date() == start.date() else None


def _lognormal(mean_s: float, sd_s: float) -> Distribution:
    return Distribution(kind="lognormal", mean_s=mean_s, sd_s=sd_s)


class Truth(_Frozen):
    """The hidden world: answer probabilities and durations the simulator draws from.

    P(human answers) for an attempt =
        contact_by_hour[product][local hour] × region multiplier (shape shifted per region)
        × network_factor × carrier_quality[carrier][network] × attempt_decay ** prior attempts
        × active answer_rate incidents, clipped to [0, 1].
    """

    contact_by_hour: dict[str, tuple[float, ...]]
    """Per product, 24 values: P(a human answers) by local hour 0..23 on a first attempt,
    network factor 1 and carrier quality 1."""
    region_spread: float = Field(default=0.25, ge=0)
    """sd of the lognormal per-region multipliers drawn from the seed."""
    region_peak_shift_h: float = Field(default=1.5, ge=0)
    """Max shift, in hours, of a product's hourly shape per region (drawn from the seed)."""
    network_factor: dict[str, float] = Field(default_factory=dict)
    """Missing network → 1."""
    carrier_quality: dict[str, dict[str, float]] = Field(default_factory=dict)
    """carrier → network → multiplier on answer probability (missing → 1)."""
    carrier_failure_rate: dict[str, float] = Field(default_factory=dict)
    """P(congestion/failure) per attempt on that carrier (missing → 0.01)."""
    machine_rate: float = Field(default=0.25, ge=0, lt=1)
    """P(answering machine) for a call no human answers."""
    busy_rate: float = Field(default=0.06, ge=0, lt=1)
    attempt_decay: float = Field(default=0.85, gt=0, le=1)
    """Answer probability multiplier per prior attempt."""
    ring_time: Distribution = _lognormal(9.0, 5.0)
    """Until a human or machine answers."""
    fail_signal_time: Distribution = _lognormal(3.0, 1.5)
    """Until busy, congestion or invalid number is signalled."""
    handle_time: Distribution = _lognormal(160.0, 110.0)
    wrap_up: Distribution = Distribution(kind="gamma", mean_s=20.0, sd_s=10.0)
    patience: Distribution = Distribution(kind="fixed", mean_s=2.0)
    """How long an answered callee waits for an agent."""
    machine_detect: Distribution = Distribution(kind="fixed", mean_s=3.5)
    """AMD decision time (billed)."""
    incidents: tuple[Incident, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Truth:
        problems = []
        for product, values in self.contact_by_hour.items():
            where = f"contact_by_hour.{product}"
            if len(values) != HOURS_PER_DAY:
                problems.append((where, f"needs {HOURS_PER_DAY} hourly values, got {len(values)}"))
            for h, v in enumerate(values):
                if not 0 <= v <= 1:
                    problems.append((f"{where}[{h}]", f"probability {v} is outside [0, 1]"))
        factor_maps = [("network_factor", self.network_factor)]
        factor_maps += [(f"carrier_quality.{c}", q) for c, q in self.carrier_quality.items()]
        for name, factors in factor_maps:
            for k, v in factors.items():
                if not (v >= 0 and math.isfinite(v)):
                    problems.append((f"{name}.{k}", f"multiplier {v} must be finite and >= 0"))
        for k, v in self.carrier_failure_rate.items():
            if not 0 <= v < 1:
                problems.append((f"carrier_failure_rate.{k}", f"rate {v} is outside [0, 1)"))
        if problems:
            raise CrossCheckError(problems)
        return self

    def failure_rate(self, carrier: str) -> float:
        return self.carrier_failure_rate.get(carrier, 0.01)

    def quality(self, carrier: str, network: str) -> float:
        return self.carrier_quality.get(carrier, {}).get(network, 1.0)


class PolicySpec(_Frozen):
    """One dialer policy to simulate: how many lines, over which carrier, which lead first."""

    pacing: Literal["progressive", "ratio", "poisson", "adaptive", "predictive"] = "adaptive"
    routing: Literal["round_robin", "static", "cheapest", "optimizer", "oracle"] = "static"
    """optimizer: shares from the contact model and the allocator, learnt from outcomes;
    oracle: the same allocator fed the scenario's true probabilities (the upper bound)."""
    leads: Literal["oldest", "value"] = "oldest"


def _default_policies() -> dict[str, PolicySpec]:
    return {
        "baseline": PolicySpec(pacing="adaptive", routing="static"),
        "progressive": PolicySpec(pacing="progressive", routing="round_robin"),
        "ratio": PolicySpec(pacing="ratio", routing="static"),
        "poisson": PolicySpec(pacing="poisson", routing="static"),
        "cheapest": PolicySpec(pacing="adaptive", routing="cheapest"),
        "predictive": PolicySpec(pacing="predictive", routing="static", leads="value"),
        "optimizer": PolicySpec(pacing="adaptive", routing="optimizer"),
        "oracle": PolicySpec(pacing="adaptive", routing="oracle"),
        "smartdial": PolicySpec(pacing="predictive", routing="optimizer", leads="value"),
    }


class Scenario(_Frozen):
    """One simulated day of one campaign, with the world the policies are tested against."""

    name: str
    operation: Operation
    """YAML gives a path relative to the scenario file; `configs.load` loads it."""
    campaign: str
    date: dt.date
    """The simulated day (its weekday selects the calling windows)."""
    seed: int = 1
    portfolio: Portfolio
    truth: Truth
    policies: dict[str, PolicySpec] = Field(default_factory=_default_policies, min_length=1)
    default_policy: str = "baseline"

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        op = self.operation
        problems: list[tuple[str, str]] = []
        products = {p.name for p in op.products}
        networks = {n.name for n in op.networks}
        regions = {r.code for r in op.regions}
        carriers = {c.name for c in op.carriers}

        campaign_products: tuple[str, ...] = ()
        if self.campaign not in {c.name for c in op.campaigns}:
            problems.append(
                ("campaign", f"unknown campaign {self.campaign!r} in operation {op.name!r}")
            )
        else:
            campaign_products = op.campaign(self.campaign).products

        pf = self.portfolio
        for field, mix, known, what in (
            ("product_mix", pf.product_mix, set(campaign_products) or products, "campaign product"),
            ("network_mix", pf.network_mix, networks, "network"),
            ("region_weights", pf.region_weights or {}, regions, "region"),
        ):
            where = f"portfolio.{field}"
            for k, w in mix.items():
                if k not in known:
                    problems.append((f"{where}.{k}", f"unknown {what} {k!r}"))
                if not (w >= 0 and math.isfinite(w)):
                    problems.append((f"{where}.{k}", f"weight {w} must be finite and >= 0"))
            if mix and not sum(w for w in mix.values() if w >= 0) > 0:
                problems.append((where, "weights sum to 0"))

        t = self.truth
        for p in t.contact_by_hour:
            if p not in products:
                problems.append((f"truth.contact_by_hour.{p}", f"unknown product {p!r}"))
        for p in campaign_products:
            if p not in t.contact_by_hour:
                problems.append(
                    ("truth.contact_by_hour", f"missing campaign product {p!r} (24 values)")
                )
        for n in t.network_factor:
            if n not in networks:
                problems.append((f"truth.network_factor.{n}", f"unknown network {n!r}"))
        for c, per_network in t.carrier_quality.items():
            if c not in carriers:
                problems.append((f"truth.carrier_quality.{c}", f"unknown carrier {c!r}"))
            for n in per_network:
                if n not in networks:
                    problems.append((f"truth.carrier_quality.{c}.{n}", f"unknown network {n!r}"))
        for c in t.carrier_failure_rate:
            if c not in carriers:
                problems.append((f"truth.carrier_failure_rate.{c}", f"unknown carrier {c!r}"))
        for i, inc in enumerate(t.incidents):
            if inc.carrier is not None and inc.carrier not in carriers:
                problems.append(
                    (
                        f"truth.incidents[{i}] ({inc.kind}).carrier",
                        f"unknown carrier {inc.carrier!r}",
                    )
                )

        if self.default_policy not in self.policies:
            problems.append(
                (
                    "default_policy",
                    f"{self.default_policy!r} is not one of the policies {sorted(self.policies)}",
                )
            )
        if problems:
            raise CrossCheckError(problems)
        return self

    @property
    def campaign_config(self) -> Campaign:
        return self.operation.campaign(self.campaign)

    @property
    def policy(self) -> PolicySpec:
        """The default policy's spec."""
        return self.policies[self.default_policy]
