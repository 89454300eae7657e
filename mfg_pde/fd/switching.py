"""HJB and FP sweeps of K types of agents with Poisson switching between the types (``model.switching``).

Type k has its own operator (noise, Hamiltonian, drift: its ``Operator`` record) and running cost f_k; an agent
of type k switches to type j at rate q_kj.  A Hamiltonian that depends on m (congestion) sees the density of all
agents, m = sum_k m_k (``type_operators``).  The continuous equations, k = 1..K:

    -du_k/dt - nu_k Lap u_k + H_k(grad u_k) - b_k . grad u_k - sum_j q_kj (u_j - u_k) = f_k,   u_k(T) = G_k
     dm_k/dt - nu_k Lap m_k - div(m_k (dH_k/dp(grad u_k) - b_k)) = sum_j q_jk m_j - m_k sum_j q_kj,   m_k(0) = m0_k

Step n splits the switching from the motion (Lie splitting, first order in dt like the implicit Euler step
itself).  With E = exp(dt Q) (``model.switching.propagator``: E >= 0, rows summing to 1):

    HJB (backward):  s_{-1,k} = sum_j E_kj u_j^{n+1} + dt f_k^n,  then the split implicit step of type k
                     (``kernels.hjb_step``: M_{i,k}(s_i) s_i = s_{i-1} + dt c_{i,k}(s_i)),  u_k^n = s_{d-1,k}
    FP (forward):    y_k = M_{0,k}^{-T} ... M_{d-1,k}^{-T} (m_k^n [+ dt S_k^n]),   m_j^{n+1} = sum_k E_kj y_k

The FP step is the exact transpose of the linearised HJB step: the motion part of each type is ``kernels.fp_step``
(the transposed factors of its HJB step), and the switching part is E^T after it where the HJB has E before.
So the total mass sum_k int m_k is conserved to round-off (E 1 = 1 and the motion conserves each type's mass),
m_k >= 0 for any dt (E >= 0 and the factors are M-matrices), and the discrete duality of the single-type scheme
holds for the joint pair.  With Q = 0, E = I and the sweeps are the single-type sweeps of every type, bit for bit.

Arrays: u (Nt+1, K, n0, n1, n2), states (Nt, K, ndim-1, n0, n1, n2), f (Nt, K, n0, n1, n2) in the padded 3-D
layout of ``kernels``; ``ops`` a tuple of K Operator records of one numba type (the types share the grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .kernels import START_GUESS, START_PREDICTOR, _workspace, drift_at, fp_step, hjb_step


@njit(cache=True, error_model="numpy", inline="always")
def _mix_next(w, u_next, E, k, dt, f_n):
    """w = sum_j E[k, j] u_next[j] + dt f_n (flat views): the switching part of HJB step n for type k."""
    size = w.size
    wf = w.reshape(size)
    ff = f_n.reshape(size)
    for i in range(size):
        wf[i] = dt * ff[i]
    for j in range(u_next.shape[0]):
        e = E[k, j]
        uj = u_next[j].reshape(size)
        for i in range(size):
            wf[i] += e * uj[i]


@njit(cache=True, error_model="numpy", inline="always")
def _start(g, states_n, own_next, g_now, g_next, start, ndim):
    """Newton's start for u^n of one type (g) and its split states (the modes of ``kernels.hjb_sweep``):
    START_GUESS g = guess^n (states as given); START_PREDICTOR g = guess^n + (u^{n+1} - guess^{n+1}) and the
    states shifted alike; START_COLD g = u^{n+1} and the states likewise."""
    size = g.size
    gf = g.reshape(size)
    un1 = own_next.reshape(size)
    if start == START_GUESS:
        g0 = g_now.reshape(size)
        for i in range(size):
            gf[i] = g0[i]
        return
    if start == START_PREDICTOR:
        g0 = g_now.reshape(size)
        g1 = g_next.reshape(size)
        for i in range(size):
            gf[i] = g0[i] + (un1[i] - g1[i])
        for s in range(ndim - 1):
            sk = states_n[s].reshape(size)
            for i in range(size):
                sk[i] += un1[i] - g1[i]
        return
    for i in range(size):
        gf[i] = un1[i]
    for s in range(ndim - 1):
        sk = states_n[s].reshape(size)
        for i in range(size):
            sk[i] = un1[i]


@njit(cache=True, error_model="numpy")
def hjb_sweep_types(u, states, f, ops, E, tol, maxit, guess, start, its):
    """Backward sweep of the K types (module docstring): given u[Nt], fill u[Nt-1..0] and states; its[n, k] the
    Newton count of type k at step n (negative where the cap was hit).  ``guess``/``start`` as in
    ``kernels.hjb_sweep`` (per type)."""
    Nt = u.shape[0] - 1
    K = u.shape[1]
    shape = u.shape[2:]
    w = np.empty(shape)
    new = np.empty(shape)
    work = _workspace(shape)
    for n in range(Nt - 1, -1, -1):
        for k in range(K):
            op = ops[k]
            _mix_next(w, u[n + 1], E, k, op.dt, f[n, k])
            _start(u[n, k], states[n, k], u[n + 1, k], guess[n, k], guess[n + 1, k], start, op.ndim)
            its[n, k] = hjb_step(w, drift_at(op, n), op, u[n, k], states[n, k], tol, maxit, new, work, n)


@njit(cache=True, error_model="numpy")
def fp_sweep_types(m, u, states, ops, E, S, has_source):
    """Forward sweep of the K types (module docstring): given m[0], fill m[1..Nt].  S (Nt, K, ...) the FP
    sources when has_source (manufactured solutions), else a dummy."""
    Nt = m.shape[0] - 1
    K = m.shape[1]
    shape = m.shape[2:]
    y = np.empty((K,) + shape)
    tmp = np.empty(shape)
    rhs = np.empty(shape)
    work = _workspace(shape)
    size = tmp.size
    rf = rhs.reshape(size)
    for n in range(Nt):
        for k in range(K):
            op = ops[k]
            if has_source:
                mf = m[n, k].reshape(size)
                sf = S[n, k].reshape(size)
                for i in range(size):
                    rf[i] = mf[i] + op.dt * sf[i]
                fp_step(rhs, u[n, k], states[n, k], drift_at(op, n), op, y[k], tmp, work, n)
            else:
                fp_step(m[n, k], u[n, k], states[n, k], drift_at(op, n), op, y[k], tmp, work, n)
        for j in range(K):
            out = m[n + 1, j].reshape(size)
            for i in range(size):
                out[i] = 0.0
            for k in range(K):
                e = E[k, j]
                yk = y[k].reshape(size)
                for i in range(size):
                    out[i] += e * yk[i]


# ----------------------------------------------------------------------------- the problem-level solves
@dataclass
class TypesSolution:
    """The joint HJB solution of K types: u (Nt+1, K, *grid), states (Nt, K, ndim-1, *shape3), newton (Nt, K),
    ops the K Operator records the sweep used (with an m-dependent Hamiltonian, at the densities it saw)."""

    u: np.ndarray
    states: np.ndarray
    newton: np.ndarray
    ops: tuple

    @property
    def sols(self) -> list:
        """One ``hjb.HJBSolution`` per type (copies of its u and states; the op of its sweep)."""
        from .hjb import HJBSolution
        return [HJBSolution(np.ascontiguousarray(self.u[:, k]), np.ascontiguousarray(self.states[:, k]),
                            self.newton[:, k].copy(), self.ops[k]) for k in range(self.u.shape[1])]


def type_data(problem):
    """The ``KernelData`` of every type of a multi-population problem with switching; a NotImplementedError for
    what the joint sweeps do not take (exit sides, the planner's separate FP weights)."""
    from .operator import kernel_data
    kds = [kernel_data(p) for p in problem.populations]
    for k, kd in enumerate(kds):
        if kd.separate_fp:
            raise NotImplementedError(f"population {k}: a Hamiltonian whose FP weights differ from its HJB's "
                                      "(the planner's congestion) is not taken with switching types")
    if not getattr(problem, "_ops_checked", False):
        _check_one_type(_uniform(tuple(kd.op for kd in kds)))
        problem._ops_checked = True
    return kds


def _uniform(ops) -> tuple:
    """The records as one numba type: when some types have the quadratic Hamiltonian (records with hpar None, a
    numba type of their own) and others not, the quadratic ones take a parameter array, so that they run the
    general rows, whose quadratic kind is the same Engquist-Osher formula (``kernels.ham_side``)."""
    if all(op.hpar is None for op in ops) or all(op.hpar is not None for op in ops):
        return ops
    return tuple(op._replace(hpar=np.zeros(1)) if op.hpar is None else op for op in ops)


def _check_one_type(ops) -> None:
    """A NotImplementedError when the Operator records are not of one numba type (the sweeps index them at run
    time, which needs a homogeneous tuple)."""
    import numba
    t0 = numba.typeof(ops[0])
    for k, op in enumerate(ops[1:], start=1):
        if numba.typeof(op) != t0:
            raise NotImplementedError(f"type {k}: its operator record differs in layout from type 0's "
                                      f"({numba.typeof(op)} vs {t0}); give the types the same kind of drift "
                                      "(static or time-dependent) and the same grid geometry")


def type_operators(kds, ms=None) -> tuple:
    """The K Operator records (the records of one numba type, ``type_data``, ``_uniform``); a Hamiltonian that
    depends on m (congestion) is evaluated at the density of all agents, sum_k ms[k], like the
    ``total_coupling``: the types are one kind of agent, and an agent is slowed by the crowd whatever the types
    in it."""
    if ms is None or not any(kd.depends_on_m for kd in kds):
        return _uniform(tuple(kd.op for kd in kds))
    total = sum(ms)
    return _uniform(tuple(kd.op_for(total) if kd.depends_on_m else kd.op for kd in kds))


def solve_hjb_types(problem, fs, uTs, E, guess: TypesSolution | None = None, tol: float = 1e-12, maxit: int = 50,
                    out: np.ndarray | None = None, ms=None, start: int | None = None) -> TypesSolution:
    """The backward sweep of the K types with running costs fs[k] (Nt, *grid), terminal values uTs[k] and the
    switching step E; ``ms`` (one (Nt+1, *grid) density per type) where a Hamiltonian depends on m.  ``guess``
    starts Newton (its states are overwritten); ``out`` (Nt+1, K, *grid) receives u."""
    from .kernels import START_COLD
    kds = type_data(problem)
    shape3 = kds[0].shape3
    Nt, K, grid = problem.Nt, problem.K, problem.grid
    u = np.empty((Nt + 1, K) + grid.shape) if out is None else out
    f = np.empty((Nt, K) + shape3)
    for k in range(K):
        u[Nt, k] = grid.check_field(uTs[k], f"terminal values of type {k}")
        f[:, k] = grid.check_field(fs[k], f"running cost of type {k}", (Nt,)).reshape((Nt,) + shape3)
    ndim = kds[0].ndim
    if guess is not None:
        states, g = guess.states, guess.u.reshape((Nt + 1, K) + shape3)
    else:
        states, g = np.empty((Nt, K, max(ndim - 1, 0)) + shape3), u.reshape((Nt + 1, K) + shape3)
    if start is None:
        start = START_COLD if guess is None else START_PREDICTOR
    ops = type_operators(kds, ms)
    its = np.zeros((Nt, K), dtype=np.int64)
    hjb_sweep_types(u.reshape((Nt + 1, K) + shape3), states, f, ops, np.ascontiguousarray(E, dtype=float), tol,
                    maxit, g, start, its)
    return TypesSolution(u, states, its, ops)


def solve_fp_types(problem, sol: TypesSolution, E, out: np.ndarray | None = None) -> np.ndarray:
    """The joint density (Nt+1, K, *grid) from the m0_k, transported by the feedbacks of ``sol`` and switched
    by E (with the populations' FP sources when they have them)."""
    from . import warm
    Nt, K, grid = problem.Nt, problem.K, problem.grid
    shape3 = sol.states.shape[3:]
    m = np.empty((Nt + 1, K) + grid.shape) if out is None else out
    for k in range(K):
        m[0, k] = problem.m0_of(k)
    S, has = _sources(problem, shape3)
    warm.wait()
    fp_sweep_types(m.reshape((Nt + 1, K) + shape3), sol.u.reshape((Nt + 1, K) + shape3), sol.states, sol.ops,
                   np.ascontiguousarray(E, dtype=float), S, bool(has))
    return m


def _sources(problem, shape3):
    """(S (Nt, K, *shape3), True) when any type has an FP source (the others 0), else a dummy and False."""
    Nt, K = problem.Nt, problem.K
    parts = [p.fp_source_steps() if hasattr(p, "fp_source_steps") else None for p in problem.populations]
    if all(s is None for s in parts):
        return np.zeros((1, 1, 1, 1, 1)), False
    S = np.zeros((Nt, K) + shape3)
    for k, s in enumerate(parts):
        if s is not None:
            S[:, k] = np.asarray(s, dtype=float).reshape((Nt,) + shape3)
    return S, True


def type_residuals(problem, sol: TypesSolution, fs, m: np.ndarray, E, uTs=None):
    """(hjb, fp): the relative residuals of the joint discrete equations (module docstring) for the pair
    (sol, m) with running costs fs, as ``split_residuals.relative_residuals`` defines them per type:

        HJB substeps of type k with  s_{-1,k} = sum_j E_kj u_j^{n+1} + dt f_k^n
        FP:  M_{d-1,k}^T ... M_{0,k}^T y_k^{n+1} - (m_k^n [+ dt S_k^n]),   y^{n+1} = E^{-T} m^{n+1} (per node)

    (the single-type residual kernel with the running cost f_k + (sum_j E_kj u_j^{n+1} - u_k^{n+1}) / dt and
    the unswitched densities y_k)."""
    from .kernels import pair_residual
    from .operator import as3
    from .split_residuals import _ratio
    kds = type_data(problem)
    Nt, dt, grid = problem.Nt, problem.dt, problem.grid
    shape3 = kds[0].shape3
    E = np.asarray(E, dtype=float)
    u = sol.u
    mixed = np.einsum("kj,nj...->nk...", E, u[1:])
    y = np.empty_like(m)
    y[0] = m[0]
    y[1:] = np.einsum("kj,nj...->nk...", np.linalg.inv(E.T), m[1:])
    S, has = _sources(problem, shape3)
    ops = type_operators(kds, [np.ascontiguousarray(m[:, k]) for k in range(problem.K)])
    hjb_num = hjb_den = fp_num = fp_den = 0.0
    hjb_term = 0.0
    for k, kd in enumerate(kds):
        uk = np.ascontiguousarray(u[:, k])
        fk = np.asarray(fs[k], dtype=float) + (mixed[:, k] - u[1:, k]) / dt
        mk = np.ascontiguousarray(m[:, k])
        z = mk.copy()
        if has:
            z[:Nt] += dt * S[:, k].reshape((Nt,) + grid.shape)
        norms = np.empty((Nt, 4))
        pair_residual(as3(uk, 1, shape3), np.ascontiguousarray(sol.states[:, k]), as3(fk, 1, shape3),
                      as3(np.ascontiguousarray(y[:, k]), 1, shape3), as3(z, 1, shape3), ops[k], norms)
        hjb_num, hjb_den = max(hjb_num, norms[:, 0].max()), max(hjb_den, norms[:, 1].max())
        fp_num, fp_den = max(fp_num, norms[:, 2].max()), max(fp_den, norms[:, 3].max())
        if uTs is not None:
            uT = np.asarray(uTs[k], dtype=float)
            hjb_term = max(hjb_term, _ratio(np.abs(uk[Nt] - uT).max(), np.abs(uT).max()))
    return max(_ratio(hjb_num, hjb_den), hjb_term), _ratio(fp_num, fp_den)


def types_gap(problem, sol: TypesSolution, fs, uTs, E, ms, tol: float = 1e-12, maxit: int = 50) -> float:
    """Exploitability of the joint pair: sum_k int m0_k (w_k^0 - v_k^0), with w the value of the policy of sol (a
    linear backward sweep of the types: the HJB sweep started AT the policy with one Newton iteration per
    substep, ``kernels.START_GUESS``) and v the best response to the frozen densities ms, both with the running
    costs fs and terminal values uTs and switching E.  >= 0 up to round-off, 0 at an equilibrium."""
    from .kernels import START_GUESS
    vol = float(problem.grid.cell_volume)
    best = solve_hjb_types(problem, fs, uTs, E, tol=tol, maxit=maxit, ms=ms)
    pol = TypesSolution(np.array(sol.u, copy=True), np.array(sol.states, copy=True), sol.newton, sol.ops)
    w = solve_hjb_types(problem, fs, uTs, E, guess=pol, tol=0.0, maxit=1, ms=ms, start=START_GUESS)
    m0 = np.stack([problem.m0_of(k) for k in range(problem.K)])
    return vol * float(np.sum(m0 * (w.u[0] - best.u[0])))
