"""Reading operation and scenario YAML files, and summarising them for `smartdial config check`.

Every failure (missing file, YAML syntax, validation) becomes one ConfigError whose lines
each name the file, the field path and the problem. Never writes anything.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from rich.table import Table

from configs.scenario import Scenario
from configs.schema import CallingWindow, CrossCheckError, Operation
from smartdial.errors import ConfigError

# -- YAML ---------------------------------------------------------------------------------


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10× faster


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader that keeps clock times as strings and refuses duplicate keys.

    YAML 1.1 reads an unquoted 17:00 as the base-60 integer 1020, and a repeated key
    silently wins over the first one: both are classic ways to misconfigure a dialer.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in _Base.yaml_implicit_resolvers.items()}
_CLOCK = re.compile(r"^[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?$")
for _ch in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_ch, []).insert(0, ("tag:yaml.org,2002:str", _CLOCK))


def _shown(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.fspath(path))


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    shown = _shown(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{shown}: cannot read: {e}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(x for x in (e.context, e.problem) if x)
        raise ConfigError(f"{shown}: {where}YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{shown}: YAML syntax error: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping of fields at the top level")
    return data


# -- validation errors --------------------------------------------------------------------


def _path(loc: tuple[Any, ...], raw: Any) -> str:
    """`carriers[2] (tel-a).cps` from pydantic's ('carriers', 2, 'cps') and the raw input."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list | tuple) and part < len(node) else None
            if isinstance(node, dict):
                label = next((node[k] for k in ("code", "name", "kind") if k in node), None)
                if isinstance(label, str):
                    out += f" ({label})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _problems(err: ValidationError, raw: Any) -> list[str]:
    lines = []
    for e in err.errors():
        where = _path(tuple(e["loc"]), raw)
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, CrossCheckError):
            lines += [f"{_join(where, p)}: {m}" for p, m in cause.problems]
            continue
        msg = e["msg"]
        if e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif e["type"] not in ("missing", "extra_forbidden"):
            value = e.get("input")
            if isinstance(value, int | float | str | bool) or value is None:
                shown = repr(value)
                msg += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
        lines.append(f"{where}: {msg}" if where else msg)
    return lines


def _validate(model: type[BaseModel], raw: dict[str, Any], path: str | os.PathLike[str]) -> Any:
    try:
        return model.model_validate(raw, context={"base_dir": Path(path).parent})
    except ValidationError as e:
        shown = _shown(path)
        raise ConfigError("\n".join(f"{shown}: {line}" for line in _problems(e, raw))) from None


# -- public API ---------------------------------------------------------------------------


