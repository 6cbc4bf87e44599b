"""Reports of a simulated day: rich tables for the terminal, one HTML page with plots.

Reads a DayRecord and its KPI dict; computes nothing the KPIs do not already
hold except time series binned for plotting.
"""

import base64
import html
import io
from pathlib import Path

import numpy as np
from rich.table import Table

from sim import kernel
from sim.run import DayRecord
from smartdial.outcomes import Outcome

BIN_S = 900.0  # 15-minute bins for the plots


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def tables(k: dict) -> list[Table]:
    """Overall KPIs, per carrier, per hour — for the terminal."""
    pol = k["policy"]
    overall = Table(
        title=f"{k['scenario']} · pacing={pol['pacing']} routing={pol['routing']} "
        f"leads={pol['leads']} · seed {k['seed']}"
    )
    overall.add_column("KPI")
    overall.add_column("value", justify="right")
    for key in ("attempts", "contacts", "contact_rate", "contacts_per_agent_hour", "abandon_rate",
                "abandon_rate_24h_max", "occupancy", "agent_hours", "cost", "cost_per_contact",
                "value", "violations_total"):
        overall.add_row(key, _fmt(k[key]))
    if "oracle_gap" in k:
        overall.add_row("oracle contacts", _fmt(k["oracle"]["contacts"]))
        overall.add_row("gap to oracle", f"{k['oracle_gap']:.1%}")

    carriers = Table(title="per carrier")
    for col in ("carrier", "attempts", "share", "ASR", "contacts", "contact rate", "cost MXN",
                "MXN/contact"):
        carriers.add_column(col, justify="left" if col == "carrier" else "right")
    for name, c in k["per_carrier"].items():
        carriers.add_row(name, _fmt(c["attempts"]), f"{c['share']:.1%}", f"{c['asr']:.1%}",
                         _fmt(c["contacts"]), f"{c['contact_rate']:.1%}", f"{c['cost']:,.0f}",
                         f"{c['cost_per_contact']:.2f}")

    hours = Table(title="per hour (campaign clock)")
    for col in ("hour", "agents", "attempts", "contacts", "contact rate", "abandon", "occupancy"):
        hours.add_column(col, justify="right")
    for h, v in k["per_hour"].items():
        hours.add_row(h, f"{v['agents']:.0f}", _fmt(v["attempts"]), _fmt(v["contacts"]),
                      f"{v['contact_rate']:.1%}", f"{v['abandon_rate']:.1%}",
                      f"{v['occupancy']:.1%}")
    return [overall, carriers, hours]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _series(rec: DayRecord):
    """Per 15-minute bin: attempts per carrier, abandonment rate, occupancy."""
    log = rec.log
    n_bins = int(np.ceil(rec.clock.end_s / BIN_S))
    b = np.minimum((log.t_start // BIN_S).astype(np.int64), n_bins - 1)
    n_c = len(rec.scenario.operation.carriers)
    traffic = np.zeros((n_bins, n_c))
    np.add.at(traffic, (b, log.carrier.astype(np.int64)), 1.0)
    after = rec.scenario.operation.campaign(rec.scenario.campaign).abandon_after_s
    contact = log.outcome == int(Outcome.CONTACT)
    human = contact | (log.outcome == int(Outcome.ABANDONED))
    abandoned = (log.outcome == int(Outcome.ABANDONED)) | (contact & (log.wait_s > after))
    ab = np.bincount(b, abandoned, n_bins) / np.maximum(np.bincount(b, human, n_bins), 1)
    s = rec.floor.samples[: n_bins * int(BIN_S // 60)]
    per = int(BIN_S // 60)
    logged = s[:, kernel.S_LOGGED].reshape(-1, per).sum(1)
    busy = s[:, kernel.S_BUSY].reshape(-1, per).sum(1)
    occ = busy / np.maximum(logged, 1)
    return traffic, ab, occ


def html_report(rec: DayRecord, k: dict, path: Path) -> Path:
    """Write the HTML report with its plots embedded; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    op = rec.scenario.operation
    names = [c.name for c in op.carriers]
    traffic, ab, occ = _series(rec)
    start = rec.clock.local(0.0)
    t_h = start.hour + start.minute / 60 + np.arange(traffic.shape[0]) * BIN_S / 3600
    figs = []

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.stackplot(t_h, (traffic / (BIN_S / 60)).T, labels=names, step="post")
    ax.set(xlabel="hour (campaign clock)", ylabel="attempts per minute",
           title="Traffic by carrier over the day")
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    figs.append(_png(fig))
    plt.close(fig)

    hours = list(k["per_hour"])
    att = np.array([k["per_hour"][h]["per_carrier_attempts"] for h in hours], float)
    con = np.array([k["per_hour"][h]["per_carrier_contacts"] for h in hours], float)
    rate = np.where(att > 0, con / np.maximum(att, 1), np.nan)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    im = ax.imshow(rate.T * 100, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(hours)), hours)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="hour (campaign clock)", title="Contact rate per attempt, % (hour × carrier)")
    fig.colorbar(im, ax=ax)
    figs.append(_png(fig))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t_h, ab * 100, label="abandonment % of answered", drawstyle="steps-post")
    ax.plot(t_h, occ * 100, label="agent occupancy %", drawstyle="steps-post")
    target = op.campaign(rec.scenario.campaign).abandon_target * 100
    ax.axhline(target, color="red", lw=0.8, ls="--", label=f"abandon target {target:g} %")
    ax.set(xlabel="hour (campaign clock)", ylabel="%", title="Abandonment and occupancy")
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    plt.close(fig)

    def table(rows: list[list], head: list[str]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><tr>{th}</tr>{body}</table>"

    overall = [[key, k[key]] for key in (
        "attempts", "contacts", "contact_rate", "contacts_per_agent_hour", "abandon_rate",
        "abandon_rate_24h_max", "occupancy", "cost", "cost_per_contact", "violations_total")]
    carriers = [[n, c["attempts"], c["share"], c["asr"], c["contacts"], c["cost"],
                 c["cost_per_contact"]] for n, c in k["per_carrier"].items()]
    viol = [[n, v] for n, v in k["violations"].items()]
    pol = k["policy"]
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>smartdial · {html.escape(k['scenario'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(k['scenario'])}: a simulated day</h1>
<p>pacing <b>{pol['pacing']}</b>, routing <b>{pol['routing']}</b>, leads <b>{pol['leads']}</b>,
seed {k['seed']}, {html.escape(str(rec.scenario.date))}</p>
<h2>KPIs</h2>{table(overall, ["KPI", "value"])}
<h2>Per carrier</h2>{table(carriers, ["carrier", "attempts", "share", "ASR", "contacts",
                                       "cost MXN", "MXN/contact"])}
<h2>Compliance</h2>{table(viol, ["rule", "violations"])}
{''.join(f'<img src="data:image/png;base64,{p}">' for p in figs)}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
