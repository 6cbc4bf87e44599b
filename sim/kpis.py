"""KPIs of a simulated day, computed from its record with NumPy alone.

Compliance is re-checked here independently of the hopper and routing: local
calling hours from the time-zone database, caps, gaps, do-not-call, and the
carriers' channel and CPS limits are recomputed from the attempt log.
"""

import datetime as dt

import numpy as np

from configs.schema import within_calling_hours
from dialer import hopper
from dialer.state import coverage_matrix
from sim import kernel
from sim.run import DayRecord
from smartdial.billing import billed_cost_mxn
from smartdial.outcomes import Outcome

_CONTACT, _ABANDONED, _MACHINE = int(Outcome.CONTACT), int(Outcome.ABANDONED), int(Outcome.MACHINE)


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else 0.0


# The log keeps durations in float32, a few microseconds of rounding on a day's clock: times
# rebuilt from them are compared with this tolerance, so that a call ending on the tick the
# next one starts (the dialer freed its channel first) is not read as an overlap.
CLOCK_TOLERANCE_S = 1e-3


def attempt_end_s(log) -> np.ndarray:
    return log.t_start + log.ring_s.astype(float) + log.conn_s.astype(float)


def violations(rec: DayRecord) -> dict[str, int]:
    """Rule breaches recomputed from the log; every count must be zero."""
    op = rec.scenario.operation
    campaign = op.campaign(rec.scenario.campaign)
    log = rec.log
    lead = log.lead.astype(np.int64)
    region = rec.leads.region[lead]
    out = {}

    # Local calling hours, from the tz database for each (region, minute) used.
    minute = (log.t_start // 60).astype(np.int64)
    # One int key per pair: np.unique on a 1-D array is far faster than with axis=1.
    first = int(minute.min()) if minute.size else 0
    span = int(minute.max()) - first + 1 if minute.size else 1
    keys = np.unique(region.astype(np.int64) * span + (minute - first))
    bad_pairs = set()
    for r, m_off in zip(*np.divmod(keys, span), strict=True):
        m = m_off + first
        reg = op.regions[r]
        local = (rec.clock.start_utc + dt.timedelta(minutes=int(m))).astimezone(reg.tz)
        if not within_calling_hours(op.region_calling_hours(reg), local):
            bad_pairs.add((r, m))
    out["outside_calling_hours"] = int(
        sum(1 for r, m in zip(region, minute, strict=True) if (r, m) in bad_pairs)
    ) if bad_pairs else 0

    per_lead = np.bincount(lead, minlength=rec.leads.region.shape[0])
    out["daily_cap"] = int((per_lead > campaign.retry.max_attempts_per_day).sum())
    out["weekly_cap"] = int(
        ((per_lead + rec.leads.attempts_7d) > campaign.retry.max_attempts_per_7d)[
            per_lead > 0
        ].sum()
    )
    out["do_not_call"] = int(rec.leads.dnc[lead].sum())
    # A promised callback is not dialled before its time (seconds from the day's start).
    callback_s = getattr(rec.leads, "callback_s", None)
    out["callback_early"] = 0 if callback_s is None else int(
        ((callback_s[lead] >= 0) & (log.t_start < callback_s[lead] - 1e-6)).sum()
    )

    # Gaps between consecutive attempts on a lead (also catches overlaps).
    order = np.lexsort((log.t_start, lead))
    same = lead[order][1:] == lead[order][:-1]
    prev, nxt = order[:-1][same], order[1:][same]
    gap_needed = hopper.rules_from(campaign.retry)[hopper.R_GAP + log.outcome[prev].astype(int)]
    gap = log.t_start[nxt] - attempt_end_s(log)[prev]
    out["retry_gap"] = int((gap < gap_needed - CLOCK_TOLERANCE_S).sum())

    # Carrier limits: concurrent channels and launches within any 1-s window.
    chan_bad = cps_bad = 0
    end = attempt_end_s(log)
    for c, carrier in enumerate(op.carriers):
        on = log.carrier == c
        if not on.any():
            continue
        t = np.concatenate([log.t_start[on], end[on] - CLOCK_TOLERANCE_S])
        d = np.concatenate([np.ones(on.sum()), -np.ones(on.sum())])
        o = np.lexsort((d, t))  # ends before starts at equal times
        chan_bad += int(np.cumsum(d[o]).max() > carrier.channels)
        k = max(1, int(np.floor(carrier.cps)))
        s = np.sort(log.t_start[on])
        cps_bad += int((s[k:] - s[:-k] < 1.0 - 1e-9).sum()) if s.size > k else 0
    out["carrier_channels"] = chan_bad
    out["carrier_cps"] = cps_bad

    # Contracts: each enabled carrier's share of the day's attempts inside
    # [min_share, max_share], give or take 0.1 % of the attempts (at least one).
    counts = np.bincount(log.carrier, minlength=len(op.carriers))[: len(op.carriers)]
    total = counts.sum()
    slack = max(1.0, 1e-3 * total)
    out["contract_share"] = int(sum(
        1 for c, carrier in enumerate(op.carriers)
        if carrier.enabled and total and (
            counts[c] < carrier.min_share * total - slack
            or counts[c] > carrier.max_share * total + slack
        )
    ))
    return out


def route_factors(rec: DayRecord) -> tuple[np.ndarray, np.ndarray]:
    """Per attempt, the hidden world's factor on P(a human answers) of the route it took, and
    of the best enabled route covering its lead at that minute (capacity and contracts aside).

    A route's factor is its quality on the lead's network × the incidents' factor × the chance
    the call is delivered at all (not failed, not down). Their ratio says how well the routing
    chose, whatever the pacing made of it; only a simulated day knows them.
    """
    op, w, log = rec.scenario.operation, rec.world, rec.log
    lead = log.lead.astype(np.int64)
    minute = np.minimum((log.t_start // 60).astype(np.int64), w.carrier_up.shape[1] - 1)
    region, network = w.region[lead], w.network[lead]
    factor = (w.carrier_q * (1.0 - w.fail_rate)[:, None])[:, :, None] \
        * (w.carrier_factor * w.carrier_up)[:, None, :]  # (C, N, minute)
    usable = coverage_matrix(op) & np.array([c.enabled for c in op.carriers])[:, None, None]
    best = np.where(usable[..., None], factor[:, None], 0.0).max(axis=0)  # (R, N, minute)
    return factor[log.carrier, network, minute], best[region, network, minute]


def compute(rec: DayRecord) -> dict:
    """The KPI object of a day (what `smartdial sim run --json` prints)."""
    op = rec.scenario.operation
    campaign = op.campaign(rec.scenario.campaign)
    log, f = rec.log, rec.floor
    outcome = log.outcome.astype(np.int64)
    contact = outcome == _CONTACT
    human = contact | (outcome == _ABANDONED)
    answered = human | (outcome == _MACHINE)
    late = contact & (log.wait_s > campaign.abandon_after_s)
    abandoned = (outcome == _ABANDONED) | late
    cost = billed_cost_mxn(log.conn_s, log.carrier, op)
    carrier = log.carrier.astype(np.int64)

    logged_s = f.agent_idle_s.sum() + f.agent_talk_s.sum() + f.agent_wrap_s.sum()
    busy_s = f.agent_talk_s.sum() + f.agent_wrap_s.sum()
    n = len(outcome)

    per_carrier = {}
    for c, car in enumerate(op.carriers):
        on = carrier == c
        a = int(on.sum())
        per_carrier[car.name] = {
            "attempts": a,
            "share": _ratio(a, n),
            "answered": int(answered[on].sum()),
            "asr": _ratio(answered[on].sum(), a),
            "contacts": int(contact[on].sum()),
            "contact_rate": _ratio(contact[on].sum(), a),
            "cost": float(cost[on].sum()),
            "cost_per_contact": _ratio(cost[on].sum(), contact[on].sum()),
        }

    # Hours of the campaign's own clock.
    start_local = rec.clock.start_utc.astimezone(rec.clock.tz)
    hour = ((log.t_start + start_local.minute * 60) // 3600).astype(np.int64) + start_local.hour
    samples = f.samples
    minute_s = np.arange(samples.shape[0]) * 60 + start_local.minute * 60
    minute_hour = minute_s // 3600 + start_local.hour
    per_hour = {}
    for h in np.unique(hour):
        on = hour == h
        s = samples[minute_hour == h]
        logged = s[:, kernel.S_LOGGED].sum()
        per_hour[f"{int(h) % 24:02d}"] = {
            "attempts": int(on.sum()),
            "contacts": int(contact[on].sum()),
            "contact_rate": _ratio(contact[on].sum(), on.sum()),
            "abandon_rate": _ratio(abandoned[on].sum(), human[on].sum()),
            "occupancy": _ratio(s[:, kernel.S_BUSY].sum(), logged),
            "agents": float(logged / max(len(s), 1)),
            "cost": float(cost[on].sum()),
            "per_carrier_attempts": np.bincount(carrier[on], minlength=len(op.carriers)).tolist(),
            "per_carrier_contacts": np.bincount(
                carrier[on & contact], minlength=len(op.carriers)
            ).tolist(),
        }

    # Abandonment over every rolling 24 h window: for a day shorter than 24 h,
    # the windows ending at each hour mark hold the day so far; the last one ends
    # after the drain, so calls answered after the close count too.
    t_ans = log.t_start + log.ring_s
    marks = np.arange(3600.0, rec.clock.end_s + 3600.0, 3600.0)
    if t_ans.size:
        marks = np.r_[marks, max(float(t_ans.max()), marks[-1])]
    rolling = [
        _ratio(abandoned[t_ans <= m].sum(), human[t_ans <= m].sum()) for m in marks
    ]
    viol = violations(rec)
    taken, best = route_factors(rec)
    return {
        "scenario": rec.scenario.name,
        "policy": rec.policy.model_dump(),
        "seed": rec.seed,
        "attempts": n,
        "contacts": int(contact.sum()),
        "contact_rate": _ratio(contact.sum(), n),
        "human_answered": int(human.sum()),
        "abandoned": int(abandoned.sum()),
        "abandon_rate": _ratio(abandoned.sum(), human.sum()),
        "abandon_rate_24h_max": float(max(rolling, default=0.0)),
        "agent_hours": logged_s / 3600.0,
        "contacts_per_agent_hour": _ratio(contact.sum(), logged_s / 3600.0),
        "occupancy": _ratio(busy_s, logged_s),
        "cost": float(cost.sum()),
        "cost_per_contact": _ratio(cost.sum(), contact.sum()),
        "route_factor": _ratio(taken.sum(), n),
        "route_factor_best": _ratio(best.sum(), n),
        "value": float(
            np.array([p.contact_value_mxn for p in op.products])[
                rec.leads.product[log.lead[contact]]
            ].sum()
        ),
        "outcomes": {o.name.lower(): int((outcome == int(o)).sum()) for o in Outcome},
        "violations": viol,
        "violations_total": int(sum(viol.values())),
        "per_carrier": per_carrier,
        "per_hour": per_hour,
    }


def _share_by_minute_and_cell(rec: DayRecord, carrier: int) -> tuple[np.ndarray, np.ndarray]:
    """(minutes, cells) attempts on `carrier` and in all; a cell is the live split's
    (region, product, destination network) of the lead dialled."""
    minute = (rec.log.t_start // 60).astype(np.int64)
    n = int(np.ceil(rec.clock.end_s / 60.0))
    keep = minute < n
    lead = rec.log.lead[keep]
    leads = rec.leads
    dims = (int(leads.region.max()) + 1, int(leads.product.max()) + 1,
            int(leads.network.max()) + 1)
    cell = np.ravel_multi_index(
        (leads.region[lead], leads.product[lead], leads.network[lead]), dims)
    n_cells = int(np.prod(dims))
    flat = minute[keep] * n_cells + cell
    total = np.bincount(flat, minlength=n * n_cells).astype(float).reshape(n, n_cells)
    mine = rec.log.carrier[keep] == carrier
    on = np.bincount(flat[mine], minlength=n * n_cells).astype(float).reshape(n, n_cells)
    return on, total


def drift_response(
    rec: DayRecord, carrier: int, t0_min: int, t1_min: int | None = None
) -> dict[str, float]:
    """A carrier's share of attempts around an incident from minute t0 to t1 (attempt log).

    before: the 30 min before t0; the first 5-min window after t0 at or below half of
    `before` gives `halved_after_min`, and `share_5_30_min` is the share held from 5 to 30
    min after t0 (or to the recovery); after recovery, the first 5-min window back at or
    above half of `before` gives `back_after_min`.

    The same on the calls of the half hour before (`*_same_mix`): the carrier's share in
    each (region, product, network) cell, weighted by the cell's attempts in that half hour.
    The raw share also moves with which leads are being dialled (a region's calling hours
    open at the hour, a lead group is worked through), often more than an incident moves
    it; the routing decides only the split within a cell.
    """
    on_c, total_c = _share_by_minute_and_cell(rec, carrier)
    a0 = max(t0_min - 30, 0)
    mix = total_c[a0:t0_min].sum(axis=0)

    def raw(a: int, b: int) -> float:
        a = max(a, 0)
        n = total_c[a:b].sum()
        return float(on_c[a:b].sum() / n) if n else float("nan")

    def same_mix(a: int, b: int) -> float:
        a = max(a, 0)
        n = total_c[a:b].sum(axis=0)
        w = np.where(n > 0, mix, 0.0)
        if not w.sum():
            return float("nan")
        return float((w * on_c[a:b].sum(axis=0) / np.maximum(n, 1)).sum() / w.sum())

    out: dict[str, float] = {}
    n_min = total_c.shape[0]
    end = n_min if t1_min is None else t1_min
    for suffix, share in (("", raw), ("_same_mix", same_mix)):
        before = share(a0, t0_min)
        out["before" + suffix] = before
        out["halved_after_min" + suffix] = float("nan")
        for m in range(t0_min, end - 4):
            if share(m, m + 5) <= 0.5 * before:
                out["halved_after_min" + suffix] = float(m + 5 - t0_min)
                out["share_halved" + suffix] = share(m, m + 5)
                break
        out["share_5_10_min" + suffix] = share(t0_min + 5, t0_min + 10)
        out["share_5_30_min" + suffix] = share(t0_min + 5, min(t0_min + 30, end))
        out["back_after_min" + suffix] = float("nan")
        if t1_min is not None:
            for m in range(t1_min, n_min - 4):
                if share(m, m + 5) >= 0.5 * before:
                    out["back_after_min" + suffix] = float(m + 5 - t1_min)
                    break
            out["share_25_30_min_after_end" + suffix] = share(t1_min + 25, t1_min + 30)
    return out
