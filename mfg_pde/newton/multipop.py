"""Newton's method on the joint discrete system of a multi-population game (``model.multipop``).

The unknowns are every population's (u_k, m_k) -- in 2-D/3-D its split chain (U_k, Mu_k) -- and the
equations every population's discrete HJB and FP (``system_1d.DiscreteSystem`` / ``system_split.SplitSystem``
of that population, evaluated with its running cost f_k = V_k + F_k(x, m_1..m_K)).  The Jacobian is block
structured: population k's own blocks [[P_k, -Phi_kk], [Hs_k, P_k^T]] are those of the single-population
system, and the populations are coupled only through the coupling blocks

    dR_H,k / dm_j = -Phi_kj = -dt dF_k/dm_j          (HJB of k against the density of j)

(own coupling, the cross terms C_kj and the coupling of the total density, whose dF_tot/dm enters every
block; ``derivatives.coupling_derivative`` of each part).  The FP of k
depends on u_k and m_k only.  Eliminating every du_k with population k's backward sweep P_k^{-1} and its FP
sweep P_k^{-T} leaves one system for the joint density update,

    dm_k + K_k sum_j Phi_kj dm_j = b_k      (k = 1..K),    K_k = P_k^{-T} Hs_k P_k^{-1},

with b_k, K_k the single-population ``ReducedSystem`` / ``SplitReduced`` pieces (built with a zero coupling
derivative: the joint Phi is applied here); conjugate gradients solve it after symmetrisation when Phi is local,
symmetric and positive semi-definite node by node, GMRES otherwise (``JointReduced``); then
du_k = P_k^{-1} (sum_j Phi_kj dm_j - R_H,k)
(in 2-D/3-D through the split chain, as ``SplitReduced``).  The joint iterate stacks the populations after
the time axis, (Nt+1, K, ...), so that ``driver.NewtonRun`` (line search, forcing terms) drives it unchanged
(``NewtonRun(..., system=JointSystem(problem))``).
The merit function scales each population's residuals by its own denominators (sH_k, sF_k).
"""

from __future__ import annotations

import time

import numpy as np

from ..fd.hjb import HJBSolution, empty_states
from ..iterate.monitor import HISTORY_KEYS, Progress, record
from .derivatives import CouplingDerivative, coupling_derivative, terminal_derivative
from .driver import NEWTON_KEYS, NewtonRun, make_system
from .krylov import gmres
from .system_1d import _dot


def newton_unavailable(problem) -> str | None:
    """None when the joint Newton can run on this multi-population problem, else the reason it cannot."""
    from ..iterate.auto import newton_available

    if getattr(problem, "has_switching", False):
        return ("the joint Newton does not carry the switching terms of types (switching=Q); the coupling loops "
                "solve them")
    for k, pop in enumerate(problem.populations):
        why = newton_available(pop)
        if why:
            return f"population {k}: {why}"
        if getattr(getattr(pop, "hamiltonian", None), "depends_on_m", False):
            # the single-population system adds the congestion blocks to its own reduced system; the joint
            # reduced system below does not carry them
            return (f"population {k}: the joint Newton does not take a Hamiltonian that depends on m "
                    f"({pop.hamiltonian!r}) yet")
    if problem.grid.ndim != 1:
        from .system_split import check_split_coupling
        if any(getattr(p.terminal_cost, "depends_on_m", False) for p in problem.populations):
            return "newton in 2-D/3-D needs terminal costs independent of m_T"
        if problem.coupling is not None:
            try:
                for c in problem.coupling.terms.values():
                    check_split_coupling(c)
            except NotImplementedError:
                return "no newton derivative for a cross coupling in 2-D/3-D"
        try:
            check_split_coupling(problem.total_coupling)
        except NotImplementedError:
            return "no newton derivative for the total_coupling in 2-D/3-D"
    return None


