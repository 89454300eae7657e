"""Mean-field control: the social planner's problem as a game with modified costs.

A planner who minimises the total cost

    J(m, alpha) = int_0^T int (L(alpha) + V) m dx dt + int_0^T Phi(m_t) dt + int G(x, m_T) m_T dx,
    Phi(m) = int F(x, m) m(x) dx,

subject to the FP equation has the optimality system of an MFG in which F and G are replaced by their first
variations (docs/method.md, section 'Mean-field control and the price of anarchy'):

    HJB  -du/dt - nu Lap u + H(grad u) - b . grad u = V + delta Phi/delta m (x, m_t),
    u(T) = delta/delta m [int G(y, m) m(y) dy](x, m_T),

with the FP equation unchanged.  ``social_problem`` builds that problem, so every coupling loop and Newton
solve it unchanged, with the FP step the exact transpose of the linearised HJB step, mass to round-off and
m >= 0.  The first variations belong to the couplings (``Coupling.first_variation``) and to the terminal cost
(``TerminalCost(..., first_variation=...)``).

An m-dependent Hamiltonian (``Congestion`` with c != 0) adds the congestion correction -m dH/dm(grad u, m) to the
planner's HJB, i.e. the HJB sees H + m dH/dm (``Hamiltonian.first_variation``: ``PlannerCongestion``) while the
density still moves with the agents' control -dH/dp: the FP step is then the exact transpose of the policy's
step (the HJB step with the original weights at the same u), not of the planner's HJB step, and mass and m >= 0
hold as before.  The coupling loops solve it, and so does Newton on the whole system (1-D to 3-D), whose FP
blocks then use the FP rows' own weights (``newton.system_1d``, ``newton.system_split``).
"""

from __future__ import annotations

import copy

#: the objectives ``mp.solve`` accepts: the Nash equilibrium, and the social (mean-field control) optimum
OBJECTIVES = ("nash", "social")


def objective_name(objective) -> str:
    """The objective as one of ``OBJECTIVES`` (case-insensitive), or a ValueError listing the choices."""
    key = str(objective).strip().lower() if isinstance(objective, str) else None
    if key not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r}: choose one of {', '.join(repr(o) for o in OBJECTIVES)} "
                         "(the Nash equilibrium, or the social planner's optimum)")
    return key


def social_terminal_cost(terminal_cost):
    """The planner's terminal condition: G itself when G does not depend on m, else the TerminalCost of its
    first variation (a NotImplementedError when it gives none)."""
    from .problem import TerminalCost

    if not getattr(terminal_cost, "depends_on_m", False):
        return terminal_cost
    fv = getattr(terminal_cost, "first_variation", None)
    if fv is None:
        name = getattr(getattr(terminal_cost, "fn", None), "__name__", type(terminal_cost).__name__)
        raise NotImplementedError(
            f"the terminal cost {name} depends on m_T but gives no first variation, which objective='social' "
            "needs: pass TerminalCost(G, depends_on_m=True, first_variation=G_soc) with "
            "G_soc(*coords, m_T) = delta/delta m int G m dx")
    return TerminalCost(fv, depends_on_m=True)


def social_problem(problem):
    """A copy of ``problem`` whose coupling and terminal cost are replaced by their first variations: its Nash
    equilibrium is the social optimum of ``problem``.  Raises NotImplementedError (naming the part) for a
    coupling or terminal cost without a first variation and for an m-dependent Hamiltonian."""
    ham = getattr(problem, "hamiltonian", None)
    planner_ham = None if ham is None else ham.first_variation()
    coupling = None if problem.coupling is None else problem.coupling.first_variation()
    terminal = social_terminal_cost(problem.terminal_cost)
    out = copy.copy(problem)
    out.coupling = coupling
    out.terminal_cost = terminal
    out._static_cache = dict(problem._static_cache)  # V, b, S do not change; the dict must not be shared
    if planner_ham is not ham:
        out.hamiltonian = planner_ham
        out._static_cache.pop("kernel", None)   # the kernels' records carry the Hamiltonian
    return out

