"""The price of anarchy: total cost of the Nash equilibrium over that of the social optimum, on one problem.

    J(u, m) = int_0^T int (L(alpha) + V) m dx dt + int_0^T Phi(m_t) dt + int G(x, m_T) m_T dx,
    Phi(m) = int F(x, m) m dx,           PoA = J(Nash) / J(social)  (>= 1 when the costs are positive).

Both costs are the same functional of the problem (the original F and G, not the planner's first variations),
evaluated by the same quadrature: the policy evaluation of ``diagnostics.exploitability.policy_cost``, which for
a solved pair is sum_n dt int m^{n+1} (c(u^n) + V + F(m^{n+1})) + int m^Nt G(m^Nt), with c(u^n) the
Engquist-Osher control cost of the discrete policy (docs/method.md, section 'Mean-field control and the price
of anarchy').
"""

from __future__ import annotations

import logging

from .exploitability import policy_cost

log = logging.getLogger("mfg_pde")


def total_cost(problem, result) -> float:
    """J of a solved pair of ``problem`` (either objective): the population's total cost with the problem's own
    F and G (``policy_cost`` of the pair)."""
    return policy_cost(problem, result.u, result.m, getattr(result, "split_states", None))


def anarchy_report(problem, nash, social) -> dict:
    """Compare a Nash result and a social result of ``problem``: a dict with nash_cost, social_cost,
    price_of_anarchy (their ratio; nan when the social cost is not positive, where the ratio means nothing),
    gain (nash_cost - social_cost) and the two results.  Each result must have been solved with its objective
    (``result.solver["objective"]``).  ``mp.price_of_anarchy`` (``studies.anarchy``) solves them first."""
    for name, res, want in (("nash", nash, "nash"), ("social", social, "social")):
        got = (getattr(res, "solver", None) or {}).get("objective", "nash")
        if got != want:
            raise ValueError(f"price of anarchy: the result given as {name}= was solved with objective={got!r}")
    j_n, j_s = total_cost(problem, nash), total_cost(problem, social)
    ratio = j_n / j_s if j_s > 0.0 else float("nan")
    if not j_s > 0.0:
        log.warning("price of anarchy: the social cost %.6g is not positive; the ratio is reported as nan", j_s)
    return {"nash_cost": j_n, "social_cost": j_s, "price_of_anarchy": ratio, "gain": j_n - j_s,
            "nash": nash, "social": social}