class JointSystem:
    """The joint forward-backward system of K populations (module docstring), with the interface of
    ``DiscreteSystem`` that ``NewtonRun`` drives.  Iterates U, Mu are (Nt+1, K, *per-population layout)."""

    has_direct = False

    def __init__(self, problem):
        why = newton_unavailable(problem)
        if why:
            raise NotImplementedError(f"method='newton' on several populations: {why}; use method='anderson' "
                                      "or 'picard'")
        self.problem = problem
        self.K = problem.K
        self.systems = [make_system(pop) for pop in problem.populations]
        s0 = self.systems[0]
        self.Nt, self.N, self.dt = s0.Nt, s0.N, problem.dt
        self.split = problem.grid.ndim > 1
        self.t = problem.t[1:]
        self.grid_shape = (self.Nt + 1,) + problem.grid.shape

    # ------------------------------------------------------------------ layout
    def parts(self, A) -> list:
        """Contiguous copies of each population's slice of a joint array."""
        return [np.ascontiguousarray(A[:, k]) for k in range(self.K)]

    def _stack(self, parts, out=None):
        out = np.empty((parts[0].shape[0], self.K) + parts[0].shape[1:]) if out is None else out
        for k, p in enumerate(parts):
            out[:, k] = p
        return out

    def densities(self, Mu) -> list:
        """Plain densities m_k (Nt+1, *grid) of a joint iterate."""
        if self.split:
            return [np.ascontiguousarray(Mu[:, k, 0]).reshape(self.grid_shape) for k in range(self.K)]
        return [np.ascontiguousarray(Mu[:, k]).reshape(self.grid_shape) for k in range(self.K)]

    def population_fields(self, U, Mu) -> list:
        """[(u_k, m_k, split states_k)] as plain fields (Nt+1, *grid)."""
        out = []
        for k, (sysm, u, m) in enumerate(zip(self.systems, self.parts(U), self.parts(Mu))):
            if self.split:
                out.append((*sysm.fields(u, m), sysm.states(u)))
            else:
                out.append((u.reshape(self.grid_shape), m.reshape(self.grid_shape), empty_states(sysm.problem)))
        return out

    def lift(self, us, ms, states, newton_tol=1e-12, newton_maxit=50):
        """Joint (U, Mu) from plain per-population fields and the split states of the sweeps that produced them
        (2-D/3-D; the states keep a loop's candidate pair FP-exact)."""
        Us, Ms = [], []
        for k, sysm in enumerate(self.systems):
            N = self.N
            if self.split:
                U, M = sysm.lift(us[k], ms[k], newton_tol, newton_maxit, states=states[k])
            else:
                U = np.asarray(us[k], dtype=float).reshape(self.Nt + 1, N).copy()
                M = np.asarray(ms[k], dtype=float).reshape(self.Nt + 1, N).copy()
            Us.append(U)
            Ms.append(M)
        return self._stack(Us), self._stack(Ms)

    def complete(self, U, Mu):
        for k, (sysm, u, m) in enumerate(zip(self.systems, self.parts(U), self.parts(Mu))):
            sysm.complete(u, m)
            U[:, k] = u
            Mu[:, k] = m

    def mass_error(self, Mu, mass0=None) -> float:
        """The largest over the populations of max_n |mass(m_k^n) - mass(m0_k)|."""
        return max(sysm.mass_error(m, float(self.problem.grid.integrate(pop.m0)))
                   for sysm, m, pop in zip(self.systems, self.parts(Mu), self.problem.populations))

    # ------------------------------------------------------------------ residual and derivatives
    def evaluate(self, U, Mu) -> dict:
        problem = self.problem
        ms = self.densities(Mu)
        evs = []
        for k, (sysm, u, m) in enumerate(zip(self.systems, self.parts(U), self.parts(Mu))):
            evs.append(sysm.evaluate(u, m, f=problem.running_cost(k, ms)))
        shape = (1, self.K) + (1,) * (evs[0]["RH"].ndim - 1)
        return {"RH": self._stack([e["RH"] for e in evs]), "RF": self._stack([e["RF"] for e in evs]),
                "sH": np.array([e["sH"] for e in evs]).reshape(shape),
                "sF": np.array([e["sF"] for e in evs]).reshape(shape),
                "hjb": max(e["hjb"] for e in evs), "fp": max(e["fp"] for e in evs),
                "finite": all(e["finite"] for e in evs), "parts": evs}

    def derivative(self, Mu):
        """({(k, j): dF_k/dm_j}, [dG_k/dm_k(T) or None]) at the joint density: population k's own coupling on
        the diagonal blocks, the cross terms C_kj off it."""
        problem, grid, Nt, N = self.problem, self.problem.grid, self.Nt, self.N
        ms = [m[1:].reshape(Nt, N) for m in self.densities(Mu)]
        blocks = {}
        for k, pop in enumerate(problem.populations):
            if pop.coupling is not None:
                blocks[(k, k)] = coupling_derivative(pop.coupling, grid, self.t, ms[k])
        if problem.coupling is not None:
            for (k, j), c in problem.coupling.terms.items():
                d = coupling_derivative(c, grid, self.t, ms[j])
                if (k, j) in blocks:
                    blocks[(k, j)].add(d)
                else:
                    blocks[(k, j)] = d
        if problem.total_coupling is not None:   # F_tot(x, m_1 + .. + m_K): the same block for every (k, j)
            d = coupling_derivative(problem.total_coupling, grid, self.t, sum(ms))
            for k in range(self.K):
                for j in range(self.K):
                    if (k, j) not in blocks:
                        blocks[(k, j)] = CouplingDerivative(Nt, N)
                    blocks[(k, j)].add(d)
        dG = [terminal_derivative(pop, m.reshape(self.grid_shape)[Nt]) if not self.split else None
              for pop, m in zip(problem.populations, self.densities(Mu))]
        return blocks, dG

    def phi(self, deriv, dms) -> list:
        """[sum_j dt dF_k/dm_j dm_j (+ dG_k dm_k on the last level)] for level vectors dms[j] (Nt, N)."""
        blocks, dG = deriv
        out = [np.zeros((self.Nt, self.N)) for _ in range(self.K)]
        for (k, j), d in blocks.items():
            out[k] += self.dt * d.matvec(dms[j])
        for k, g in enumerate(dG):
            if g is not None:
                out[k][-1] += g @ dms[k][-1]
        return out

    def _zero(self, k, dG):
        return CouplingDerivative(self.Nt, self.N), (dG[k] if not self.split else None)

    def _level0(self, A) -> list:
        """Each population's coupled level vectors (Nt, N) of a joint dm (the k = 0 split level in 2-D/3-D)."""
        if self.split:
            return [np.ascontiguousarray(A[:, k, 0]).reshape(self.Nt, self.N) for k in range(self.K)]
        return [np.ascontiguousarray(A[:, k]) for k in range(self.K)]

    def jvp(self, U, Mu, ev, deriv, du, dm):
        JH, JF = [], []
        src = self.phi(deriv, self._level0(dm))
        for k, (sysm, u, m, dU, dM) in enumerate(zip(self.systems, self.parts(U), self.parts(Mu), self.parts(du),
                                                     self.parts(dm))):
            jh, jf = sysm.jvp(u, m, ev["parts"][k], self._zero(k, [None] * self.K), dU, dM)
            if self.split:
                jh[:, 0] -= src[k].reshape(jh[:, 0].shape)
            else:
                jh -= src[k]
            JH.append(jh)
            JF.append(jf)
        return self._stack(JH), self._stack(JF)

    def reduced(self, U, Mu, ev, deriv) -> "JointReduced":
        return JointReduced(self, U, Mu, ev, deriv)


