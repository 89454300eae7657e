"""Several populations: K densities m_1..m_K on one grid, each with its own HJB/FP pair.

Population k has its own noise sigma_k, Hamiltonian, potential V_k, drift, terminal cost G_k and initial
density m0_k (an ``MFGProblem`` describes it), and sees the running cost

    F_k(x, m_1..m_K) = F_k^own(x, m_k) + sum_j C_kj(x, m_j)

    F_k(x, m_1..m_K) = F_k^own(x, m_k) + sum_j C_kj(x, m_j) + F_tot(x, m_1 + ... + m_K)

where F_k^own is the population's own ``coupling``, the cross terms C_kj are single-population couplings
(``LocalPower``, ``QuadraticInteraction``, ``KernelInteraction``, ...) applied to the density of population j
(``CrossCoupling``), and F_tot (``total_coupling``) a single-population coupling of the density of all agents.
Two crowds that avoid each other locally: C_12 = b m_2, C_21 = b m_1 (``CrossCoupling.local``).

Types with switching (``switching=Q``): the populations are then K types of one kind of agent, and an agent of
type k becomes of type j at the rate q_kj >= 0 (the rows of Q sum to 0; ``model.switching``).  The types'
masses change (the total does not), and the equations gain the switching terms:

    -du_k/dt - nu_k Lap u_k + H_k(grad u_k) - b_k . grad u_k - sum_j q_kj (u_j - u_k) = V_k + F_k(x, m_1..m_K)
     dm_k/dt - nu_k Lap m_k + div(m_k (b_k - dH_k/dp(grad u_k))) = sum_j q_jk m_j - m_k sum_j q_kj

(without switching the sums are absent: u_k(T) = G_k, m_k(0) = m0_k either way; docs/method.md, section
'Several populations').  A Hamiltonian that depends on m (congestion) sees the population's own density m_k,
and with switching the density of all agents, m_1 + ... + m_K (the types are one kind of agent).
"""

from __future__ import annotations

import numpy as np

from .couplings import Coupling, LocalPower, ScaledCoupling, SumCoupling
from .problem import MFGProblem, PlanningProblem
from .switching import check_switching, propagator, stationary_distribution


class CrossCoupling:
    """The cross terms of a multi-population running cost: ``terms`` maps (k, j) to a single-population
    Coupling C_kj, and population k's running cost gains C_kj(x, m_j) (indices from 0).  A term (k, k) acts
    on the population's own density like its own ``coupling``."""

    def __init__(self, terms: dict):
        if not isinstance(terms, dict) or not terms:
            raise TypeError("CrossCoupling(terms): terms must be a non-empty dict {(k, j): Coupling}, e.g. "
                            "{(0, 1): LocalPower(2.0), (1, 0): LocalPower(2.0)}")
        self.terms = {}
        for key, c in terms.items():
            if not (isinstance(key, tuple) and len(key) == 2
                    and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in key)):
                raise ValueError(f"CrossCoupling: key {key!r} must be a pair (k, j) of population indices >= 0 "
                                 "(term C_kj acts on m_j in the cost of population k)")
            if not isinstance(c, Coupling):
                raise TypeError(f"CrossCoupling: term {key} is {type(c).__name__}, not a mfg_pde Coupling")
            self.terms[(int(key[0]), int(key[1]))] = c

    @classmethod
    def local(cls, matrix) -> "CrossCoupling":
        """F_k += sum_j a_kj m_j (local, linear) from a K x K matrix a (zero entries are left out)."""
        a = np.asarray(matrix, dtype=float)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"CrossCoupling.local(matrix): expected a square K x K matrix, got shape {a.shape}")
        terms = {(k, j): LocalPower(a[k, j], 1.0) for k in range(a.shape[0]) for j in range(a.shape[1])
                 if a[k, j] != 0.0}
        if not terms:
            raise ValueError("CrossCoupling.local(matrix): all entries are zero; pass coupling=None instead")
        return cls(terms)

    @property
    def populations(self) -> int:
        """The number of populations the terms name (largest index + 1)."""
        return 1 + max(max(k, j) for k, j in self.terms)

    def sources(self, k: int):
        """[(j, C_kj)] of population k."""
        return [(j, c) for (i, j), c in sorted(self.terms.items()) if i == k]

    def describe(self) -> dict:
        return {"type": "cross", "terms": [{"k": k, "j": j, "coupling": c.describe()}
                                           for (k, j), c in sorted(self.terms.items())]}


