"""MFG planning (prescribed m(0) = m0 AND m(T) = m1) for the quadratic Hamiltonian.

Hopf-Cole turns the HJB/FP pair into the linear Schroedinger system of ``linear``; the endpoint
potentials are found by Fortet-Sinkhorn iterations in the log domain:

    phi_T = exp(a);  backward sweep -> phi_0;  psi_0 = m0 / phi_0;  forward sweep -> psi_T;
    mismatch = || phi_T psi_T - m1 ||_1;       a <- log m1 - log psi_T

When the coupling depends on m, an outer damped fixed point updates the density that defines the
potential: m <- (1 - theta) m + theta m_new (for the quadratic interaction this is the paper's
update of the guidance nu_t <- (1 - theta) nu_t + theta mean_t).  Sinkhorn potentials are warm
started across outer iterations.

The result has the same fields as a terminal-cost result: u = -sigma^2 log phi, m = phi psi,
alpha = -grad u, plus the terminal mismatch ||m(T) - m1||_1 (per outer iteration in the history) and the
energies of the returned pair (final only, in ``result.planning``): the control energy
E = int_0^T E|alpha|^2 dt (no factor 1/2), the kinetic cost E/2, the running cost int int m (V + F) and
the agent's total cost (``energies``).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..iterate.anderson import Anderson
from ..iterate.monitor import Progress
from ..result import MFGResult, PlanningRecord, gradient, initial_fields
from . import hopf_cole as linear, positive_cn, semigroup
from .energies import agent_costs, control_energy, midpoint_cost  # noqa: F401  (control_energy: public here since the start)
from ..fd.operator import as3, kernel_data

#: time schemes of the Hopf-Cole sweeps and their order in dt; "auto" picks "crank-nicolson" where it applies
TIME_SCHEMES = {"euler": 1, "crank-nicolson": 2, "strang": 2}


#: outer iterations without a new best residual after which the Anderson loop hands over to damped Picard
STALL_ITERATIONS = 12
FALLBACK_DAMPING = 0.5


class PlanningError(ValueError):
    """Planning data that cannot work (bad end densities, dt too large for the potential, underflow)."""


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


def _vpot3(problem, m, kd):
    V = problem.running_cost(m)
    vmin = float(V.min())
    if 1.0 + problem.dt * vmin / problem.sigma ** 2 <= 0.0:
        raise PlanningError(f"dt = {problem.dt:.3g} is too large for the potential (min V + F = {vmin:.3g}): "
                            f"need 1 + dt min(V)/sigma^2 > 0; increase Nt")
    return as3(V, 1, kd.shape3)


def _half_factors(problem, m):
    """Strang half-step potential factors P^n = exp(-dt Vtot^{n+1/2} / (2 sigma^2)), (Nt or 1, *grid)."""
    return np.exp(-0.5 * problem.dt / problem.sigma ** 2 * midpoint_cost(problem, m))


class _SinkhornAnderson:
    """Anderson mixing (depth M) of the Fortet-Sinkhorn update a -> log m1 - log psi_T(a) on the cells
    where m1 > 0.  The least-squares problem for the mixing weights is weighted by m1 (the terminal
    mismatch is sum m1 |e^g - 1| ~ sum m1 |g|), so the far tails, where log-ratios are large but carry
    no mass, do not steer the extrapolation.  The residual g is gauge invariant (a + c gives g)."""

    def __init__(self, depth, weight):
        self.depth = int(depth)
        self.w = np.sqrt(weight / weight.max())
        self.X, self.G = [], []

    def reset(self):
        self.X.clear()
        self.G.clear()

    def step(self, x, g):
        self.X.append(x.copy())
        self.G.append(g.copy())
        if len(self.X) > self.depth + 1:
            self.X.pop(0)
            self.G.pop(0)
        if len(self.X) < 2:
            return x + g
        dX = np.diff(np.asarray(self.X), axis=0)
        dG = np.diff(np.asarray(self.G), axis=0)
        gamma = np.linalg.lstsq((dG * self.w).T, g * self.w, rcond=1e-12)[0]
        return x + g - (dX + dG).T @ gamma


class _Sinkhorn:
    """Fortet-Sinkhorn on the scaled Hopf-Cole sweeps; keeps log phi_T between calls (warm start).

    time_scheme "euler": the core implicit-Euler factors (``linear``), first order in dt.
    time_scheme "strang": phi^n = P^n G P^n phi^{n+1}, psi^{n+1} = P^n G^T P^n psi^n with G = prod_k
    exp(dt Q_k) the exact semigroup of the zero-policy generator (``semigroup``) and P^n the half-step
    potential factor at the step midpoint: second order in dt, positive, and sum phi^n psi^n is the
    same at every n (mass exact)."""

    def __init__(self, problem, kd, time_scheme="euler", anderson_depth=0, substep_factor=1.0):
        self.pb = problem
        self.kd = kd
        self.scheme = time_scheme
        self.anderson_depth = int(anderson_depth)
        if time_scheme == "strang":
            self.G = [semigroup.cached_semigroup(Q, problem.dt) for Q in semigroup.axis_generators(kd)]
        elif time_scheme == "crank-nicolson":
            self.nsub, self.table = positive_cn.factor_table(kd, problem.dt, substep_factor)
        Nt = problem.Nt
        self.phi = np.empty((Nt + 1,) + kd.shape3)
        self.psi = np.empty((Nt + 1,) + kd.shape3)
        self.lphi = np.zeros(Nt + 1)
        self.lpsi = np.zeros(Nt + 1)
        self.log_m0 = _log(as3(problem.m0, 0, kd.shape3))
        self.log_m1 = _log(as3(problem.m1, 0, kd.shape3))
        self.a = np.where(np.isfinite(self.log_m1), 0.0, -np.inf)  # log phi_T
        self.iterations = 0

    def _set_scaled(self, arr, logs, n, logv):
        mx = np.max(logv[np.isfinite(logv)]) if np.any(np.isfinite(logv)) else 0.0
        arr[n] = np.exp(logv - mx)
        logs[n] = mx

    def solve(self, vpot, tol, maxit):
        kd, pb = self.kd, self.pb
        inv_s2 = 1.0 / pb.sigma ** 2
        mismatch = np.inf
        hist = []
        need = np.isfinite(self.log_m1)
        accel = _SinkhornAnderson(self.anderson_depth, as3(pb.m1, 0, kd.shape3)[need]) if self.anderson_depth else None
        best = np.inf
        for it in range(1, maxit + 1):
            self._set_scaled(self.phi, self.lphi, pb.Nt, self.a)
            if self.scheme == "strang":
                self._strang(self.phi, self.lphi, vpot, backward=True)
            elif self.scheme == "crank-nicolson":
                positive_cn.cn_backward_sweep(self.phi, self.lphi, vpot, self.table, self.nsub, kd.periodic)
            else:
                linear.backward_sweep(self.phi, self.lphi, vpot, kd.op, inv_s2)
            log_phi0 = _log(self.phi[0]) + self.lphi[0]
            bad = np.isfinite(self.log_m0) & ~np.isfinite(log_phi0)
            if np.any(bad):
                raise PlanningError("phi(0) underflowed to zero where m0 > 0: the ends are too far apart for this "
                                    "sigma and grid (increase sigma, T or the resolution, or move the densities closer)")
            c = np.where(np.isfinite(self.log_m0), self.log_m0 - log_phi0, -np.inf)
            self._set_scaled(self.psi, self.lpsi, 0, c)
            if self.scheme == "strang":
                self._strang(self.psi, self.lpsi, vpot, backward=False)
            elif self.scheme == "crank-nicolson":
                positive_cn.cn_forward_sweep(self.psi, self.lpsi, vpot, self.table, self.nsub, kd.periodic)
            else:
                linear.forward_sweep(self.psi, self.lpsi, vpot, kd.op, inv_s2)
            log_psiT = _log(self.psi[pb.Nt]) + self.lpsi[pb.Nt]
            mT = np.exp(self.a + log_psiT)
            mT = np.where(np.isfinite(mT), mT, 0.0)
            mismatch = float(np.abs(mT - as3(pb.m1, 0, kd.shape3)).sum() * pb.grid.cell_volume)
            hist.append(mismatch)
            self.iterations += 1
            if mismatch <= tol:
                return it, mismatch, "converged"
            if np.any(need & ~np.isfinite(log_psiT)):
                raise PlanningError("psi(T) underflowed to zero where m1 > 0: the ends are too far apart for this "
                                    "sigma and grid")
            a_plain = np.where(need, self.log_m1 - log_psiT, -np.inf)
            if accel is not None:
                if mismatch > 2.0 * best:  # the extrapolation overshot: restart from the plain update
                    accel.reset()
                best = min(best, mismatch)
                a_plain[need] = accel.step(self.a[need], a_plain[need] - self.a[need])
            self.a = a_plain
            if it >= 50 and mismatch > 0.999 * hist[-50]:
                return it, mismatch, f"stalled: mismatch {mismatch:.3e} not decreasing after {it} iterations"
        return maxit, mismatch, f"max iterations: mismatch {mismatch:.3e} after {maxit} iterations"

    def _strang(self, arr, logs, P, backward):
        """One Strang sweep in place: backward phi^n = P^n G P^n phi^{n+1} (n = Nt-1..0) or forward
        psi^{n+1} = P^n G^T P^n psi^n; each level stored scaled to max 1 with its log scale."""
        gshape = self.pb.grid.shape
        Nt = self.pb.Nt
        static = P.shape[0] == 1
        steps = range(Nt - 1, -1, -1) if backward else range(Nt)
        buf = np.empty(gshape)
        for n in steps:
            src, dst = (n + 1, n) if backward else (n, n + 1)
            Pn = (P[0] if static else P[n]).reshape(gshape)
            np.multiply(arr[src].reshape(gshape), Pn, out=buf)
            y = semigroup.apply_axes(self.G, buf, transpose=not backward)
            y *= Pn
            linear._store_scaled(np.ascontiguousarray(y), arr[dst], logs, dst, logs[src])

    def density(self):
        """m = phi psi on the grid, (Nt+1, *grid): one product per node, one exp per level."""
        pb = self.pb
        with np.errstate(invalid="ignore"):
            scale = np.exp(self.lphi + self.lpsi)
        scale = np.where(np.isfinite(scale), scale, 0.0)
        return (self.phi * self.psi * scale[:, None, None, None]).reshape((pb.Nt + 1,) + pb.grid.shape)

    def log_phi(self):
        """log phi on the grid, (Nt+1, *grid) (-inf where phi = 0)."""
        pb = self.pb
        return (_log(self.phi) + self.lphi[:, None, None, None]).reshape((pb.Nt + 1,) + pb.grid.shape)


def cell_peclet(grid, m, u, sigma, floor: float = 1e-6) -> float:
    """max over axes and space-time cells with m > floor max m of |alpha_k| h_k / sigma^2 (alpha = -grad u):
    log phi = -u / sigma^2 changes by this much from one cell to the next."""
    alpha = gradient(grid, u)
    live = m > floor * np.max(m)
    out = 0.0
    for k, h in enumerate(grid.spacing):
        a = np.abs(alpha[..., k])[live]
        a = a[np.isfinite(a)]
        if a.size:
            out = max(out, float(a.max()) * h / sigma ** 2)
    return out


def resolve_time_scheme(time_scheme, kd):
    """The scheme that runs for the requested one, and a note saying why when "auto" could not take the
    second-order default: "auto" is "crank-nicolson" when the base drift is absent or time-independent
    with b_k depending on x_k only, "euler" otherwise."""
    if time_scheme == "auto":
        why = positive_cn.static_separable_drift(kd)
        if why is None:
            return "crank-nicolson", ""
        return "euler", f"time_scheme auto: first-order euler because {why}"
    if time_scheme not in TIME_SCHEMES:
        raise ValueError(f"unknown time_scheme {time_scheme!r}; choose 'auto' or one of {tuple(TIME_SCHEMES)}")
    return time_scheme, ""


def _warm_start(problem, m_init, potential_init, init):
    """(m_init, potential_init, note) of ``solve_planning``: a result (``init``, or one passed as m_init) gives
    its m and -u(T) / sigma^2, interpolated where its grid or time levels differ."""
    if isinstance(m_init, MFGResult):
        if init is not None:
            raise ValueError("m_init and init are both given: pass the previous result as init= only")
        m_init, init = None, m_init
    elif isinstance(m_init, (str, bytes, os.PathLike)):
        raise TypeError(f"m_init={m_init!r}: a file name; to start from a saved result pass init={m_init!r}")
    elif m_init is not None and init is not None:
        raise ValueError("m_init and init are both given: pass either a density (m_init=) or a previous result "
                         "(init=)")
    if init is None:
        return m_init, potential_init, None
    warm = initial_fields(init, problem, "init")
    if potential_init is None:
        pot = -warm.u[-1] / problem.sigma ** 2
        finite = np.isfinite(pot)
        if finite.any() and not finite.all():   # phi(T) = 0 where the result's m1 vanished: its smallest value
            pot = np.where(finite, pot, pot[finite].min())
        potential_init = pot
    return warm.m, potential_init, warm.note


def solve_planning(problem, tol: float = 1e-10, sinkhorn_tol: float = 1e-11, max_iter: int = 500,
                   max_sinkhorn: int = 20000, damping: float = 1.0, method: str = "anderson", anderson_depth: int = 5,
                   inner_factor: float = 0.01, m_init=None, progress: bool = False,
                   time_scheme: str = "auto", sinkhorn_anderson: int = 5, potential_init=None,
                   init=None, substep_factor: float = 1.0) -> MFGResult:
    """Solve the planning problem (``PlanningProblem``) and return an MFGResult.

    Parameters
    ----------
    tol : outer tolerance: max_t |mean change| (couplings that see m only through its mean), or the
          relative L1 change of m (other couplings).
    sinkhorn_tol : tolerance on the terminal mismatch ||m(T) - m1||_1 of each inner solve.
    damping : theta of the outer update m <- (1 - theta) m + theta m_new (default 1: Anderson's own
             mixing, undamped; the safeguards below halve it when needed).
    method : "anderson" (default: Anderson mixing on the damped update, with the core loop's safeguards:
             restart and halve theta when the residual grows, plain damped step when a mixed density
             would turn negative) or "picard" (the damped update alone).
    inner_factor : inexact inner solves: while the outer loop is far from converged, Sinkhorn stops
             at mismatch max(sinkhorn_tol, inner_factor * residual); convergence requires the outer
             residual <= tol AND a final inner solve to sinkhorn_tol.
    m_init : initial guess of m on all levels (default: (1 - t/T) m0 + (t/T) m1).
    potential_init : initial Sinkhorn potential log phi(T) = -u(T) / sigma^2 on the grid (default 0), e.g.
             a coarser solution's, interpolated (``mfg_pde.model.grid.prolong``); only the start changes.
    init : warm start from a previous result (an ``MFGResult`` or the path of a saved result file): its m is
             m_init and -u(T) / sigma^2 the potential_init (unless those are given), interpolated onto this
             grid and these time levels when they differ (``result.initial_fields``); ``result.solver["init"]``
             says what was used.  A result passed as m_init is taken as init.
    sinkhorn_anderson : depth of Anderson mixing on the Sinkhorn potential (default 5; 0: plain
             Fortet-Sinkhorn).  The accelerations change the iteration counts, not the discrete solution.
    time_scheme : "auto" (default): "crank-nicolson" where it applies, else "euler" (the result's
             ``solver["time_scheme"]`` says which ran and ``solver["time_scheme_note"]`` why).
             "crank-nicolson": the potential split symmetrically at the step midpoint and the
             zero-policy generator advanced by Crank-Nicolson substeps short enough to keep every factor
             non-negative (``positive_cn``): second order in dt, positive and mass-exact for any dt, O(N)
             per substep; the energy is integrated by the trapezoid rule.  "strang": the same splitting
             with the exact per-axis semigroup (``semigroup``), a dense matrix per axis (O(N^2) per step
             and axis: a reference, not a default).  Both need a base drift that is time-independent with
             b_k depending on x_k only (none, or LinearDrift).  "euler": the core implicit-Euler operators
             at zero policy, first order in dt, any base drift (the result satisfies the core scheme's
             residuals at first order).
    substep_factor : crank-nicolson only: substeps s = ceil(factor dt max|Q_ii| / 2) per step and axis (1: the
             fewest that keep every factor non-negative).  The substeps' error grows with the cell Peclet
             number Pe = max |alpha| h / sigma^2 over the mass (the Hopf-Cole fields change by e^Pe from cell
             to cell); ``result.solver["cell_peclet"]`` reports it, with a note when it exceeds 1: refine
             the grid, or take shorter substeps (factor 2-4 brings the error to the exact semigroup's).

    The result's ``planning`` record (``result.PlanningRecord``) holds the energy E of the returned pair
    (``energy_E``, no factor 1/2), the kinetic cost ``kinetic_cost`` = E / 2, the terminal mismatch of the
    last Sinkhorn sweep and the Sinkhorn sweeps of all outer iterations (``sinkhorn_iterations_total``).
    """
    if not (0 < damping <= 1):
        raise ValueError(f"damping = {damping}: must be in (0, 1]")
    if method not in ("picard", "anderson"):
        raise ValueError(f"unknown method {method!r} for planning; choose 'picard' or 'anderson'")
    if not (tol > 0 and sinkhorn_tol > 0):
        raise ValueError("tol and sinkhorn_tol must be > 0")
    if problem.sigma <= 0:
        raise PlanningError("the planning solver needs sigma > 0 (Hopf-Cole)")
    grid, Nt = problem.grid, problem.Nt
    m_init, potential_init, init_note = _warm_start(problem, m_init, potential_init, init)
    kd = kernel_data(problem)
    requested_scheme = time_scheme
    if not (np.isfinite(substep_factor) and substep_factor >= 1.0):
        raise ValueError(f"substep_factor = {substep_factor}: must be >= 1 (1: the fewest substeps that keep the "
                         "Crank-Nicolson factors non-negative; larger: shorter substeps)")
    time_scheme, scheme_note = resolve_time_scheme(time_scheme, kd)
    t_start = time.perf_counter()
    tt = problem.t.reshape((-1,) + (1,) * grid.ndim)
    if m_init is None:
        m = (1 - tt / problem.T) * problem.m0 + (tt / problem.T) * problem.m1
    else:
        m = grid.check_field(m_init, "m_init", (Nt + 1,)).copy()
        # the end levels are the problem's constraints, whatever the guess (an interpolated coarse result's
        # ends differ at O(h^2); the outer update mixes only the interior levels)
        m[0], m[-1] = problem.m0, problem.m1
    mean_only = problem.coupling is None or getattr(problem.coupling, "mean_only", False)
    coupled = problem.coupling is not None and getattr(problem.coupling, "uses_m", True)
    second = TIME_SCHEMES[time_scheme] == 2
    sk = _Sinkhorn(problem, kd, time_scheme, sinkhorn_anderson, substep_factor)
    if potential_init is not None:
        a0 = as3(grid.check_field(potential_init, "potential_init"), 0, kd.shape3)
        fin = np.isfinite(sk.log_m1)
        if not np.all(np.isfinite(a0[fin])):
            raise ValueError("potential_init must be finite where m1 > 0")
        sk.a = np.where(fin, a0, -np.inf)
    report = Progress(progress, tol=tol)
    if scheme_note:
        report.note(scheme_note)
    hist = {k: [] for k in ("residual", "mean_change", "change_m", "terminal_mismatch", "sinkhorn_iterations",
                            "mass_error", "damping", "wall_time")}
    rule = "trapezoid" if second else "left"
    status, converged = "not converged", False
    m_new = m
    accel = Anderson(int(anderson_depth), damping) if method == "anderson" else None
    best = np.inf
    last_residual = np.inf
    # safeguard of the Anderson loop: when no new best residual has come for STALL_ITERATIONS outer iterations
    # (noisy inexact inner solves can make the extrapolation drift), continue from the best iterate with the
    # plain damped update, which contracts wherever Anderson's extrapolation does not
    best_seen, best_m, since_best, fallback = np.inf, None, 0, ""
    tight = not coupled
    for k in range(1, max_iter + 1):
        vpot = as3(_half_factors(problem, m), 1, kd.shape3) if second else _vpot3(problem, m, kd)
        inner_tol = sinkhorn_tol if tight else max(sinkhorn_tol, inner_factor * min(last_residual, 1.0))
        its, mismatch, sk_status = sk.solve(vpot, inner_tol, max_sinkhorn)
        m_new = sk.density()
        change = float(np.abs(m_new[1:] - m[1:]).sum() / np.abs(m[1:]).sum())
        mean_change = float(np.max(np.abs(grid.mean(m_new) - grid.mean(m))))
        residual = mean_change if mean_only else change
        mass = grid.integrate(m_new)
        rec = {"residual": residual, "mean_change": mean_change, "change_m": change, "terminal_mismatch": mismatch,
               "sinkhorn_iterations": its, "mass_error": float(np.max(np.abs(mass - 1.0))),
               "damping": damping, "wall_time": time.perf_counter() - t_start}
        for key, v in rec.items():
            hist[key].append(float(v))
        report(k, {**rec, "newton_max": its}, force=k == 1,
               label=f"{'anderson' if accel is not None else 'picard'}, mismatch {mismatch:.1e}")
        if sk_status != "converged":
            status = f"sinkhorn {sk_status} (outer iteration {k})"
            break
        if (not coupled or residual <= tol) and mismatch <= sinkhorn_tol:
            status, converged = "converged", True
            break
        last_residual = residual
        if residual <= tol:
            tight = True  # the density has settled: finish with a tight Sinkhorn solve
            continue
        if residual < best_seen:
            best_seen, best_m, since_best = residual, m_new, 0
        else:
            since_best += 1
        if accel is not None and since_best >= STALL_ITERATIONS:
            fallback = (f"anderson stalled (no new best residual in {STALL_ITERATIONS} outer iterations, best "
                        f"{best_seen:.2e} at iteration {k - since_best}): damped picard (theta {FALLBACK_DAMPING}) "
                        f"from the best iterate")
            report.note(fallback)
            accel, damping, m, since_best = None, FALLBACK_DAMPING, best_m, 0
            hist["damping"][-1] = damping
            continue
        if accel is None or Nt < 2:  # (Nt = 1: no interior level to mix)
            m = (1 - damping) * m + damping * m_new
        else:
            if residual > 1.5 * best:
                accel.reset()
                accel.theta = max(0.5 * accel.theta, 0.05)
                best = residual
            best = min(best, residual)
            g = m_new[1:-1] - m[1:-1]
            x = accel.step(m[1:-1].reshape(-1), g.reshape(-1)).reshape(g.shape)
            if x.min() < -1e-12 * m_new.max():
                accel.reset()
                x = m[1:-1] + accel.theta * g
            m = m.copy()
            m[1:-1] = x
            m[-1] = m_new[-1]
        hist["damping"][-1] = accel.theta if accel is not None else damping
    else:
        status = f"not converged: max_iter = {max_iter} reached with residual {hist['residual'][-1]:.3e} > tol {tol:.1e}"
    history = {k: np.asarray(v, dtype=float) for k, v in hist.items()}
    history["iteration"] = np.arange(1, len(history["residual"]) + 1, dtype=float)
    u = -problem.sigma ** 2 * sk.log_phi()
    # the energies of the returned pair only (one space-time pass each; per outer iteration they cost as much as
    # a Sinkhorn sweep on large grids)
    costs = agent_costs(problem, m_new, u, rule)
    peclet = cell_peclet(grid, m_new, u, problem.sigma)
    if time_scheme == "crank-nicolson" and peclet > 1.0:
        scheme_note = "; ".join(x for x in (scheme_note, (
            f"cell Peclet number {peclet:.2g} > 1: the control changes the Hopf-Cole fields by e^{peclet:.2g} per "
            "cell, where the substeps' error constant grows; refine the grid or pass substep_factor=2-4")) if x)
    options = {"method": f"planning-sinkhorn+{method}", "time_scheme": time_scheme, "fallback": fallback,
               "time_scheme_requested": requested_scheme, "time_scheme_note": scheme_note,
               "time_order": TIME_SCHEMES[time_scheme], "substep_factor": float(substep_factor),
               "cell_peclet": peclet,
               "substeps": [int(x) for x in sk.nsub] if time_scheme == "crank-nicolson" else [],
               "sinkhorn_anderson": sinkhorn_anderson, "anderson_depth": anderson_depth, "tol": tol, "sinkhorn_tol": sinkhorn_tol, "max_iter": max_iter,
               "max_sinkhorn": max_sinkhorn, "damping": damping}
    if init_note is not None:
        options["init"] = init_note
    result = MFGResult(grid=grid, t=problem.t, u=u, m=m_new, converged=converged, status=status,
                       iterations=len(history["residual"]), history=history, params=problem.describe(),
                       solver=options,
                       planning=PlanningRecord(**costs, terminal_mismatch=float(history["terminal_mismatch"][-1]),
                                               sinkhorn_iterations_total=int(sk.iterations)),
                       problem=problem)
    report.done(result)
    return result
