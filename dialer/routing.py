"""Which carrier carries the next call: routing policies, pure Numba functions.

Every policy respects the trunk limits the dialer itself tracks (channels in
use, a sliding one-second window of launches for CPS), the coverage of the
destination and the carriers' contracts (each carrier's share of the day's
attempts kept inside [min_share, max_share] at every launch); none reads a clock
or touches I/O.
"""

import numpy as np
from numba import njit

ROUND_ROBIN, STATIC, CHEAPEST, SEGMENTED = range(4)
# optimizer and oracle differ only in who sets the weights (see optimizer.policy).
KINDS = {
    "round_robin": ROUND_ROBIN, "static": STATIC, "cheapest": CHEAPEST,
    "optimizer": SEGMENTED, "oracle": SEGMENTED,
}


def new_cps_window(cps: np.ndarray) -> np.ndarray:
    """Per carrier, the times of its last floor(cps) launches (a ring buffer).

    Column 0 holds the ring position; launch times follow. Carriers with a
    fractional CPS below 1 keep one slot and are treated as 1 CPS.
    """
    width = int(max(1, np.floor(cps.max()))) + 1
    w = np.full((cps.shape[0], width), -np.inf)
    w[:, 0] = 0.0
    return w


@njit(cache=True, inline="always")
def _cps_slots(cps, c):
    return max(1, int(np.floor(cps[c])))


@njit(cache=True, inline="always")
def cps_allows(window, cps, c, now):
    """True when launching on c at `now` keeps ≤ cps launches in any 1-s window."""
    pos = int(window[c, 0])
    return window[c, 1 + pos] <= now - 1.0


@njit(cache=True, inline="always")
def cps_record(window, cps, c, now):
    k = _cps_slots(cps, c)
    pos = int(window[c, 0])
    window[c, 1 + pos] = now
    window[c, 0] = (pos + 1) % k


def new_contracts(min_share: np.ndarray, max_share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contract, launched): contract[0] = min_share, contract[1] = max_share per carrier;
    launched[c] counts the day's launches on c, launched[-1] all of them."""
    return np.stack([min_share, max_share]).astype(np.float64), np.zeros(
        min_share.shape[0] + 1, np.int64
    )


@njit(cache=True, inline="always")
def record_launch(launched, c):
    launched[c] += 1
    launched[launched.shape[0] - 1] += 1


@njit(cache=True, inline="always")
def usable(c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
           contract, launched):
    # The max_share test keeps the carrier's share of the day's launches, this one
    # included, at or under its cap at every moment, not only at the day's end.
    return (
        enabled[c]
        and coverage[c, region, network]
        and channels_used[c] < channels[c]
        and cps_allows(window, cps, c, now)
        and launched[c] + 1 <= contract[1, c] * (launched[launched.shape[0] - 1] + 1) + 1e-9
    )


@njit(cache=True, inline="always")
def _owed(region, network, channels_used, channels, enabled, coverage, window, cps, now,
          contract, launched):
    """The usable carrier furthest behind its min_share of the day's launches (this
    one included), or -1 when every carrier is at or above its minimum."""
    n = launched.shape[0] - 1
    total = launched[n] + 1
    best, most = -1, 0.0
    for c in range(n):
        behind = contract[0, c] * total - launched[c]
        if behind > most and usable(
            c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
            contract, launched,
        ):
            best, most = c, behind
    return best


@njit(cache=True, inline="always")
def _first_usable(order, region, network, channels_used, channels, enabled, coverage, window, cps,
                  now, contract, launched):
    """The first carrier in `order` that can take the call now, or -1."""
    for i in range(order.shape[0]):
        c = order[i]
        if usable(
            c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
            contract, launched,
        ):
            return c
    return -1


