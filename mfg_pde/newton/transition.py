"""Time-dependent household problems: the path of the economy after an unexpected shock (docs/method.md, section
'Household problems and market clearing', transitions).

On t in [0, T] with steps dt = T / Nt and prices (r_n, w_n) on step n, the value is computed backward from a
terminal value v^Nt and the density forward from an initial density g^0, both by implicit Euler with the
generator A_n = A(v^{n+1}; r_n, w_n) of the upwind policy of v^{n+1} (``newton.household.policy``):

    HJB (backward)   ((1/dt + rho) I - A_n) v^n = u(c_n) + v^{n+1} / dt,          n = Nt-1, ..., 0,
    FP  (forward)    (I - dt A_n^T) g^{n+1} = g^n,                                n = 0, ..., Nt-1.

The FP step is the exact transpose of the HJB step's generator, so h sum g^n = 1 and g^n >= 0 at every step.  A
stationary pair (v, g) of the same prices is a fixed point of both steps, so with constant prices the long-time
limit of this solver is the stationary solution of ``newton.household`` (to round-off).

Transition after a shock (Huggett).  The economy sits in the old stationary equilibrium (r_old, g_old); at t = 0 a
parameter changes unexpectedly (e.g. the income of the low type).  The value at T is the new stationary value, the
density at 0 the old stationary density, and the rate path r(t) must clear the bond market at every t,
S(t) = h sum_j sum_i a_i g_j^n(a_i) = 0.  It is found by the relaxation on the excess-supply path

    r_n  <-  r_n - xi (1 - t_n / T) S(t_{n+1}),

(S at the end of step n is the first that r_n moves; the factor 1 - t_n/T keeps r near the new stationary rate
at T), repeated until max_n |S(t_n)| <= tol.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..iterate.anderson import Anderson
from ..model.household import Household
from .household import banded_solve, flat, policy, unflat

_LOG = logging.getLogger("mfg_pde")

__all__ = ["Path", "TransitionResult", "evolve", "huggett_transition"]


@dataclass
class Path:
    """A time-dependent solution: t (Nt+1,), v0 (the value at t = 0), g (Nt+1, K, N) the density at the times t,
    c and s (Nt, K, N) consumption and savings on each step, assets (Nt+1,) h sum a g, at_limit (Nt+1,) the
    fraction of households at the borrowing limit."""

    t: np.ndarray
    v0: np.ndarray
    g: np.ndarray
    c: np.ndarray
    s: np.ndarray
    assets: np.ndarray
    at_limit: np.ndarray


def _prices(values, Nt: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(values, dtype=float), (Nt,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: the price path must be finite")
    return arr


def evolve(hh: Household, r, w, v_T: np.ndarray, g0: np.ndarray, T: float, Nt: int) -> Path:
    """HJB backward from v_T and FP forward from g0 on [0, T] with Nt implicit Euler steps and prices r, w (scalars
    or one per step); module docstring.  ValueError when T, Nt or g0 are not usable."""
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"T = {T!r}: the horizon must be > 0")
    if int(Nt) != Nt or Nt < 1:
        raise ValueError(f"Nt = {Nt!r}: need a positive integer number of time steps")
    Nt = int(Nt)
    r, w = _prices(r, Nt, "r"), _prices(w, Nt, "w")
    g0 = np.asarray(g0, dtype=float)
    if g0.shape != (hh.K, hh.N) or np.any(g0 < 0) or not np.isfinite(g0).all():
        raise ValueError(f"g0: expected a density >= 0 of shape {(hh.K, hh.N)} (types x wealth nodes)")
    for rn, wn in {(float(a), float(b)) for a, b in zip(r, w)}:
        hh.check_borrowing_limit(rn, wn)
    dt = T / Nt
    KN = hh.K * hh.N
    I = sp.identity(KN, format="csr")
    v = np.array(v_T, dtype=float)
    gens = [None] * Nt
    c = np.empty((Nt, hh.K, hh.N))
    s = np.empty((Nt, hh.K, hh.N))
    for n in range(Nt - 1, -1, -1):
        pol = policy(hh, v, r[n], w[n])
        B = (1.0 / dt + hh.rho) * I - pol.A
        v = unflat(banded_solve(B, flat(hh.utility.u(pol.c) + v / dt), hh.K), hh.K)
        gens[n], c[n], s[n] = pol.A, pol.c, pol.s
    g = np.empty((Nt + 1, hh.K, hh.N))
    g[0] = g0 / (g0.sum() * hh.h)
    for n in range(Nt):
        M = I - dt * gens[n].T
        g[n + 1] = np.maximum(unflat(banded_solve(M, flat(g[n]), hh.K), hh.K), 0.0)   # >= 0 up to round-off
    assets = (g * hh.a[None, None, :]).sum(axis=(1, 2)) * hh.h
    return Path(t=np.linspace(0.0, T, Nt + 1), v0=v, g=g, c=c, s=s, assets=assets,
                at_limit=g[:, :, 0].sum(axis=1) * hh.h)


@dataclass
class TransitionResult:
    """A general-equilibrium transition: r (Nt,) the rate on each step, path (``Path``), old and new
    (``EquilibriumResult``), iterations of the relaxation, the history of max |S| per iteration."""

    r: np.ndarray
    path: Path
    old: object
    new: object
    iterations: int
    converged: bool
    history: np.ndarray
    wall_time: float
    extra: dict = field(default_factory=dict)

    case: str | None = None
    params: dict = field(default_factory=dict)

    @property
    def excess(self) -> float:
        """max_n |S(t_n)|: the market-clearing error along the path."""
        return float(np.abs(self.path.assets).max())

    @property
    def status(self) -> str:
        return "converged" if self.converged else f"max |S(t)| = {self.excess:.2e} after {self.iterations} iterations"

    @property
    def final_residual(self) -> float:
        return self.excess

    def mass_error(self) -> float:
        """max_n |h sum g^n - 1| along the path."""
        h = float(self.new.solution.h)
        return float(np.abs(self.path.g.sum(axis=(1, 2)) * h - 1.0).max())

    def summary(self) -> str:
        return (f"huggett transition: r(0+) = {self.r[0]:.6f} -> r(T) = {self.r[-1]:.6f} (old r* = {self.old.r:.6f}, "
                f"new r* = {self.new.r:.6f}); max |S(t)| = {self.excess:.2e} after {self.iterations} iterations, "
                f"{self.wall_time:.2f} s")

    def save(self, path) -> None:
        """HDF5: the new equilibrium (``save_equilibrium``) with a /transition group: t, r (per step), assets,
        at_limit, g (times x types x nodes), history (max |S| per iteration), old_r, old_g."""
        self.new.extra["transition"] = {"t": self.path.t, "r": self.r, "assets": self.path.assets,
                                        "at_limit": self.path.at_limit, "g": self.path.g, "history": self.history,
                                        "old_r": np.array([self.old.r]), "old_g": self.old.solution.g}
        case, params = self.new.case, self.new.params
        self.new.case, self.new.params = self.case, self.params
        try:
            self.new.save(path)
        finally:
            self.new.case, self.new.params = case, params


def huggett_transition(old, new, T: float = 60.0, Nt: int = 240, xi: float = 2.0, tol: float = 1e-6,
                       max_iter: int = 200, depth: int = 6) -> TransitionResult:
    """The Huggett transition from the stationary equilibrium ``old`` to ``new`` (``EquilibriumResult``s on the
    same wealth grid; the shock is the change of household parameters between them): module docstring."""
    hh = new.economy.household
    if old.solution.a.shape != hh.a.shape or not np.allclose(old.solution.a, hh.a):
        raise ValueError("old and new equilibria: the transition needs the same wealth grid (a_min, a_max, N) before "
                         "and after the shock")
    if not (np.isfinite(xi) and xi > 0):
        raise ValueError(f"xi = {xi!r}: the relaxation step must be > 0 (smaller when the iteration diverges)")
    t0 = time.perf_counter()
    dt = T / Nt
    r = np.full(Nt, new.r)
    weight = xi
    history = []
    accel = Anderson(depth, 1.0)
    converged, path, it = False, None, 0
    for it in range(1, max_iter + 1):
        path = evolve(hh, r, 1.0, new.solution.v, old.solution.g, T, Nt)
        err = float(np.abs(path.assets).max())
        history.append(err)
        if not np.isfinite(err):
            break
        if err <= tol:
            converged = True
            break
        # r_n moves the value v^n, hence the policy and the savings flow of step n - 1 (its direct effect on
        # the flow of step n is r_n S(t_n) = 0); r_0 only multiplies S(0) = 0 and follows r_1
        step = np.zeros(Nt)
        step[1:] = -weight * np.diff(path.assets)[:-1] / dt
        r = accel.step(r, step)
        r[0] = r[1]
    wall = time.perf_counter() - t0
    _LOG.info("huggett transition: max |S(t)| = %.2e after %d iterations, %.2f s", history[-1], it, wall)
    return TransitionResult(r=r, path=path, old=old, new=new, iterations=it, converged=converged,
                            history=np.array(history), wall_time=wall)
