"""Which carrier carries the next call: routing policies, pure Numba functions.

Every policy respects the trunk limits the dialer itself tracks (channels in
use, a sliding one-second window of launches for CPS) and the coverage of the
destination; none reads a clock or touches I/O.
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


@njit(cache=True, inline="always")
def usable(c, region, network, channels_used, channels, enabled, coverage, window, cps, now):
    return (
        enabled[c]
        and coverage[c, region, network]
        and channels_used[c] < channels[c]
        and cps_allows(window, cps, c, now)
    )


@njit(cache=True, inline="always")
def _first_usable(order, region, network, channels_used, channels, enabled, coverage, window, cps,
                  now):
    """The first carrier in `order` that can take the call now, or -1."""
    for i in range(order.shape[0]):
        c = order[i]
        if usable(
            c, region, network, channels_used, channels, enabled, coverage, window, cps, now
        ):
            return c
    return -1


# Inlined where it is called (from one place in the simulator's loop): a call
# passing a dozen arrays copies about a hundred machine words (each array is a
# pointer, its shape, strides and owner) and counts references on them, which
# cost more than the pick itself.
@njit(cache=True, inline="always")
def pick_carrier(
    kind, region, product, network, now,
    channels_used, channels, enabled, coverage, window, cps,
    weights, credit, rr, cost_order,
):
    """The carrier for a call to (region, product, network), or -1 if none can take it.

    weights[r, p, c] are target shares (static config shares or the live
    allocation; for SEGMENTED, p is product × networks + network); credit[r, p, c] is
    the smooth weighted round-robin state that makes realised shares track them;
    rr[0] is the round-robin pointer; cost_order lists carriers cheapest first and
    is also the fallback order of the share-following kinds.
    """
    n = channels.shape[0]
    if kind == ROUND_ROBIN:
        for step in range(n):
            c = (rr[0] + step) % n
            if usable(
                c, region, network, channels_used, channels, enabled, coverage, window, cps, now
            ):
                rr[0] = (c + 1) % n
                return c
        return -1
    if kind == CHEAPEST:
        return _first_usable(
            cost_order, region, network, channels_used, channels, enabled, coverage, window, cps,
            now,
        )
    if kind == SEGMENTED:
        # Shares per destination network too: weights[r, product * networks + network, c].
        product = product * coverage.shape[2] + network
    # Smooth weighted round robin (as in nginx) over the carriers that can take
    # the call now: each gains its weight, the richest is picked and pays the
    # total. A carrier skipped for capacity keeps its credit and catches up.
    total = 0.0
    best = -1
    for c in range(n):
        w = weights[region, product, c]
        if w <= 0.0:
            continue
        if not usable(
            c, region, network, channels_used, channels, enabled, coverage, window, cps, now
        ):
            continue
        credit[region, product, c] += w
        total += w
        if best < 0 or credit[region, product, c] > credit[region, product, best]:
            best = c
    if best >= 0:
        credit[region, product, best] -= total
        return best
    # Fallback when no carrier with a share can take the call (all disabled, down,
    # full, over CPS or not covering it): the first usable carrier in cost_order
    # (cheapest first, or an order the operator configures). The fallback does
    # not touch the credits, so the shares resume where they were.
    return _first_usable(
        cost_order, region, network, channels_used, channels, enabled, coverage, window, cps, now,
    )
