"""What a carrier bills for an attempt, vectorised: shared by the KPIs and the budget."""

import numpy as np


def billed_cost_mxn(conn_s, carrier, operation) -> np.ndarray:
    """Telecom cost per attempt: connected time billed in the carrier's
    increments (e.g. 30/6: 30 s minimum, then 6-s steps), plus its per-attempt charge."""
    c = operation.carriers
    rate = np.array([x.cost_per_minute_mxn for x in c])[carrier]
    first = np.array([x.billing_initial_s for x in c], float)[carrier]
    step = np.array([x.billing_increment_s for x in c], float)[carrier]
    per_attempt = np.array([x.cost_per_attempt_mxn for x in c])[carrier]
    conn = np.asarray(conn_s, float)
    billed = np.where(
        conn > 0, first + np.ceil(np.maximum(conn - first, 0.0) / step) * step, 0.0
    )
    return billed / 60.0 * rate + per_attempt
