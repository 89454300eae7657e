"""mfg_pde: numba finite-difference solvers for low-dimensional mean-field games.

    >>> import mfg_pde as mp
    >>> grid = mp.Grid([(-4, 4)], 200)
    >>> problem = mp.MFGProblem(grid, T=1.0, Nt=200, sigma=0.5, m0=mp.gaussian(grid, 0.0, 0.5),
    ...                         coupling=mp.QuadraticInteraction(2.0),
    ...                         terminal_cost=mp.QuadraticTerminalCost(q=1.0, target=1.0))
    >>> result = mp.solve(problem)          # Anderson-accelerated fixed point
    >>> result.mean()[-1], result.converged
"""

from ._version import __version__  # noqa: E402,F401

from .model.grid import Grid  # noqa: E402
from .model.schedules import Constant, PiecewiseConstant, as_schedule  # noqa: E402
from .model.densities import gaussian, gaussian_mixture, normalise, check_density  # noqa: E402
from .model.couplings import (Coupling, FixedGuidance, KernelInteraction, LocalLog, LocalPower,  # noqa: E402
                               MeanAttraction, QuadraticInteraction, ScaledCoupling, SumCoupling)
from .model.problem import Drift, LinearDrift, MFGProblem, PlanningProblem, QuadraticTerminalCost, TerminalCost  # noqa: E402
from .model.stationary import StationaryProblem  # noqa: E402
from .model.utility import CRRA  # noqa: E402
from .model.household import Household  # noqa: E402
from .model.multipop import CrossCoupling, MultiPopulationProblem  # noqa: E402
from .model.horizon import time_dependent  # noqa: E402
from .model.geometry import Disc, Door, Interval, Polygon, Rectangle, Union, obstacle_mask  # noqa: E402
from .model.hamiltonians import BoundedControl, Congestion, Hamiltonian, Power, Quadratic, Separable  # noqa: E402
from .result import MFGResult  # noqa: E402

__all__ = [
    "Grid", "Constant", "PiecewiseConstant", "as_schedule", "gaussian", "gaussian_mixture", "normalise",
    "check_density", "Coupling", "FixedGuidance", "KernelInteraction", "LocalLog", "LocalPower",
    "MeanAttraction", "QuadraticInteraction", "ScaledCoupling", "SumCoupling", "Drift", "LinearDrift", "MFGProblem", "QuadraticTerminalCost", "TerminalCost",
    "Rectangle", "Interval", "Disc", "Polygon", "Union", "Door", "obstacle_mask",
    "Hamiltonian", "Quadratic", "Power", "BoundedControl", "Congestion", "Separable",
    "MFGResult", "PlanningProblem", "MultiPopulationProblem", "CrossCoupling", "StationaryProblem", "solve_stationary", "time_dependent", "solve", "solve_planning", "solve_planning_newton", "exploitability", "price_of_anarchy", "load", "load_problem", "cases",
    "sweep",
    "CRRA", "Household", "Huggett", "Aiyagari", "solve_household", "solve_equilibrium", "huggett_transition",
]


def __getattr__(name):
    # heavy parts (numba kernels, h5py, the case registry) load on first use: `import mfg_pde` stays fast
    if name == "solve":
        from .iterate.solve import solve
        return solve
    if name == "solve_planning":
        from .planning.sinkhorn import solve_planning
        return solve_planning
    if name == "solve_planning_newton":
        from .planning.congestion import solve_planning_newton
        return solve_planning_newton
    if name == "solve_stationary":
        from .newton.stationary import solve_stationary
        return solve_stationary
    if name in ("Huggett", "Aiyagari", "solve_equilibrium"):   # heterogeneous-agent economies
        from .newton import equilibrium
        return getattr(equilibrium, name)
    if name == "solve_household":
        from .newton.household import solve_household
        return solve_household
    if name == "huggett_transition":
        from .newton.transition import huggett_transition
        return huggett_transition
    if name == "exploitability":
        from .diagnostics.exploitability import exploitability
        return exploitability
    if name == "price_of_anarchy":
        from .studies.anarchy import price_of_anarchy
        return price_of_anarchy
    if name == "load":
        from .result import load
        return load
    if name == "load_problem":
        from .result import load_problem
        return load_problem
    if name == "sweep":   # parameter studies on Dask (optional extra [sweep]; dask loads when one runs)
        from .sweeps import sweep
        return sweep
    if name in ("cases", "plotting"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mfg_pde' has no attribute {name!r}")
