"""The hidden world of a scenario in arrays: who answers when, on which carrier.

Built once per run from the scenario and the seed. Policies never see it; the
event loop in `sim.kernel` reads it to decide what the far end does.
"""

import datetime as dt
from dataclasses import dataclass
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np

from configs.schema import WEEKDAYS
from sim import draws
from sim.kernel import (
    W_ABANDON_AFTER,
    W_BUSY,
    W_DECAY,
    W_END,
    W_MACHINE,
    W_RING_TIMEOUT,
    World,
)
from sim.portfolio import Leads

DRAIN_MINUTES = 90  # calls still up at the end of the day finish in this margin


@dataclass(frozen=True)
class Clock:
    """The simulated day: second 0 is the first agent slot in the campaign's zone."""

    start_utc: dt.datetime
    end_s: float
    n_minutes: int
    tz: dt.tzinfo

    def local(self, t_s: float) -> dt.datetime:
        return (self.start_utc + dt.timedelta(seconds=t_s)).astimezone(self.tz)

    def at(self, clock_time: dt.time) -> float:
        """Seconds from the start of the day to a wall-clock time of the campaign."""
        start_local = self.start_utc.astimezone(self.tz)
        wall = dt.datetime.combine(start_local.date(), clock_time, tzinfo=self.tz)
        return (wall - start_local).total_seconds()


def clock_for(scenario) -> Clock:
    campaign = scenario.operation.campaign(scenario.campaign)
    sched = campaign.agents
    tz = ZoneInfo(sched.timezone)
    start = dt.datetime.combine(scenario.date, sched.start, tzinfo=tz)
    end = dt.datetime.combine(scenario.date, sched.end, tzinfo=tz)
    end_s = (end - start).total_seconds()
    n_minutes = int(np.ceil(end_s / 60.0)) + DRAIN_MINUTES
    return Clock(start.astimezone(dt.UTC), end_s, n_minutes, tz)


_MINUTE_US = 60_000_000
_HOUR_US = 60 * _MINUTE_US
_DAY_US = 24 * _HOUR_US
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0, as datetime.weekday)


