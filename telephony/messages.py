"""Schemas of the MQTT messages (JSON, ``"schema": "smartdial.<kind>/1"``), validated on receipt.

Only the allocation message for now. Pure data: no sockets, no broker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartdial.errors import ProtocolError

_SHARE_SUM_TOL = 1e-4


class CarrierBudget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cps_budget: float = Field(ge=0)  # attempts per second planned for this carrier
    channel_budget: int = Field(ge=0)  # concurrent channels planned for this carrier


class AllocationMessage(BaseModel):
    """``smartdial/v1/<campaign>/allocation`` (QoS 1, retained): the optimiser's plan for now."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["smartdial.allocation/1"] = Field(alias="schema")
    campaign: str = Field(min_length=1)
    version: int = Field(ge=0)  # increases with every published allocation
    created_at: datetime
    valid_until: datetime  # after this a dialer falls back to its static shares
    model_version: str
    status: str = "optimal"
    # region code -> product -> carrier -> share of that segment's attempts (rows sum to 1)
    shares: dict[str, dict[str, dict[str, float]]]
    carriers: dict[str, CarrierBudget]
    pacing: dict[str, float] = Field(default_factory=dict)  # e.g. target_abandon_rate

    @model_validator(mode="after")
    def _check(self) -> AllocationMessage:
        if self.valid_until <= self.created_at:
            raise ValueError("valid_until must be after created_at")
        for region, products in self.shares.items():
            for product, row in products.items():
                where = f"shares[{region!r}][{product!r}]"
                if any(not 0.0 <= v <= 1.0 for v in row.values()):
                    raise ValueError(f"{where}: every share must be within [0, 1]")
                total = sum(row.values())
                if row and abs(total - 1.0) > _SHARE_SUM_TOL:
                    raise ValueError(f"{where}: shares sum to {total:.6f}, not 1")
                unknown = set(row) - set(self.carriers)
                if unknown:
                    raise ValueError(f"{where}: carriers {sorted(unknown)} have no budget entry")
        return self

    @classmethod
    def parse(cls, payload: dict) -> AllocationMessage:
        """Validate a received payload; a bad one raises ProtocolError naming every problem."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<message>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ProtocolError(f"invalid smartdial.allocation/1 message: {problems}") from None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)
