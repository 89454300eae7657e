"""StationaryProblem: a mean-field game without a horizon (docs/method.md, section 'Stationary problems').

One population, or K types of agents with Poisson switching between the types (rate q_kj >= 0 from type k to
type j, the rows of the matrix Q summing to 0).  An agent of type k controls its velocity alpha,
dX = alpha dt + sigma dW, nu = sigma^2/2, and pays l(alpha) + V_k(x) + F(x, m) per unit time (l the control
cost of the Hamiltonian H, the Legendre dual; l = |alpha|^2/2 for the default quadratic H = |p|^2/2), with m
the density of all agents (the sum of the types' densities).  With discount rate rho > 0 the value u_k solves

    discounted   rho u_k + H(grad u_k[, m]) - nu Lap u_k - sum_j q_kj (u_j - u_k) = V_k(x) + F(x, m)

and with rho = 0 (the ergodic, long-time-average problem) the unknown ergodic constant lambda enters instead:

    ergodic      lambda + H(grad u_k[, m]) - nu Lap u_k - sum_j q_kj (u_j - u_k) = V_k(x) + F(x, m),
                 normalised by  sum_k int u_k dx = 0.

In both cases the densities m_k >= 0 are stationary for the optimal feedback alpha_k = -dH/dp(grad u_k[, m]):

    -nu Lap m_k - div(m_k dH/dp(grad u_k[, m])) - sum_j q_jk m_j + m_k sum_j q_kj = 0,   sum_k int m_k dx = 1.

Open problems (exit sides).  On a grid with exit sides agents leave through the exits (paying the exit cost
g there: u = g on the exit) and enter at the rate S(x) >= 0 (``source``).  The density is then not a
probability: it solves the FP equation with the source, -nu Lap m - div(m dH/dp(grad u)) = S, m = 0 on the
exits, and its mass is whatever the inflow and the residence times make it (outflow = inflow int S exactly).
Only the discounted problem (rho > 0) is taken with exits: the ergodic constant of a game that agents leave
is not defined.

Congestion.  With ``hamiltonian=Congestion(c0, c, alpha)``, H(p, m) = |p|^2 / (2 (c0 + c m)^alpha), the
Hamiltonian sees the total density m = sum_k m_k, the same density as the coupling F(x, m): every type moves
through the same crowd.  The HJB term is then H(grad u_k, m) and the FP drift -dH/dp(grad u_k, m) =
-grad u_k / (c0 + c m)^alpha.

Solved by ``mfg_pde.solve_stationary`` (``mfg_pde.newton.stationary``).  1-D and 2-D grids with reflecting,
periodic or exit sides; every Hamiltonian of ``model.hamiltonians`` (Quadratic, Power, BoundedControl,
Separable, Congestion) except the social planner's ``PlannerCongestion``.
"""

from __future__ import annotations

import inspect

import numpy as np

from .couplings import Coupling
from .grid import Grid
from .hamiltonians import as_hamiltonian
from .numbers import finite_number
from .switching import check_switching, stationary_distribution

#: grid dimensions the stationary solver takes (its Newton factors one sparse matrix of 2 K N unknowns)
STATIONARY_DIMS = (1, 2)