def _us(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _utc_offsets_us(clock: Clock, tz: dt.tzinfo, n_minutes: int) -> np.ndarray:
    """UTC offset of `tz` at each minute of the day, in microseconds.

    The tz database is asked once an hour and, where two hours differ, bisected to
    the minute of the transition: a few dozen look-ups per zone instead of one per
    minute. Offsets never change twice within an hour.
    """

    def offset(i: int) -> int:
        return _us((clock.start_utc + dt.timedelta(minutes=i)).astimezone(tz).utcoffset())

    grid = sorted({*range(0, n_minutes, 60), n_minutes - 1})
    at = {i: offset(i) for i in grid}
    out = np.empty(n_minutes, np.int64)
    for lo, hi in pairwise(grid):
        out[lo:hi + 1] = at[lo]
        if at[lo] != at[hi]:
            a, b = lo, hi  # offset(a) = at[lo] != offset(b): find the first minute changed
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == at[lo]:
                    a = mid
                else:
                    b = mid
            out[b:hi + 1] = at[hi]
    return out


def _local_minutes(clock: Clock, tz: dt.tzinfo, n_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weekday, microseconds since local midnight) of each minute of the day in `tz`."""
    start_us = _us(clock.start_utc - _EPOCH)
    local_us = start_us + np.arange(n_minutes, dtype=np.int64) * _MINUTE_US
    local_us += _utc_offsets_us(clock, tz, n_minutes)
    days, tod_us = np.divmod(local_us, _DAY_US)
    return (days + _EPOCH_WEEKDAY) % 7, tod_us


def _within_calling_hours(windows, weekday: np.ndarray, tod_us: np.ndarray) -> np.ndarray:
    """`configs.schema.within_calling_hours` on arrays of local weekdays and times of day."""
    out = np.zeros(tod_us.shape, bool)
    for w in windows:
        on_day = np.zeros(7, bool)
        on_day[[WEEKDAYS.index(d) for d in w.days]] = True
        out |= on_day[weekday] & (tod_us >= _time_us(w.start)) & (tod_us < _time_us(w.end))
    return out


def _agents_at(schedule, tod_us: np.ndarray) -> np.ndarray:
    """`AgentSchedule.agents_at` on an array of local times of day."""
    starts = np.array([_time_us(s.start) for s in schedule.slots], np.int64)
    agents = np.array([s.agents for s in schedule.slots], np.int64)
    slot = np.searchsorted(starts, tod_us, side="right") - 1
    on = (tod_us >= _time_us(schedule.start)) & (tod_us < _time_us(schedule.end))
    return np.where(on, agents[np.maximum(slot, 0)], 0)


def _dist_row(d) -> np.ndarray:
    return np.array([draws.DIST_CODES[d.kind], d.mean_s, d.sd_s], float)


def _hourly_truth(scenario, seed: int) -> np.ndarray:
    """p_base[product, region, local hour]: the product's hourly shape, shifted
    and scaled per region by draws from the seed (shapes differ by region)."""
    op, truth = scenario.operation, scenario.truth
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7207]))
    n_r = len(op.regions)
    shift = rng.uniform(-truth.region_peak_shift_h, truth.region_peak_shift_h, n_r)
    s = truth.region_spread
    scale = np.exp(rng.normal(-0.5 * s * s, s, n_r))
    out = np.zeros((len(op.products), n_r, 24))
    # Circular linear interpolation of each shape at hour - shift, all regions at once.
    x = (np.arange(24) - shift[:, None]) % 24
    lo = np.floor(x).astype(int)
    frac = x - lo
    for name, values in truth.contact_by_hour.items():
        v = np.asarray(values, float)
        out[op.product_index(name)] = np.clip(
            ((1 - frac) * v[lo] + frac * v[(lo + 1) % 24]) * scale[:, None], 0, 1
        )
    return out


def build_world(scenario, leads: Leads, seed: int, clock: Clock) -> World:
    op, truth = scenario.operation, scenario.truth
    campaign = op.campaign(scenario.campaign)
    n_c, n_r = len(op.carriers), len(op.regions)
    m = clock.n_minutes

    day_open = np.arange(m) * 60.0 < clock.end_s
    region_open = np.zeros((n_r, m), bool)
    local_hour = np.zeros((n_r, m), np.int64)
    for r, region in enumerate(op.regions):
        weekday, tod_us = _local_minutes(clock, region.tz, m)
        local_hour[r] = tod_us // _HOUR_US
        region_open[r] = _within_calling_hours(
            op.region_calling_hours(region), weekday, tod_us
        ) & day_open

    _, tod_us = _local_minutes(clock, clock.tz, m)
    agents = np.where(day_open, _agents_at(campaign.agents, tod_us), 0).astype(np.int64)
    carrier_up = np.ones((n_c, m), bool)
    carrier_factor = np.ones((n_c, m))
    minutes = np.arange(m) * 60.0
    for inc in truth.incidents:
        t0 = clock.at(inc.at)
        t1 = np.inf if inc.duration_min is None else t0 + 60.0 * inc.duration_min
        during = (minutes >= t0) & (minutes < t1)
        if inc.kind == "agents_logoff":
            agents[during] = np.round(agents[during] * (1.0 - inc.fraction)).astype(np.int64)
            continue
        c = op.carrier_index(inc.carrier)
        if inc.kind == "outage":
            carrier_up[c, during] = False
        else:
            carrier_factor[c, during] *= inc.factor

    carrier_q = np.array(
        [[truth.quality(c.name, n.name) for n in op.networks] for c in op.carriers], float
    )
    net_factor = np.array([truth.network_factor.get(n.name, 1.0) for n in op.networks], float)
    scalars = np.zeros(6)
    scalars[W_MACHINE] = truth.machine_rate
    scalars[W_BUSY] = truth.busy_rate
    scalars[W_DECAY] = truth.attempt_decay
    scalars[W_RING_TIMEOUT] = campaign.ring_timeout_s
    scalars[W_ABANDON_AFTER] = campaign.abandon_after_s
    scalars[W_END] = clock.end_s
    dists = draws.dist_rows(np.stack([
        _dist_row(d)
        for d in (truth.ring_time, truth.fail_signal_time, truth.handle_time, truth.wrap_up,
                  truth.patience, truth.machine_detect)
    ]))
    return World(
        # Per-lead facts keep the portfolio's narrow types: the event loop reads them
        # at random, and a smaller footprint stays in cache (float32 → float64 is exact).
        region=leads.region,
        product=leads.product,
        network=leads.network,
        mult=leads.propensity,
        invalid=leads.invalid,
        region_open=region_open,
        local_hour=local_hour,
        agents_sched=agents,
        carrier_up=carrier_up,
        carrier_factor=carrier_factor,
        p_base=_hourly_truth(scenario, seed),
        net_factor=net_factor,
        carrier_q=carrier_q,
        fail_rate=np.array([truth.failure_rate(c.name) for c in op.carriers], float),
        scalars=scalars,
        dists=dists,
        keys=draws.purpose_keys(seed),
        channels=np.array([c.channels for c in op.carriers], np.int64),
        cps=np.array([c.cps for c in op.carriers], float),
    )