@njit(cache=True, inline="always")
def _swrr_turn(region, line, network, now, channels_used, channels, enabled, coverage, window,
               cps, weights, credit, contract, launched, usable_only):
    """Smooth weighted round robin (as in nginx) over a cell's carriers with a weight: each
    gains its weight, the richest takes the turn and pays the total; -1 if none.

    usable_only: only the carriers that can take the call now take part, so one skipped for
    capacity keeps its credit and catches up (STATIC). Otherwise every carrier the cell may
    use (enabled and covering it) takes part, usable this instant or not, so a carrier's
    turns follow its share and a turn it cannot take is lost to it (SEGMENTED).
    """
    total = 0.0
    turn = -1
    for c in range(channels.shape[0]):
        w = weights[region, line, c]
        if w <= 0.0:
            continue
        if usable_only:
            if not usable(c, region, network, channels_used, channels, enabled, coverage,
                          window, cps, now, contract, launched):
                continue
        elif not (enabled[c] and coverage[c, region, network]):
            continue
        credit[region, line, c] += w
        total += w
        if turn < 0 or credit[region, line, c] > credit[region, line, turn]:
            turn = c
    if turn >= 0:
        credit[region, line, turn] -= total
    return turn


@njit(cache=True, inline="always")
def _largest_usable_share(region, line, network, now, channels_used, channels, enabled,
                          coverage, window, cps, weights, contract, launched):
    """The usable carrier with the cell's largest share, or -1: where SEGMENTED passes a turn
    its carrier cannot take, down the cell's ranking (the live split ranks even the floor
    shares by value) rather than to whichever floor-share route has most credit."""
    best = -1
    for c in range(channels.shape[0]):
        w = weights[region, line, c]
        if w > 0.0 and (best < 0 or w > weights[region, line, best]) and usable(
            c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
            contract, launched,
        ):
            best = c
    return best


# Inlined where it is called (from one place in the simulator's loop): a call
# passing a dozen arrays copies about a hundred machine words (each array is a
# pointer, its shape, strides and owner) and counts references on them, which
# cost more than the pick itself.
@njit(cache=True, inline="always")
def pick_carrier(
    kind, region, product, network, now,
    channels_used, channels, enabled, coverage, window, cps,
    weights, credit, rr, cost_order, contract, launched,
):
    """The carrier for a call to (region, product, network), or -1 if none can take it.

    weights[r, p, c] are target shares (static config shares or the live
    allocation; for SEGMENTED, p is product × networks + network); credit[r, p, c] is
    the smooth weighted round-robin state that makes realised shares track them;
    rr[0] is the round-robin pointer; cost_order lists carriers cheapest first and
    is also the fallback order of the share-following kinds; contract and launched
    hold the contracts (`new_contracts`): a carrier behind its min_share takes the
    call first, one at its max_share is skipped. SEGMENTED passes a turn its carrier
    cannot take down the cell's shares (`_swrr_turn`, `_largest_usable_share`). The
    caller records the launch (`record_launch`).
    """
    n = channels.shape[0]
    owed = _owed(region, network, channels_used, channels, enabled, coverage, window, cps, now,
                 contract, launched)
    if owed >= 0:
        return owed
    if kind == ROUND_ROBIN:
        for step in range(n):
            c = (rr[0] + step) % n
            if usable(
                c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
                contract, launched,
            ):
                rr[0] = (c + 1) % n
                return c
        return -1
    if kind == CHEAPEST:
        return _first_usable(
            cost_order, region, network, channels_used, channels, enabled, coverage, window, cps,
            now, contract, launched,
        )
    # The share-following kinds: STATIC and SEGMENTED (shares per destination network too:
    # weights[r, product * networks + network, c]).
    segmented = kind == SEGMENTED
    line = product * coverage.shape[2] + network if segmented else product
    c = _swrr_turn(region, line, network, now, channels_used, channels, enabled, coverage,
                   window, cps, weights, credit, contract, launched, not segmented)
    if c >= 0 and segmented and not usable(
        c, region, network, channels_used, channels, enabled, coverage, window, cps, now,
        contract, launched,
    ):
        c = _largest_usable_share(region, line, network, now, channels_used, channels, enabled,
                                  coverage, window, cps, weights, contract, launched)
    if c >= 0:
        return c
    # Fallback when no carrier with a share can take the call (all disabled, down,
    # full, over CPS or not covering it): the first usable carrier in cost_order
    # (cheapest first, or an order the operator configures). The fallback does
    # not touch the credits, so the shares resume where they were.
    return _first_usable(
        cost_order, region, network, channels_used, channels, enabled, coverage, window, cps, now,
        contract, launched,
    )