class StationaryProblem:
    """A stationary (discounted or ergodic) MFG on a 1-D or 2-D grid; module docstring for the equations.

    Parameters
    ----------
    grid : a 1-D or 2-D ``Grid`` with reflecting or periodic sides.
    sigma : noise intensity (nu = sigma^2/2 > 0).
    coupling : F(x, m) (a ``Coupling``; it sees the total density of all types), or None.
    potential : V(*coords): a callable of the coordinate arrays (V(x) in 1-D, V(x, y) in 2-D on the grid's
        mesh), an array of the grid's shape, or with K types one of these per type (a list of K, or a
        (K, *grid) array); None for V = 0.
    discount : the discount rate rho >= 0; 0 gives the ergodic problem (unknown lambda).
    switching : the K x K switching-rate matrix Q (rows sum to 0, off-diagonal rates >= 0), None for one type.
    hamiltonian : H(p[, m]) (``model.hamiltonians``: Quadratic (default, None), Power, BoundedControl,
        Separable, or Congestion(c0, c, alpha), H = |p|^2 / (2 (c0 + c m)^alpha) with m the total density of all
        types, the one the coupling sees); the planner's PlannerCongestion is refused.
    source : with exit sides only: the entry rate S(*coords) >= 0 of agents (a callable, an array of the grid's
        shape, or one per type like ``potential``); required there (module docstring, 'Open problems').
    exit_cost : with exit sides: the cost g paid on leaving, one number for every exit side.
    """

    def __init__(self, grid: Grid, sigma: float, coupling: Coupling | None = None, potential=None,
                 discount: float = 0.0, switching=None, name: str | None = None, hamiltonian=None,
                 source=None, exit_cost: float = 0.0):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid: expected a mfg_pde.Grid, got {type(grid).__name__}")
        if grid.ndim not in STATIONARY_DIMS:
            raise NotImplementedError(f"StationaryProblem on a {grid.ndim}-D grid: the stationary solver takes 1-D "
                                      "and 2-D grids (Grid([(lo, hi)], N) or Grid([(x0, x1), (y0, y1)], (Nx, Ny)))")
        sig = finite_number(sigma, "sigma", fix="the noise intensity, > 0, e.g. sigma=0.5")
        if not sig > 0:
            raise ValueError(f"sigma = {sigma!r}: the noise intensity must be finite and > 0 (the stationary "
                             "density needs diffusion), e.g. sigma=0.5")
        rho = finite_number(discount, "discount", fix="the discount rate rho, >= 0")
        if rho < 0:
            raise ValueError(f"discount = {discount!r}: the discount rate rho must be finite and >= 0 (rho > 0: "
                             "discounted problem; rho = 0: ergodic problem)")
        if coupling is not None and not isinstance(coupling, Coupling):
            raise TypeError("coupling must be a mfg_pde.model.couplings.Coupling (or None)")
        ham = as_hamiltonian(hamiltonian)
        if hasattr(ham, "fp_weights"):
            raise NotImplementedError(f"hamiltonian = {ham!r}: the social planner's Hamiltonian moves the agents "
                                      "with other weights than its HJB, and the stationary solver computes the Nash "
                                      "equilibrium only; give the agents' own Hamiltonian (e.g. Congestion(c0, c, "
                                      "alpha)) or solve the planner's problem with the time-dependent solver "
                                      "(mfg_pde.MFGProblem, objective='social')")
        self.hamiltonian = ham
        self.grid = grid
        self.sigma = sig
        self.discount = rho
        self.coupling = coupling
        self.name = name
        if switching is None:
            self.switching = np.zeros((1, 1))
        else:
            self.switching = check_switching(switching)
        self.K = self.switching.shape[0]
        self.type_shares = stationary_distribution(self.switching)
        self.potential = potential
        self.V = self._potential_values(potential)
        self.source = source
        self.exit_cost = self._open_boundary(source, exit_cost)
        self.S = None if source is None else self._potential_values(source, "source")
        if self.S is not None and (np.any(self.S < 0) or not self.S.sum() > 0):
            raise ValueError("source: the entry rate S must be >= 0 with a positive integral (agents enter where "
                             "S > 0)")

    @property
    def nu(self) -> float:
        return 0.5 * self.sigma ** 2

    @property
    def ergodic(self) -> bool:
        return self.discount == 0.0

    @property
    def has_types(self) -> bool:
        return self.switching is not None and self.K > 1

    def _open_boundary(self, source, exit_cost) -> float:
        """Checks of the exits, the source and the exit cost (module docstring, 'Open problems'); returns g."""
        grid = self.grid
        if not grid.has_exits:
            if source is not None:
                raise ValueError(f"source: agents that enter must be able to leave; the grid (bc = {grid.bc}) has no "
                                 "exit side: give exit sides (e.g. bc=('reflecting', 'exit')) or drop the source")
            return float(exit_cost)
        if self.ergodic:
            raise ValueError(f"discount = 0 with exit sides (bc = {grid.bc}): the ergodic problem has no stationary "
                             "state when agents leave (no ergodic constant); give a discount rate rho > 0 (and an "
                             "entry source), or reflecting/periodic sides for the ergodic problem")
        if source is None:
            raise ValueError(f"source: with exit sides (bc = {grid.bc}) the only stationary density without an "
                             "inflow is m = 0; give the entry rate source=S(x) >= 0")
        return finite_number(exit_cost, "exit_cost", fix="the cost paid on leaving")

    @property
    def is_open(self) -> bool:
        """Whether agents leave (exit sides) and enter (the source): no mass normalisation, m = A^-T S."""
        return self.grid.has_exits

    def _one_potential(self, V, where: str, what: str = "potential") -> np.ndarray:
        grid = self.grid
        if V is None:
            return np.zeros(grid.size)
        if callable(V):
            try:
                inspect.signature(V).bind(*range(grid.ndim))
            except TypeError:
                sig = f"{'V' if what == 'potential' else 'S'}({', '.join('xyz'[:grid.ndim])})"
                raise ValueError(f"{what}{where}: expected a callable {sig} of the {grid.ndim} coordinate "
                                 "array(s) (no time argument: the problem is stationary)") from None
            except ValueError:
                pass
            val = V(*grid.mesh())
        else:
            val = V
        try:
            arr = np.asarray(val, dtype=float)
            if arr.shape == (grid.size,) and grid.ndim > 1:   # flattened values (a row of a (K, N) array)
                arr = arr.reshape(grid.shape)
            arr = np.broadcast_to(arr, grid.shape)
        except (TypeError, ValueError):
            raise ValueError(f"{what}{where} gave shape {np.shape(val)}; expected the grid shape {grid.shape}") \
                from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}{where} has non-finite values on the grid")
        return np.array(arr, dtype=float).reshape(-1)

    def _potential_values(self, potential, what: str = "potential") -> np.ndarray:
        """V_k on the grid, (K, N) (or the same layout of another field of the types, ``what``)."""
        K, N = self.K, self.grid.size
        if isinstance(potential, (list, tuple)):
            if len(potential) != K:
                raise ValueError(f"{what}: {len(potential)} entries for {K} types; give one {what}, or one "
                                 "per type")
            return np.stack([self._one_potential(v, f"[{k}]", what) for k, v in enumerate(potential)])
        if isinstance(potential, np.ndarray) and K > 1 and potential.shape in ((K, N), (K,) + self.grid.shape):
            return np.stack([self._one_potential(v, f"[{k}]", what) for k, v in enumerate(potential)])
        one = self._one_potential(potential, "", what)
        return np.broadcast_to(one, (K, N)).copy()

    def running_cost(self, m_total: np.ndarray) -> np.ndarray:
        """f_k = V_k + F(x, m) on the grid, (K, N), with m the total density (N,) (the grid flattened)."""
        f = self.V.copy()
        if self.coupling is not None:
            F = self.coupling.field(self.grid, np.zeros(1), np.asarray(m_total, dtype=float).reshape((1,) +
                                                                                                     self.grid.shape))
            f += np.asarray(F, dtype=float).reshape(1, -1)
        return f

    def describe(self) -> dict:
        d = {"stationary": True, "sigma": self.sigma, "nu": self.nu, "discount": self.discount,
             "ergodic": self.ergodic, "grid": self.grid.describe(), "types": self.K}
        if not self.hamiltonian.is_quadratic:
            d["hamiltonian"] = self.hamiltonian.describe()
        if self.K > 1:
            d["switching"] = self.switching.tolist()
        if self.coupling is not None:
            d["coupling"] = self.coupling.describe()
        if self.is_open:
            d["exit_cost"] = self.exit_cost
            d["source"] = getattr(self.source, "__name__", "array") if callable(self.source) else "array"
        if self.potential is not None:
            d["potential"] = getattr(self.potential, "__name__", "array") if callable(self.potential) else "array"
        if self.name:
            d["name"] = self.name
        return d
