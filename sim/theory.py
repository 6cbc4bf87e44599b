"""Queueing theory the simulator must agree with: the Erlang-A (M/M/n+M) queue.

Exact numbers from the queue's birth–death chain, NumPy/SciPy only; used by
the tests as the reference a simulated floor is checked against. No simulation here.
"""

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm
from scipy.special import logsumexp

_TAIL = 1e-15  # truncate the chain where the stationary probability falls below this


@dataclass(frozen=True)
class ErlangA:
    """Stationary performance of an M/M/n+M queue (all rates per second)."""

    p_abandon: float
    """Share of arrivals who run out of patience before an agent takes them."""
    occupancy: float
    """Mean busy agents / n (= λ(1 − P(Ab)) / (nμ))."""
    mean_wait_s: float
    """Mean time in queue over all arrivals, served or abandoning (E[min(V, τ)])."""
    mean_queue: float
    """Mean number of callers waiting."""
    p_delay: float
    """Probability that an arrival finds every agent busy (waits at all)."""
    pi: np.ndarray
    """Stationary distribution of the number in system, truncated where negligible."""
    arrival_rate: float
    service_rate: float
    agents: int
    abandon_rate: float

    def p_wait_over(self, t_s: float) -> float:
        """P(W > t): an arrival is still waiting (neither served nor gone) t seconds later."""
        return float(self.pi[self.agents :] @ _offered_wait_survival(self, t_s)) * np.exp(
            -self.abandon_rate * t_s
        )

    def p_offered_wait_over(self, t_s: float) -> float:
        """P(V > t): an infinitely patient arrival would wait longer than t."""
        return float(self.pi[self.agents :] @ _offered_wait_survival(self, t_s))


def erlang_a(arrival_rate: float, service_rate: float, agents: int, abandon_rate: float) -> ErlangA:
    """The M/M/n+M (Palm's "Erlang-A") queue: Poisson arrivals at rate λ, n agents with
    exponential service at rate μ, FIFO queue, exponential patience at rate θ.

    The number in system is a birth–death chain (Palm 1943/1957; Garnett, Mandelbaum
    & Reiman, "Designing a call center with impatient customers", M&SOM 4(3), 2002;
    Mandelbaum & Zeltyn, "The Palm/Erlang-A queue", 2007) with birth rate λ and
    death rate d_k = min(k, n)·μ + max(k − n, 0)·θ, so

        π_k ∝ (λ/μ)^k / k!                                 for k ≤ n,
        π_k = π_n · ∏_{j=1}^{k−n} λ / (nμ + jθ)            for k > n.

    It is stable for every λ when θ > 0; it is summed here up to the state where
    π_k < 1e-15 (in logs, so n in the hundreds does not overflow). Then, with
    Q = (K − n)⁺ the queue length,

        P(Ab)    = θ·E[Q] / λ        (abandonment flux over arrival flux)
        E[W]     = E[Q] / λ          (Little's law on the queue, all arrivals)
        occupancy = E[min(K, n)] / n = λ(1 − P(Ab)) / (nμ)
        P(W > t) = e^{−θt} · Σ_{k≥n} π_k · P(V_{k−n} > t)    (PASTA)

    where V_j, the offered wait of an arrival with j callers ahead, is a sum of
    independent exponentials of rates nμ + iθ, i = j, …, 0 (the head is served at
    rate nμ and each caller ahead may abandon at rate θ).
    """
    lam, mu, theta, n = float(arrival_rate), float(service_rate), float(abandon_rate), int(agents)
    if lam <= 0 or mu <= 0 or n < 1 or theta < 0:
        raise ValueError("need arrival_rate > 0, service_rate > 0, agents >= 1, abandon_rate >= 0")
    if theta == 0 and lam >= n * mu:
        raise ValueError("without abandonment the queue is unstable unless λ < nμ")

    # log π_k (unnormalised) for k = 0..n, then the queue until the tail is negligible.
    k = np.arange(1, n + 1)
    log_pi = [0.0, *np.cumsum(np.log(lam / (k * mu))).tolist()]
    peak = max(log_pi)
    j = 0
    while True:
        j += 1
        step = np.log(lam / (n * mu + j * theta))
        nxt = log_pi[-1] + step
        log_pi.append(nxt)
        peak = max(peak, nxt)
        if step < 0 and nxt - peak < np.log(_TAIL):
            break
        if j > 10_000_000:
            raise ValueError("queue does not settle: parameters too close to instability")
    log_pi = np.asarray(log_pi)
    pi = np.exp(log_pi - logsumexp(log_pi))

    states = np.arange(pi.size)
    queue = np.maximum(states - n, 0)
    mean_q = float(pi @ queue)
    busy = float(pi @ np.minimum(states, n))
    return ErlangA(
        p_abandon=theta * mean_q / lam,
        occupancy=busy / n,
        mean_wait_s=mean_q / lam,
        mean_queue=mean_q,
        p_delay=float(pi[n:].sum()),
        pi=pi,
        arrival_rate=lam,
        service_rate=mu,
        agents=n,
        abandon_rate=theta,
    )


def _offered_wait_survival(q: ErlangA, t_s: float) -> np.ndarray:
    """P(V_j > t) for j = 0..J callers ahead: transient pure-death chain, e^{Gt}·1."""
    size = q.pi.size - q.agents
    rates = q.agents * q.service_rate + np.arange(size) * q.abandon_rate
    g = np.diag(-rates) + np.diag(rates[1:], -1)
    return expm(g * t_s) @ np.ones(size)
