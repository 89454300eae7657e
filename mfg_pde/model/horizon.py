"""The finite-horizon game with the data of a stationary one (``StationaryProblem``): transitions and the long-time
limit.

An ergodic stationary problem (rho = 0) on a grid with reflecting or periodic sides has the same running cost,
noise, Hamiltonian and switching as the time-dependent game

    -du_k/dt - nu Lap u_k + H(grad u_k) - sum_j q_kj (u_j - u_k) = V_k(x) + F(x, m),   u_k(T) = G_k
     dm_k/dt - nu Lap m_k - div(m_k dH/dp(grad u_k)) = sum_j q_jk m_j - m_k sum_j q_kj,  m_k(0) = m0_k

(m = sum_k m_k).  Over a long horizon its solution spends most of the time near the stationary state: m_k(t)
near the stationary m_k and u_k(t) near u_k + lambda (T - t).  ``time_dependent`` builds that game: one
``MFGProblem`` for one type, a ``MultiPopulationProblem`` with ``switching`` for K types (the coupling acting on
the total density, ``total_coupling``).  Started from another density, and ending with the stationary values as
terminal cost, it is the transition to the stationary state; started from the stationary state of other
parameters, the transition after a change of the parameters.  The discounted problem (rho > 0) has no
time-dependent counterpart here (the time-dependent HJB has no discount term) and is refused.  A congestion
Hamiltonian sees the density of all agents in both (with switching types the joint sweeps evaluate it at the
total density, ``fd.switching.type_operators``).
"""

from __future__ import annotations

import numpy as np

from .multipop import MultiPopulationProblem
from .problem import MFGProblem
from .stationary import StationaryProblem


def time_dependent(problem: StationaryProblem, T: float, Nt: int, m0, terminal_cost=None, name: str | None = None):
    """The time-dependent game on [0, T] (Nt steps) with the data of the ergodic stationary ``problem`` (module
    docstring), starting from ``m0`` and ending with ``terminal_cost`` G_k (None: G = 0).

    m0 : the initial density of all agents: an array of the grid's shape with one type, (K, *grid) with K types
        (type k's mass is its initial share; the masses sum to 1).
    terminal_cost : None, an array of the grid's shape (every type), or (K, *grid) (one per type), e.g. the
        stationary values ``result.u`` for a transition that ends at the stationary state.

    Returns an ``MFGProblem`` (one type) or a ``MultiPopulationProblem`` with ``switching`` (K types)."""
    if not isinstance(problem, StationaryProblem):
        raise TypeError(f"problem: expected a mfg_pde.StationaryProblem, got {type(problem).__name__}")
    if not problem.ergodic:
        raise NotImplementedError(f"time_dependent: discount = {problem.discount:g} > 0; the time-dependent solver "
                                  "has no discount term, so only the ergodic problem (discount=0) has a time-dependent "
                                  "counterpart here")
    if problem.is_open:
        raise NotImplementedError("time_dependent: a stationary problem with exits and an entry source has no "
                                  "time-dependent counterpart here (the time-dependent FP has no entry source)")
    grid, K = problem.grid, problem.K
    m0s = _per_type(grid, K, m0, "m0")
    if m0s is None:
        raise ValueError("m0: give the initial density (the grid's shape, or (K, *grid) with K types)")
    masses = np.array([float(grid.integrate(m)) for m in m0s])
    if np.any(~np.isfinite(masses)) or np.any(masses < 0) or abs(masses.sum() - 1.0) > 1e-10 * max(1, K):
        raise ValueError(f"m0: the types' masses {masses.round(6).tolist()} must be >= 0 and sum to 1 (the density "
                         "of all agents is a probability density)")
    G = _per_type(grid, K, terminal_cost, "terminal_cost")
    shapes = [m / w if w > 0 else np.full(grid.shape, 1.0 / float(grid.integrate(np.ones(grid.shape))))
              for m, w in zip(m0s, masses)]

    def one(k, coupling, label):
        return MFGProblem(grid, T, Nt, problem.sigma, shapes[k], coupling=coupling,
                          potential=np.asarray(problem.V[k], dtype=float).reshape(grid.shape),
                          terminal_cost=None if G is None else G[k], hamiltonian=problem.hamiltonian, name=label)

    if K == 1:
        return one(0, problem.coupling, name)
    return MultiPopulationProblem([one(k, None, f"type{k}") for k in range(K)], switching=problem.switching,
                                  total_coupling=problem.coupling, shares=masses, name=name)


def _per_type(grid, K, field, what):
    """A list of K arrays of the grid's shape from one array (every type / the one type) or (K, *grid)."""
    if field is None:
        return None
    arr = np.asarray(field, dtype=float)
    if arr.shape == tuple(grid.shape):
        if what == "m0" and K > 1:
            raise ValueError(f"m0 has the grid's shape {arr.shape}, but the problem has {K} types: give (K, *grid) = "
                             f"{(K,) + tuple(grid.shape)}, one density per type (their masses are the initial shares)")
        return [arr] * K
    if arr.shape == (K,) + tuple(grid.shape):
        return [arr[k] for k in range(K)]
    want = tuple(grid.shape) if K == 1 else (K,) + tuple(grid.shape)
    raise ValueError(f"{what} has shape {arr.shape}; expected {want}")