def _linear_local(c) -> float | None:
    """a when the coupling is F = a m (LocalPower with p = 1, scaled and summed), else None."""
    if c is None:
        return 0.0
    if isinstance(c, LocalPower):
        return c.kappa if c.p == 1.0 else None
    if isinstance(c, ScaledCoupling):
        a = _linear_local(c.base)
        return None if a is None else c.scale * a
    if isinstance(c, SumCoupling):
        parts = [_linear_local(p) for p in c.parts]
        return None if any(p is None for p in parts) else float(sum(parts))
    return None


class MultiPopulationProblem:
    """K populations (``MFGProblem``s sharing one Grid, T and Nt) coupled by ``coupling`` (a ``CrossCoupling``
    or None) and ``total_coupling`` (a ``Coupling`` of the total density, or None); see the module docstring.
    ``names`` labels the populations (default "pop0", "pop1", ...).  ``switching``: a K x K switching-rate
    matrix Q (rows summing to 0, off-diagonal rates >= 0) when the populations are types of agents that switch
    between them (module docstring), None otherwise.  ``shares`` (with switching): the initial mass of each
    type, p_k >= 0 summing to 1 (default: the long-run shares pi, pi Q = 0); type k starts from p_k m0_k (each
    population's m0 is a probability density: the shape of the type's initial distribution).

    Solved by ``mfg_pde.solve`` (methods picard, fictitious-play, anderson, newton, auto) on the joint
    density (m_1..m_K); with switching by the coupling loops (auto: Anderson, then damped Picard)."""

    def __init__(self, populations, coupling: CrossCoupling | None = None, names=None, name: str | None = None,
                 switching=None, total_coupling: Coupling | None = None, shares=None):
        pops = list(populations) if not isinstance(populations, MFGProblem) else [populations]
        if not pops:
            raise ValueError("populations: give at least one MFGProblem (one per population)")
        for k, p in enumerate(pops):
            if isinstance(p, PlanningProblem) or not isinstance(p, MFGProblem):
                raise TypeError(f"populations[{k}] is {type(p).__name__}; each population is a terminal-cost "
                                "mfg_pde.MFGProblem")
        ref = pops[0]
        for k, p in enumerate(pops[1:], start=1):
            if p.grid.describe() != ref.grid.describe():
                raise ValueError(f"populations[{k}].grid = {p.grid!r} differs from populations[0].grid = {ref.grid!r}; "
                                 "all populations must share one Grid (same bounds, cells and boundary conditions)")
            if p.T != ref.T:
                raise ValueError(f"populations[{k}].T = {p.T} differs from populations[0].T = {ref.T}; all "
                                 "populations must share one horizon T")
            if p.Nt != ref.Nt:
                raise ValueError(f"populations[{k}].Nt = {p.Nt} differs from populations[0].Nt = {ref.Nt}; all "
                                 "populations must share the time steps Nt")
        if coupling is not None and not isinstance(coupling, CrossCoupling):
            raise TypeError(f"coupling must be a mfg_pde.CrossCoupling (or None), got {type(coupling).__name__}")
        if coupling is not None and coupling.populations > len(pops):
            k, j = max(coupling.terms, key=lambda kj: max(kj))
            raise ValueError(f"coupling has a term ({k}, {j}) that names population {max(k, j)}, but only "
                             f"{len(pops)} populations are given (indices 0..{len(pops) - 1}); add the population "
                             "or drop the term")
        if total_coupling is not None and not isinstance(total_coupling, Coupling):
            raise TypeError(f"total_coupling must be a mfg_pde Coupling of the total density (or None), got "
                            f"{type(total_coupling).__name__}")
        self.switching = None if switching is None else self._check_switching(switching, pops)
        self.shares = self._check_shares(shares, len(pops))
        if names is None:
            names = [p.name or f"pop{k}" for k, p in enumerate(pops)]
        names = [str(n) for n in names]
        if len(names) != len(pops) or len(set(names)) != len(names):
            raise ValueError(f"names = {names}: give {len(pops)} distinct names, one per population")
        self.populations = pops
        self.coupling = coupling
        self.total_coupling = total_coupling
        self.names = names
        self.name = name
        self.grid, self.T, self.Nt = ref.grid, ref.T, ref.Nt

    @staticmethod
    def _check_switching(switching, pops) -> np.ndarray:
        """Q checked (``model.switching.check_switching``) against the populations: K x K, no exit sides."""
        Q = check_switching(switching)
        if Q.shape[0] != len(pops):
            raise ValueError(f"switching has shape {Q.shape}, but {len(pops)} populations are given: the switching-"
                             f"rate matrix needs one row and one column per population ({len(pops)} x {len(pops)})")
        if pops[0].has_exits:
            raise NotImplementedError("switching with exit sides: the joint sweeps of switching types take "
                                      "reflecting or periodic sides; drop the switching or the exits")
        return Q

    def _check_shares(self, shares, K) -> np.ndarray | None:
        """The types' initial masses (``shares``), checked; None without switching."""
        if self.switching is None:
            if shares is not None:
                raise ValueError("shares: the initial masses of the types are given with switching=Q only (without "
                                 "switching each population has mass 1)")
            return None
        if shares is None:
            try:
                return stationary_distribution(self.switching)
            except ValueError:
                raise ValueError("shares: the switching-rate matrix has no unique long-run shares; give the initial "
                                 f"masses of the {K} types, shares=[p_0, ..], p_k >= 0 summing to 1") from None
        p = np.array(shares, dtype=float).ravel()
        if p.shape != (K,) or not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1.0) > 1e-12:
            raise ValueError(f"shares = {shares!r}: give the initial masses of the {K} types, K numbers >= 0 summing "
                             "to 1 (e.g. the long-run shares, the default)")
        return p

    def m0_of(self, k: int) -> np.ndarray:
        """The initial density of population k: its m0, times its share with switching types."""
        pop = self.populations[k]
        return pop.m0 if self.shares is None else self.shares[k] * pop.m0

    @property
    def K(self) -> int:
        return len(self.populations)

    @property
    def has_switching(self) -> bool:
        """Whether the populations are types with switching (a switching-rate matrix was given)."""
        return self.switching is not None

    def switching_step(self) -> np.ndarray:
        """E = exp(dt Q), the switching part of one time step (``model.switching.propagator``); I without
        switching."""
        if self.switching is None:
            return np.eye(self.K)
        if getattr(self, "_E", None) is None:
            self._E = propagator(self.switching, self.dt)
            self._E.flags.writeable = False
        return self._E

    def total_mass(self) -> float:
        """sum_k int m0_k: the mass of all agents (conserved by the switching)."""
        return float(sum(self.grid.integrate(self.m0_of(k)) for k in range(self.K)))

    @property
    def t(self) -> np.ndarray:
        return self.populations[0].t

    @property
    def dt(self) -> float:
        return self.populations[0].dt

    @property
    def is_coupled(self) -> bool:
        """Whether any population's HJB data depend on a density (otherwise one sweep per population)."""
        return (self.coupling is not None or self.total_coupling is not None
                or any(p.is_coupled for p in self.populations))

    @property
    def has_exits(self) -> bool:
        return any(p.has_exits for p in self.populations)

    def running_cost(self, k: int, ms) -> np.ndarray:
        """f_k^n = V_k(t_{n+1}) + F_k(x, m_1^{n+1}..m_K^{n+1}), shape (Nt, *grid), from the densities ms (one
        (Nt+1, *grid) array per population); 0 on solid cells."""
        pop = self.populations[k]
        f = pop.running_cost(ms[k])
        if self.coupling is not None:
            t = self.t[1:]
            for j, c in self.coupling.sources(k):
                f += c.field(self.grid, t, ms[j][1:])
        if self.total_coupling is not None:
            f += self.total_coupling.field(self.grid, self.t[1:], sum(mj[1:] for mj in ms))
        if self.coupling is not None or self.total_coupling is not None:
            f = pop._zero_solid(f, 1)
        return f

    def terminal_values(self, k: int, ms) -> np.ndarray:
        """u_k(T) = G_k(x[, m_k(T)])."""
        return self.populations[k].terminal_values(ms[k][self.Nt])

    def initial_density(self, m_init=None) -> np.ndarray:
        """The starting joint density of the coupling loops, (Nt+1, K, *grid): ``m_init`` (K densities on all
        levels, shaped (K, Nt+1, *grid); level 0 reset to the m0_k) or every m0_k frozen in time."""
        K, Nt, grid = self.K, self.Nt, self.grid
        M = np.empty((Nt + 1, K) + grid.shape)
        if m_init is not None:
            arr = np.asarray(m_init, dtype=float)
            want = (K, Nt + 1) + grid.shape
            if arr.shape != want:
                raise ValueError(f"m_init has shape {arr.shape}; a start of {K} populations needs (K, Nt+1, *grid) "
                                 f"= {want}")
            M[:] = np.moveaxis(arr, 0, 1)
        for k in range(K):
            M[1:, k] = self.m0_of(k) if m_init is None else M[1:, k]
            M[0, k] = self.m0_of(k)
        if m_init is None and self.switching is not None:   # the types' switching without motion: exact shares
            E = self.switching_step()
            for n in range(Nt):
                M[n + 1] = np.tensordot(E.T, M[n], axes=1)
        return M

    def monotone(self) -> bool | None:
        """Lasry-Lions monotonicity of the joint coupling, sum_k int (F_k(m) - F_k(m')) (m_k - m'_k) >= 0:
        decided when every own and cross term is linear and local (F_k = sum_j a_kj m_j: True exactly when
        a + a^T is positive semi-definite); None otherwise."""
        K = self.K
        a = np.zeros((K, K))
        for k, p in enumerate(self.populations):
            own = _linear_local(p.coupling)
            if own is None:
                return None
            a[k, k] += own
            if getattr(p.terminal_cost, "depends_on_m", False):
                return None
        if self.coupling is not None:
            for (k, j), c in self.coupling.terms.items():
                v = _linear_local(c)
                if v is None:
                    return None
                a[k, j] += v
        if self.total_coupling is not None:
            v = _linear_local(self.total_coupling)
            if v is None:
                return None
            a += v
        lam = np.linalg.eigvalsh(0.5 * (a + a.T))
        return bool(lam.min() >= -1e-12 * max(float(np.abs(a).max()), 1e-300))

    def describe(self) -> dict:
        d = {"T": self.T, "Nt": self.Nt, "grid": self.grid.describe(), "populations": self.K,
             "names": list(self.names), "population_params": [p.describe() for p in self.populations]}
        if self.coupling is not None:
            d["coupling"] = self.coupling.describe()
        if self.total_coupling is not None:
            d["total_coupling"] = self.total_coupling.describe()
        if self.switching is not None:
            d["switching"] = self.switching.tolist()
            d["shares"] = self.shares.tolist()
        if self.name:
            d["name"] = self.name
        return d