class JointReduced:
    """The joint reduced system for (dm_1..dm_K) of the module docstring, resumable (``solve(rtol)`` may be
    called again with a smaller rtol).  When the joint coupling is local and, node by node, the K x K matrix
    Phi = dt (dF_k/dm_j) is symmetric positive semi-definite (a monotone symmetric local coupling, e.g. the
    crowds with aversion b <= congestion a), it is symmetrised as for one population: with S = Phi^{1/2} per
    node and y = S dm, (I + S K S) y = S b is SPD with eigenvalues >= 1, solved by conjugate gradients, and
    dm = b - K S y (K = blockdiag(K_k)).  Otherwise GMRES on (I + K Phi) dm = b."""

    def __init__(self, sysm: JointSystem, U, Mu, ev, deriv):
        self.sysm, self.deriv = sysm, deriv
        self.Us, self.Ms = sysm.parts(U), sysm.parts(Mu)
        self.reds = [s.reduced(u, m, ev["parts"][k], sysm._zero(k, [None] * sysm.K))
                     for k, (s, u, m) in enumerate(zip(sysm.systems, self.Us, self.Ms))]
        self.RH = [e["RH"] for e in ev["parts"]]
        self.b = np.stack([r.b0 if sysm.split else r.b for r in self.reds])
        self.iterations = 0
        self.x = None
        self.S = self._symmetric_root()
        self.use_cg = self.S is not None
        if self.use_cg:
            rhs = self._S(self.b)
            self.y = np.zeros_like(rhs)
            self.r = rhs
            self.p = rhs.copy()
            self.bb = _dot(rhs.ravel(), rhs.ravel())
            self.rr = self.bb

    def _symmetric_root(self):
        """S with S S = Phi node by node -- (K, K) when Phi is the same at every node, else (Nt, N, K, K) --
        when every coupling block is diagonal (local), no terminal cost depends on m, and Phi is symmetric
        positive semi-definite at every node; else None."""
        blocks, dG = self.deriv
        if any(g is not None for g in dG) or not all(d.is_local for d in blocks.values()):
            return None
        sysm = self.sysm
        K = sysm.K
        A = np.zeros((sysm.Nt, sysm.N, K, K))
        for (k, j), d in blocks.items():
            A[..., k, j] += sysm.dt * d.diag
        scale = max(float(np.abs(A).max()), 1e-300)
        if np.abs(A - A.swapaxes(-1, -2)).max() > 1e-14 * scale:
            return None
        flat = A.reshape(-1, K, K)
        if np.array_equal(np.broadcast_to(flat[0], flat.shape), flat):
            flat = flat[:1]   # the same matrix at every node (a linear coupling): one K x K root
        lam, V = np.linalg.eigh(flat)
        if lam.min() < -1e-12 * scale:
            return None
        roots = np.einsum("mia,ma,mja->mij", V, np.sqrt(np.maximum(lam, 0.0)), V)
        return roots[0] if roots.shape[0] == 1 else roots.reshape(A.shape)

    def _S(self, X):
        """S X for a joint level vector X (K, Nt, N) (S one K x K matrix, or one per node (Nt, N, K, K))."""
        if self.S.ndim == 2:
            return np.tensordot(self.S, X, axes=(1, 0))
        return np.einsum("nikj,jni->kni", self.S, X)

    def _K(self, k, x):
        r = self.reds[k]
        return r.K0(x) if self.sysm.split else r.K(x)

    def _Kall(self, X):
        return np.stack([self._K(k, X[k]) for k in range(self.sysm.K)])

    def _apply(self, v):
        sysm = self.sysm
        X = v.reshape((sysm.K, sysm.Nt, sysm.N))
        src = sysm.phi(self.deriv, list(X))
        return (X + self._Kall(src)).ravel()

    def solve(self, rtol: float, maxiter: int = 1000):
        """Iterate until the relative Krylov residual is <= rtol; returns (du, dm, iterations so far)."""
        sysm = self.sysm
        if self.use_cg:
            its = 0
            while its < maxiter and self.rr > rtol * rtol * self.bb:
                q = self.p + self._S(self._Kall(self._S(self.p)))
                pq = _dot(self.p.ravel(), q.ravel())
                if not pq > 0.0:  # not SPD here (negative densities in the iterate): stop, the caller checks
                    break
                alpha = self.rr / pq
                self.y += alpha * self.p
                self.r -= alpha * q
                rr = _dot(self.r.ravel(), self.r.ravel())
                self.p = self.r + (rr / self.rr) * self.p
                self.rr = rr
                its += 1
            self.iterations += its
            X = list(self.b - self._Kall(self._S(self.y)))
        else:
            x, its = gmres(self._apply, self.b.ravel(), rtol=rtol, maxiter=maxiter, x0=self.x)
            self.x = x
            self.iterations += its
            X = list(x.reshape((sysm.K, sysm.Nt, sysm.N)))
        return (*self._recover(X), self.iterations)

    def _recover(self, X):
        """(du, dm) in the joint layout from the density update X (K level vectors)."""
        sysm = self.sysm
        src = sysm.phi(self.deriv, X)
        if not sysm.split:
            du = [self.reds[k].P_inv(src[k] - self.RH[k]) for k in range(sysm.K)]
            return sysm._stack(du), sysm._stack(X)
        dmus = []
        for k, s in enumerate(sysm.systems):
            Z = np.zeros((sysm.Nt,) + s.ext_shape[1:])
            Z[:, 0] = src[k].reshape(Z[:, 0].shape)
            dmus.append(self.reds[k].b - s.PT_inv(self.Us[k], s.hessian(self.Us[k], self.Ms[k],
                                                                         s.P_inv(self.Us[k], Z))))
        src = sysm.phi(self.deriv, [d[:, 0].reshape(sysm.Nt, sysm.N) for d in dmus])
        dus = []
        for k, s in enumerate(sysm.systems):
            Z = np.zeros((sysm.Nt,) + s.ext_shape[1:])
            Z[:, 0] = src[k].reshape(Z[:, 0].shape)
            dus.append(s.P_inv(self.Us[k], Z - self.RH[k]))
        return sysm._stack(dus), sysm._stack(dmus)


