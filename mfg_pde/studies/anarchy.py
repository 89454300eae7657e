"""``mp.price_of_anarchy``: solve a problem for both objectives and compare their total costs
(``diagnostics.anarchy``; docs/method.md, section 'Mean-field control and the price of anarchy')."""

from __future__ import annotations

from ..diagnostics.anarchy import anarchy_report
from ..iterate.solve import solve


def price_of_anarchy(problem, nash=None, social=None, **solve_options) -> dict:
    """Solve ``problem`` with objective="nash" and objective="social" (or take the results ``nash`` / ``social``
    already solved) and return ``diagnostics.anarchy.anarchy_report``: nash_cost, social_cost,
    price_of_anarchy = nash_cost / social_cost, gain and the two results.  ``solve_options`` go to both
    ``mp.solve`` calls."""
    if "objective" in solve_options:
        raise ValueError("price_of_anarchy solves both objectives; do not pass objective=")
    nash = solve(problem, objective="nash", **solve_options) if nash is None else nash
    social = solve(problem, objective="social", **solve_options) if social is None else social
    return anarchy_report(problem, nash, social)