def load_operation(path: str | os.PathLike[str]) -> Operation:
    """Load and validate an operation file (relative `dnc_file`s resolve against its folder)."""
    raw = _read_yaml(path)
    if "truth" in raw:
        raise ConfigError(f"{_shown(path)}: this is a scenario (it has `truth:`), not an operation")
    return _validate(Operation, raw, path)


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Load a scenario; its `operation:` path is relative to the scenario file.

    Errors inside the operation name the operation file.
    """
    raw = _read_yaml(path)
    ref = raw.get("operation")
    if isinstance(ref, str):
        op_path = Path(path).parent / ref
        if not op_path.is_file():
            raise ConfigError(
                f"{_shown(path)}: operation: operation file not found: {_shown(op_path)}"
            )
        raw = {**raw, "operation": load_operation(op_path)}
    return _validate(Scenario, raw, path)


def load(path: str | os.PathLike[str]) -> Operation | Scenario:
    """Load an operation or a scenario; a scenario is recognised by its top-level `truth:`."""
    raw = _read_yaml(path)
    return load_scenario(path) if "truth" in raw else load_operation(path)


# -- summaries ----------------------------------------------------------------------------


def _windows(windows: tuple[CallingWindow, ...]) -> str:
    parts = []
    for w in windows:
        days = "every day" if len(w.days) == 7 else ",".join(w.days)
        parts.append(f"{days} {w.start:%H:%M}–{w.end:%H:%M}")
    return "; ".join(parts)


def _operation_tables(op: Operation) -> list[Table]:
    head = Table(title=f"Operation {op.name}", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value")
    head.add_row("currency", op.currency)
    head.add_row("default calling hours (local)", _windows(op.calling_hours))
    head.add_row("networks", ", ".join(n.name for n in op.networks))
    own = [r.code for r in op.regions if r.calling_hours is not None]
    head.add_row("regions", f"{len(op.regions)} ({len(own)} with own calling hours)")
    uncovered = op.uncovered()
    if uncovered:
        shown = ", ".join(f"{r}/{n}" for r, n in uncovered[:8])
        more = f" and {len(uncovered) - 8} more" if len(uncovered) > 8 else ""
        head.add_row("[red]not dialable[/red]", f"{shown}{more}")

    carriers = Table(title="Carriers")
    for col, justify in (
        ("carrier", "left"),
        ("on", "center"),
        ("channels", "right"),
        ("CPS", "right"),
        ("MXN/min", "right"),
        ("billing s", "right"),
        ("MXN/attempt", "right"),
        ("coverage", "left"),
        ("share min–max", "right"),
    ):
        carriers.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in op.carriers:
        cov = c.coverage
        coverage = (
            "; ".join(
                f"{k}: {', '.join(v)}"
                for k, v in (("networks", cov.networks), ("regions", cov.regions))
                if v != "all"
            )
            or "all"
        )
        carriers.add_row(
            c.name,
            "yes" if c.enabled else "[red]no[/red]",
            str(c.channels),
            f"{c.cps:g}",
            f"{c.cost_per_minute_mxn:.3f}",
            f"{c.billing_initial_s}/{c.billing_increment_s}",
            f"{c.cost_per_attempt_mxn:.3f}",
            coverage,
            f"{c.min_share:.0%}–{c.max_share:.0%}",
        )
    enabled = op.enabled_carriers
    carriers.add_row(
        "[bold]enabled total[/bold]",
        str(len(enabled)),
        str(sum(c.channels for c in enabled)),
        f"{sum(c.cps for c in enabled):g}",
        "",
        "",
        "",
        "",
        f"{sum(c.min_share for c in enabled):.0%}–{sum(c.max_share for c in enabled):.0%}",
    )

    zones = Table(title="Regions by time zone")
    zones.add_column("time zone")
    zones.add_column("regions", justify="right")
    zones.add_column("codes")
    by_zone = Counter(r.timezone for r in op.regions)
    for tz, n in by_zone.most_common():
        codes = ", ".join(r.code for r in op.regions if r.timezone == tz)
        zones.add_row(tz, str(n), codes)

    products = Table(title="Products")
    products.add_column("product")
    products.add_column("contact value MXN", justify="right")
    for p in op.products:
        products.add_row(p.name, f"{p.contact_value_mxn:,.2f}")

    campaigns = Table(title="Campaigns")
    for col in ("campaign", "time zone", "products", "agents", "abandon target", "retry", "DNC"):
        campaigns.add_column(col)
    for c in op.campaigns:
        a = c.agents
        hours = (a.end.hour * 60 + a.end.minute - a.start.hour * 60 - a.start.minute) / 60
        peak = max(s.agents for s in a.slots)
        agents = f"{a.start:%H:%M}–{a.end:%H:%M}, mean {a.agent_hours() / hours:.0f}, peak {peak}"
        r = c.retry
        retry = f"≤{r.max_attempts_per_day}/day, ≤{r.max_attempts_per_7d}/7d"
        campaigns.add_row(
            c.name,
            c.timezone,
            ", ".join(c.products),
            agents,
            f"{c.abandon_target:.1%} after {c.abandon_after_s:g} s",
            retry,
            c.dnc_file or "—",
        )
    return [head, carriers, zones, products, campaigns]


def _scenario_table(sc: Scenario) -> Table:
    t = Table(title=f"Scenario {sc.name}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("date", f"{sc.date:%Y-%m-%d (%A)}")
    t.add_row("campaign", sc.campaign)
    t.add_row("seed", str(sc.seed))
    pf = sc.portfolio
    t.add_row("leads", f"{pf.leads:,}")

    def mix(d: dict[str, float]) -> str:
        total = sum(d.values())
        return ", ".join(f"{k} {v / total:.0%}" for k, v in d.items())

    t.add_row("product mix", mix(pf.product_mix))
    t.add_row("network mix", mix(pf.network_mix))
    t.add_row("region weights", "uniform" if pf.region_weights is None else "given")
    for inc in sc.truth.incidents:
        what = {
            "answer_rate": f"{inc.carrier} answer rate ×{inc.factor:g}",
            "outage": f"{inc.carrier} down",
            "agents_logoff": f"{inc.fraction:.0%} of agents log off",
        }[inc.kind]
        until = f" for {inc.duration_min:g} min" if inc.duration_min is not None else ""
        t.add_row("incident", f"{inc.at:%H:%M} {what}{until}")
    for name, p in sc.policies.items():
        mark = " (default)" if name == sc.default_policy else ""
        t.add_row(
            f"policy {name}{mark}", f"pacing {p.pacing}, routing {p.routing}, leads {p.leads}"
        )
    return t


def describe(obj: Operation | Scenario) -> list[Table]:
    """Tables summarising an operation or scenario, for `smartdial config check FILE`."""
    if isinstance(obj, Scenario):
        return [_scenario_table(obj), *_operation_tables(obj.operation)]
    return _operation_tables(obj)