def joint_newton(problem, us, ms, states, tol=1e-10, max_iter=50, krylov_rtol=1e-3, max_backtracks=30,
                 nonmonotone=5, newton_tol=1e-12, newton_maxit=50, history=None, t_start=None, report=None,
                 callback=None):
    """Newton on the joint system from the per-population fields (us, ms, split states); returns
    (converged, status, [(u_k, m_k, states_k)], history).  Records as ``newton.driver`` (phase 1)."""
    sysm = JointSystem(problem)
    U, Mu = sysm.lift(us, ms, states, newton_tol, newton_maxit)
    run = NewtonRun(problem, U, Mu, tol=tol, max_iter=max_iter, linear_solver="krylov",
                    max_backtracks=max_backtracks, krylov_rtol=krylov_rtol, nonmonotone=nonmonotone, system=sysm)
    t_start = time.perf_counter() if t_start is None else t_start
    history = {k: [] for k in HISTORY_KEYS + NEWTON_KEYS} if history is None else history
    report = Progress(False, tol=tol) if report is None else report
    status, converged = f"not converged: newton max_iter = {max_iter} reached", False
    while True:
        state, rec = run.step()
        rec = record(history, rec, t_start)
        if "exploitability" in history:
            history["exploitability"].append(np.nan)
        n = len(history["residual"])
        if state == "converged":
            report(n, rec, force=True)
            status, converged = "converged", True
            break
        if state == "non-finite":
            status = f"diverged: non-finite residual in newton iteration {run.k}"
            break
        if state == "max-iter":
            status = f"not converged: newton max_iter = {max_iter} reached with residual {rec['residual']:.3e}"
            break
        report(n, rec)
        if state == "line-search":
            status = f"not converged: line search failed in newton iteration {run.k} (residual {rec['residual']:.3e})"
            break
        if callback is not None and callback(n, rec):
            status = f"stopped by callback at iteration {n}"
            break
    return converged, status, run.sysm.population_fields(run.u, run.m), history


def cold_pair(problem, m_init=None, newton_tol=1e-12, newton_maxit=50):
    """The cold start of Newton: m = m_init (default each m0_k frozen in time) and u_k = HJB_k(m) (one joint
    best response), with the split states of those sweeps."""
    from ..fd.hjb import solve_hjb

    M = problem.initial_density(m_init)
    ms = [np.ascontiguousarray(M[:, k]) for k in range(problem.K)]
    sols = [solve_hjb(pop, problem.running_cost(k, ms), problem.terminal_values(k, ms), tol=newton_tol,
                      maxit=newton_maxit, m=ms[k]) for k, pop in enumerate(problem.populations)]
    return [s.u.copy() for s in sols], ms, [s.states.copy() for s in sols]


def solutions(fields, Nt) -> list:
    """HJBSolution of each population's (u, m, states)."""
    return [HJBSolution(u, st, np.zeros(Nt, dtype=np.int64)) for u, _m, st in fields]
