"""Finite-population agent simulator: N agents by Euler-Maruyama (docs/method.md, sections 'Equations and
conventions' and 'Gaussian-mixture closed form' to 'Diffusion models and interacting particles').

    dX = (b(X, t) + alpha) dt + sigma dW,      dt = T / n_steps,   t_n = n dt

Every step uses the drift at its left end t_n (the Gaussian-mixture drift is singular at t = T,
so the last step is evaluated at t_{n_steps-1} = T - dt < T).  Two drift sources:

* ``simulate_feedback(result, ...)`` -- the grid feedback alpha(t, x) = -grad u of an
  ``MFGResult``, interpolated multilinearly in space over the cell-centred grid and linearly in
  time, plus the problem's base drift b (``LinearDrift``, a grid-tabulated ``Drift``, or none).
  Reflecting walls: the feedback is clamped to the outermost cell centres and agents that leave
  the box are mirrored back; periodic axes wrap.  1-D, 2-D and 3-D.
* ``simulate_gm(proto, target, x0, ...)`` -- the analytic per-agent drift of the product
  ("per-agent PID") coupling with a diagonal Gaussian-mixture target (docs/method.md, section
  'Gaussian-mixture closed form')::

      e  = x - a_t z - c_t,          (z = the agent's start point)
      yhat = posterior mean of y under m1(y) N(e; b_t y, g_t I)   [= m1(y) N(y; mu, 1/K_t), mu = e/b_t]
      alpha(t, x; z) = [yhat + p_t' (x - c_t)] / p_t + c_t'

  in R^d (no box); the formula is evaluated by ``mfg_pde.particles.gm_drift`` (its one implementation).
  The protocol arrays (a, b, g, p, p', c, c') come from a ``GMProtocol`` (see
  ``mfg_pde.oracles.analytic.gm_protocol``) and are interpolated linearly in t at the simulation times.
  Guidance: ``"ia"`` uses the protocol's c as is (a fixed centre nu); ``"mf"`` rebuilds c from
  nu_t = the linear interpolant of the end means (the mean-interpolant theorem, section 3), and
  ``self_consistent=True`` instead iterates nu_t <- (1 - theta) nu_t + theta * (empirical mean path)
  to show that the population mean converges to that line.

Randomness: every agent owns an xoroshiro128+ stream seeded from ``numpy.random.default_rng(seed)``,
normals by a 256-layer ziggurat (numpy's layout).  A run is reproducible for a given seed and
independent of the number of numba threads (statistics are summed over fixed blocks of agents, then
over the blocks in order).

Reports (``AgentRun``): terminal positions, empirical mean / covariance path, cumulative control
energy E(t) = int_0^t mean_agents |alpha|^2 ds (NO factor 1/2; ``E_half`` = E/2 is the cost),
per-label energies, terminal statistics and (d = 1) the Wasserstein-1 distance of the terminal
empirical law to a grid density.

    >>> import mfg_pde as mp
    >>> from mfg_pde import agents
    >>> res = mp.cases.get("lqg").run().result
    >>> run = agents.simulate_feedback(res, N=20000, n_steps=400, seed=1)
    >>> run.mean[-1], res.mean()[-1], run.w1(res.grid, res.m[-1])
"""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..model.grid import BC_PERIODIC, Grid
from ..model.mixtures import as_mixture as mixture
from .gm_drift import gm_agent_alpha, gm_drift, gm_posterior_mean, protocol_tables  # noqa: F401  (re-exported)

__all__ = [
    "AgentRun", "simulate_feedback", "simulate_gm", "sample_density", "sample_gaussian_mixture",
    "guidance_shift", "with_guidance", "mixture_mean", "gm_drift", "w1_to_density", "mixture",
    "agent_normals",
]

BLOCK = 512          # agents per statistics block (fixed: results do not depend on the thread count)
_FULL_COV_MAX_D = 8  # above this dimension the covariance path keeps only the diagonal


# ============================================================================================
# the kernels' arguments, as records
# ============================================================================================
# Module-level named tuples: numba compiles them as arguments and keeps them in its on-disk cache (closures
# would be neither).  They are built by the helpers below with explicit types (float(...), bool(...),
# contiguous float64 / int64 / bool arrays) so that every caller compiles the same signature.

#: The Euler-Maruyama scalars of one run: noise intensity sigma, time step dt, number of steps n_steps, the
#: shift (d,) subtracted from positions before the moments are summed (the start mean: no cancellation in the
#: covariance), and full_cov (sum the full second-moment matrix, else only its diagonal).
Stepping = namedtuple("Stepping", ("sigma", "dt", "n_steps", "shift", "full_cov"))

#: What a kernel writes, per block of BLOCK agents (nblk blocks): S1 (nblk, n_steps+1, d) the sums of the
#: shifted positions, S2 (nblk, n_steps+1, d, d or 1) of their products (lower triangle, or the squares only),
#: EN (nblk, n_steps) of |alpha|^2 at each step, ENL (nblk, n_labels, n_steps) the same per label, and paths
#: (n_steps+1, record, d) the positions of the first ``record`` agents.
Tallies = namedtuple("Tallies", ("S1", "S2", "EN", "ENL", "paths"))

#: The drift of a feedback run: atab (ntab, size, d) the feedback alpha = -grad u at the result's times
#: (time step tab_dt), the tabulated base drift btab (ntb, size, d) with has_btab and its time step btab_dt
#: (a (1, 1, d) dummy when absent), and the linear base drift -kappa (x - centre) (kappa, centre (d,)) with
#: has_lin.
Feedback = namedtuple("Feedback", ("atab", "tab_dt", "btab", "has_btab", "btab_dt", "kappa", "centre", "has_lin"))

#: The box of a feedback run: lo, hi (d,) its bounds, h (d,) the cell widths, ncell (d,) int64 the cells per
#: axis, strides (d,) int64 of the flattened (C-order) cell index, periodic (d,) bool (else reflecting walls).
Box = namedtuple("Box", ("lo", "hi", "h", "ncell", "strides", "periodic"))


def _f64(a):
    return np.ascontiguousarray(a, dtype=float)


def _stepping(sigma, dt, n_steps, shift, full_cov) -> Stepping:
    return Stepping(float(sigma), float(dt), int(n_steps), _f64(shift), bool(full_cov))


# ============================================================================================
# random numbers: per-agent xoroshiro128+ streams, 256-layer ziggurat normals
# ============================================================================================

def _ziggurat_tables():
    """Marsaglia-Tsang ziggurat for N(0, 1), 256 layers on 52-bit integers (the layout of numpy's
    ``random_standard_normal``): layer i has width x_i, equal areas v, x_255 = r."""
    r = 3.6541528853610087963519472518

    def f(x):
        return math.exp(-0.5 * x * x)

    v = r * f(r) + math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))
    m1 = 2.0 ** 52
    ki = np.zeros(256, np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = r
    q = v / f(dn)
    ki[0] = np.uint64((dn / q) * m1)
    wi[0], wi[255] = q / m1, dn / m1
    fi[0], fi[255] = 1.0, f(dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + f(dn)))
        ki[i + 1] = np.uint64((dn / tn) * m1)
        tn = dn
        fi[i] = f(dn)
        wi[i] = dn / m1
    return ki, wi, fi, r


_ZKI, _ZWI, _ZFI, _ZR = _ziggurat_tables()
_ZINVR = 1.0 / _ZR


@njit(cache=True, inline="always")
def _next_u64(st, i):
    s0 = st[i, 0]
    s1 = st[i, 1]
    r = s0 + s1
    s1 ^= s0
    st[i, 0] = ((s0 << np.uint64(24)) | (s0 >> np.uint64(40))) ^ s1 ^ (s1 << np.uint64(16))
    st[i, 1] = (s1 << np.uint64(37)) | (s1 >> np.uint64(27))
    return r


@njit(cache=True, inline="always")
def _uniform(st, i):
    """Uniform on [0, 1) (53 bits)."""
    return float(_next_u64(st, i) >> np.uint64(11)) * 1.1102230246251565e-16


@njit(cache=True)
def _normal_slow(st, i, idx, x, rabs):
    if idx == 0:                                   # the tail beyond r (Marsaglia's method)
        while True:
            xx = -_ZINVR * math.log1p(-_uniform(st, i))
            yy = -math.log1p(-_uniform(st, i))
            if yy + yy > xx * xx:
                return -(_ZR + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else _ZR + xx
    if (_ZFI[idx - 1] - _ZFI[idx]) * _uniform(st, i) + _ZFI[idx] < math.exp(-0.5 * x * x):
        return x
    return np.nan                                  # rejected: draw again


@njit(cache=True, inline="always")
def _normal(st, i):
    """One standard normal from agent i's stream (ziggurat; ~99 % of draws take the fast path)."""
    while True:
        r = _next_u64(st, i)
        idx = np.int64(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = float(rabs) * _ZWI[idx]
        if r & np.uint64(1):
            x = -x
        if rabs < _ZKI[idx]:
            return x
        y = _normal_slow(st, i, idx, x, rabs)
        if not math.isnan(y):
            return y


@njit(cache=True)
def _normals_kernel(st, out):
    """Fill out (N, m) with agent i's next m normals (a test and benchmark helper)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = _normal(st, i)


def _rng_states(rng: np.random.Generator, N: int) -> np.ndarray:
    st = rng.bit_generator.random_raw(size=(N, 2)).astype(np.uint64)
    bad = (st[:, 0] == 0) & (st[:, 1] == 0)
    st[bad, 0] = np.uint64(0x9E3779B97F4A7C15)
    return st


def agent_normals(N: int, m: int, seed=0) -> np.ndarray:
    """(N, m) standard normals from the simulator's per-agent streams (for checking the generator)."""
    out = np.empty((int(N), int(m)))
    _normals_kernel(_rng_states(_as_rng(seed), int(N)), out)
    return out


def _as_rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# ============================================================================================
# statistics: summed per step over a block of agents in local buffers, then stored per block
# ============================================================================================

@njit(cache=True, inline="always")
def _acc_local(xi, shift, s1, s2, full_cov):
    d = xi.shape[0]
    for k in range(d):
        dk = xi[k] - shift[k]
        s1[k] += dk
        if full_cov:
            for l in range(k + 1):
                s2[k, l] += dk * (xi[l] - shift[l])
        else:
            s2[k, 0] += dk * dk


@njit(cache=True, inline="always")
def _flush(S1, S2, blk, n, s1, s2):
    for k in range(s1.shape[0]):
        S1[blk, n, k] = s1[k]
        s1[k] = 0.0
        for l in range(s2.shape[1]):
            S2[blk, n, k, l] = s2[k, l]
            s2[k, l] = 0.0


# ============================================================================================
# kernel 1: grid feedback
# ============================================================================================

@njit(cache=True, inline="always")
def _interp_table(tab, j, wt, i0, i1, w, strides, out, add):
    """out (+)= multilinear-in-space, linear-in-time interpolation of tab (ntab, size, d)."""
    d = out.shape[0]
    if not add:
        for c in range(d):
            out[c] = 0.0
    ncorner = 1 << d
    for corner in range(ncorner):
        wgt = 1.0
        idx = 0
        for k in range(d):
            if (corner >> k) & 1:
                wgt *= w[k]
                idx += i1[k] * strides[k]
            else:
                wgt *= 1.0 - w[k]
                idx += i0[k] * strides[k]
        if wgt == 0.0:
            continue
        if wt == 0.0:
            for c in range(d):
                out[c] += wgt * tab[j, idx, c]
        else:
            for c in range(d):
                out[c] += wgt * ((1.0 - wt) * tab[j, idx, c] + wt * tab[j + 1, idx, c])


@njit(cache=True, parallel=True, error_model="numpy")
def _feedback_kernel(x, labels, st, fb, box, sim, out):
    """Advance the agents x (N, d) in place by sim.n_steps Euler-Maruyama steps of the drift fb (``Feedback``)
    in the box (``Box``: reflecting walls, periodic axes wrap), summing the statistics into out (``Tallies``).
    labels (N,) int64; st (N, 2) uint64: the agents' generator states."""
    atab, tab_dt, btab, has_btab, btab_dt, kappa, centre, has_lin = fb
    lo, hi, h, ncell, strides, periodic = box
    sigma, dt, n_steps, shift, full_cov = sim
    S1, S2, EN, ENL, paths = out
    N, d = x.shape
    nblk = S1.shape[0]
    n_labels = ENL.shape[1]
    sq = sigma * math.sqrt(dt)
    nrec = paths.shape[1]
    nta = atab.shape[0]
    ntb = btab.shape[0]
    for blk in prange(nblk):
        i_lo = blk * BLOCK
        i_hi = min(N, i_lo + BLOCK)
        i0 = np.empty(d, np.int64)
        i1 = np.empty(d, np.int64)
        w = np.empty(d)
        al = np.empty(d)
        bb = np.empty(d)
        s1 = np.zeros(d)
        s2 = np.zeros((d, S2.shape[3]))
        enl = np.zeros(n_labels)
        for i in range(i_lo, i_hi):
            _acc_local(x[i], shift, s1, s2, full_cov)
            if i < nrec:
                for k in range(d):
                    paths[0, i, k] = x[i, k]
        _flush(S1, S2, blk, 0, s1, s2)
        for n in range(n_steps):
            t = n * dt
            # time weights for the feedback table and the tabulated base drift
            ja = 0
            wa = 0.0
            if nta > 1:
                sa = t / tab_dt
                ja = min(int(sa), nta - 2)
                wa = min(max(sa - ja, 0.0), 1.0)
            jb = 0
            wb = 0.0
            if has_btab and ntb > 1:
                sb = t / btab_dt
                jb = min(int(sb), ntb - 2)
                wb = min(max(sb - jb, 0.0), 1.0)
            en = 0.0
            for i in range(i_lo, i_hi):
                for k in range(d):
                    sk = (x[i, k] - lo[k]) / h[k] - 0.5
                    nk = ncell[k]
                    if periodic[k]:
                        sk = sk - math.floor(sk / nk) * nk
                        a0 = int(sk)
                        if a0 >= nk:
                            a0 = nk - 1
                        w[k] = sk - a0
                        i0[k] = a0
                        i1[k] = a0 + 1 if a0 + 1 < nk else 0
                    else:
                        if sk < 0.0:
                            sk = 0.0
                        elif sk > nk - 1.0:
                            sk = nk - 1.0
                        a0 = int(sk)
                        if a0 > nk - 2:
                            a0 = nk - 2
                        w[k] = sk - a0
                        i0[k] = a0
                        i1[k] = a0 + 1
                _interp_table(atab, ja, wa, i0, i1, w, strides, al, False)
                e2 = 0.0
                for k in range(d):
                    e2 += al[k] * al[k]
                    bb[k] = 0.0
                if has_btab:
                    _interp_table(btab, jb, wb, i0, i1, w, strides, bb, True)
                if has_lin:
                    for k in range(d):
                        bb[k] -= kappa[k] * (x[i, k] - centre[k])
                en += e2
                enl[labels[i]] += e2
                for k in range(d):
                    xk = x[i, k] + (al[k] + bb[k]) * dt + sq * _normal(st, i)
                    L = hi[k] - lo[k]
                    if periodic[k]:
                        if xk < lo[k] or xk >= hi[k]:
                            xk = lo[k] + (xk - lo[k]) - math.floor((xk - lo[k]) / L) * L
                    else:
                        if xk < lo[k]:
                            xk = 2.0 * lo[k] - xk
                        if xk > hi[k]:
                            xk = 2.0 * hi[k] - xk
                        if xk < lo[k]:        # a jump longer than the box: clamp
                            xk = lo[k]
                    x[i, k] = xk
                _acc_local(x[i], shift, s1, s2, full_cov)
                if i < nrec:
                    for k in range(d):
                        paths[n + 1, i, k] = x[i, k]
            _flush(S1, S2, blk, n + 1, s1, s2)
            EN[blk, n] = en
            for lab in range(n_labels):
                ENL[blk, lab, n] = enl[lab]
                enl[lab] = 0.0


# ============================================================================================
# kernel 2: analytic Gaussian-mixture drift (product coupling; the drift itself: gm_drift.gm_agent_alpha)
# ============================================================================================

@njit(cache=True, parallel=True, error_model="numpy")
def _gm_kernel(x, z, labels, st, tab, sim, out):
    """Advance the agents x (N, d), started at z, in place by sim.n_steps Euler-Maruyama steps of the drift
    ``gm_agent_alpha`` (tab: the ``GMTables`` record at the step times), summing the statistics into out
    (``Tallies``).  labels (N,) int64; st (N, 2) uint64: the agents' generator states."""
    sigma, dt, n_steps, shift, full_cov = sim
    S1, S2, EN, ENL, paths = out
    N, d = x.shape
    K = tab.logc.shape[1]
    nblk = S1.shape[0]
    n_labels = ENL.shape[1]
    sq = sigma * math.sqrt(dt)
    nrec = paths.shape[1]
    for blk in prange(nblk):
        i_lo = blk * BLOCK
        i_hi = min(N, i_lo + BLOCK)
        lw = np.empty(K)
        e = np.empty(d)
        al = np.empty(d)
        s1 = np.zeros(d)
        s2 = np.zeros((d, S2.shape[3]))
        enl = np.zeros(n_labels)
        for i in range(i_lo, i_hi):
            _acc_local(x[i], shift, s1, s2, full_cov)
            if i < nrec:
                for k in range(d):
                    paths[0, i, k] = x[i, k]
        _flush(S1, S2, blk, 0, s1, s2)
        for n in range(n_steps):
            en = 0.0
            for i in range(i_lo, i_hi):
                gm_agent_alpha(x[i], z[i], n, tab, e, lw, al)
                e2 = 0.0
                for k in range(d):
                    e2 += al[k] * al[k]
                    x[i, k] += al[k] * dt + sq * _normal(st, i)
                en += e2
                enl[labels[i]] += e2
                _acc_local(x[i], shift, s1, s2, full_cov)
                if i < nrec:
                    for k in range(d):
                        paths[n + 1, i, k] = x[i, k]
            _flush(S1, S2, blk, n + 1, s1, s2)
            EN[blk, n] = en
            for lab in range(n_labels):
                ENL[blk, lab, n] = enl[lab]
                enl[lab] = 0.0


# ============================================================================================
# result object
# ============================================================================================

@dataclass
class AgentRun:
    """A finite-population simulation.

    Attributes
    ----------
    t : simulation times, shape (n_steps+1,).
    x0, x : start and terminal positions, shape (N, d).
    mean : empirical mean path, shape (n_steps+1, d).
    cov : empirical covariance path, shape (n_steps+1, d, d) (1/N normalisation; diagonal only when
        d > 8 unless ``full_cov=True``).
    energy_rate : mean over agents of |alpha|^2 at each step's left end, shape (n_steps,).
    E : cumulative control energy E(t_n) = int_0^{t_n} mean |alpha|^2 ds (no 1/2), shape (n_steps+1,).
    labels : per-agent label (e.g. start-mixture component) or None.
    E_by_label : cumulative energy per label (mean over that label's agents), shape (n_labels, n_steps+1).
    label_counts : agents per label.
    paths : recorded trajectories of the first ``record`` agents, shape (n_steps+1, record, d).
    """

    t: np.ndarray
    x0: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    energy_rate: np.ndarray
    E: np.ndarray
    labels: np.ndarray | None = None
    E_by_label: np.ndarray | None = None
    label_counts: np.ndarray | None = None
    paths: np.ndarray | None = None
    sigma: float = float("nan")
    seed: object = None
    kind: str = ""
    #: feedback runs: the base drift the kernel applied ("linear", "tabulated" or "none"; "" for other runs)
    drift: str = ""
    #: guided Gaussian-mixture runs (guidance="mf"): the guidance nu_t used, on proto.t, shape (nt, d)
    nu: np.ndarray | None = field(default=None, repr=False)
    #: self-consistent runs: the closed-form MF guidance line (1 - t/T) mean0 + (t/T) mean(m1), shape (nt, d)
    line: np.ndarray | None = field(default=None, repr=False)
    #: self-consistent runs: max_t |nu_t - line| before each iteration and after the last
    guidance_error: np.ndarray | None = None

    @property
    def extras(self):
        """Deprecated: read-only dict view of ``drift``, ``nu``, ``line``, ``guidance_error`` (those set)."""
        from ..result import legacy_view

        items = {"drift": self.drift or None, "nu": self.nu, "line": self.line, "guidance_error": self.guidance_error}
        return legacy_view({k: v for k, v in items.items() if v is not None}, "AgentRun")

    @property
    def N(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_steps(self) -> int:
        return len(self.t) - 1

    @property
    def T(self) -> float:
        return float(self.t[-1])

    @property
    def dt(self) -> float:
        return float(self.t[1] - self.t[0])

    @property
    def E_half(self) -> np.ndarray:
        """Cumulative control cost int mean |alpha|^2 / 2 (= E / 2)."""
        return 0.5 * self.E

    @property
    def energy(self) -> float:
        """Total control energy E(T) = int_0^T mean |alpha|^2 dt (no 1/2)."""
        return float(self.E[-1])

    @property
    def cost(self) -> float:
        """Total control cost E(T) / 2."""
        return 0.5 * float(self.E[-1])

    def energy_by_label(self) -> dict:
        """{label: E(T) of that sub-population} (labels with no agents are left out)."""
        if self.E_by_label is None:
            return {}
        return {int(k): float(self.E_by_label[k, -1]) for k in range(len(self.label_counts))
                if self.label_counts[k] > 0}

    def terminal_mean(self) -> np.ndarray:
        return self.x.mean(axis=0)

    def terminal_cov(self) -> np.ndarray:
        return np.atleast_2d(np.cov(self.x, rowvar=False, bias=True))

    def mean_stderr(self) -> np.ndarray:
        """Monte-Carlo standard error of the empirical mean path, shape (n_steps+1, d)."""
        var = np.diagonal(self.cov, axis1=1, axis2=2)
        return np.sqrt(np.maximum(var, 0.0) / self.N)

    def w1(self, grid: Grid, density: np.ndarray) -> float:
        """Wasserstein-1 distance between the terminal empirical law and a 1-D grid density."""
        if self.d != 1:
            raise ValueError(f"w1 is for d = 1 (this run has d = {self.d}); compare moments instead")
        return w1_to_density(self.x[:, 0], grid, density)

    def terminal_stats(self, grid: Grid | None = None, density: np.ndarray | None = None) -> dict:
        """Terminal mean, covariance, standard errors and, for d = 1 with a grid density, W1."""
        out = {"mean": self.terminal_mean(), "cov": self.terminal_cov(),
               "mean_stderr": np.sqrt(np.diag(self.terminal_cov()) / self.N)}
        if grid is not None and density is not None:
            g_mean = grid.mean(density)
            g_cov = grid.covariance(density)
            out["density_mean"] = g_mean
            out["density_cov"] = g_cov
            out["mean_error"] = float(np.max(np.abs(out["mean"] - g_mean)))
            out["cov_error"] = float(np.max(np.abs(out["cov"] - g_cov)))
            if self.d == 1:
                out["w1"] = self.w1(grid, density)
        return out

    def summary(self) -> str:
        m = np.array2string(self.terminal_mean(), precision=4)
        return (f"{self.kind} agents: N = {self.N}, d = {self.d}, n_steps = {self.n_steps}, "
                f"terminal mean {m}, E = {self.energy:.5g} (cost E/2 = {self.cost:.5g})")


def _finish(kind, t, x0, x, out, labels, n_labels, shift, full_cov, record, sigma, seed):
    """The ``AgentRun`` from a kernel's ``Tallies`` out (paths kept when record)."""
    S1, S2, EN, ENL = out.S1, out.S2, out.EN, out.ENL
    paths = out.paths if record else None
    N, d = x.shape
    s1 = S1.sum(axis=0) / N                       # (n+1, d), shifted mean
    mean = s1 + shift
    s2 = S2.sum(axis=0) / N
    nT = len(t)
    cov = np.zeros((nT, d, d))
    if full_cov:
        for k in range(d):
            for l in range(k + 1):
                cov[:, k, l] = cov[:, l, k] = s2[:, k, l] - s1[:, k] * s1[:, l]
    else:
        idx = np.arange(d)
        cov[:, idx, idx] = s2[:, :, 0] - s1 ** 2
    dt = t[1] - t[0]
    rate = EN.sum(axis=0) / N
    E = np.concatenate([[0.0], np.cumsum(rate) * dt])
    counts = np.bincount(labels, minlength=n_labels)
    lab_rate = ENL.sum(axis=0) / np.maximum(counts, 1)[:, None]
    E_lab = np.concatenate([np.zeros((n_labels, 1)), np.cumsum(lab_rate, axis=1) * dt], axis=1)
    return AgentRun(t=t, x0=x0, x=x, mean=mean, cov=cov, energy_rate=rate, E=E, labels=None,
                    E_by_label=E_lab, label_counts=counts, paths=paths, sigma=float(sigma), seed=seed,
                    kind=kind)


def _prepare_common(x0, labels, record, n_steps, full_cov):
    x0 = np.ascontiguousarray(np.asarray(x0, dtype=float))
    if x0.ndim == 1:
        x0 = x0[:, None]
    if x0.ndim != 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 has shape {x0.shape}; give (N, d) start positions")
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 has non-finite entries")
    N, d = x0.shape
    if labels is None:
        lab = np.zeros(N, dtype=np.int64)
    else:
        lab = np.asarray(labels).astype(np.int64)
        if lab.shape != (N,) or (N and lab.min() < 0):
            raise ValueError(f"labels must be N = {N} non-negative integers (got shape {lab.shape})")
    n_labels = int(lab.max()) + 1 if N else 1
    n_steps = int(n_steps)
    if n_steps < 1:
        raise ValueError(f"n_steps = {n_steps}: need at least one step")
    record = int(min(max(record, 0), N))
    if full_cov is None:
        full_cov = d <= _FULL_COV_MAX_D
    nblk = (N + BLOCK - 1) // BLOCK
    out = Tallies(np.zeros((nblk, n_steps + 1, d)), np.zeros((nblk, n_steps + 1, d, d if full_cov else 1)),
                  np.zeros((nblk, n_steps)), np.zeros((nblk, n_labels, n_steps)), np.zeros((n_steps + 1, record, d)))
    shift = x0.mean(axis=0)
    return x0, lab, n_labels, n_steps, bool(full_cov), out, shift


# ============================================================================================
# driver 1: grid feedback
# ============================================================================================

def _resolve_drift(result, drift):
    """-> (kappa (d,), centre (d,), has_lin, btab (ntab, size, d), has_btab, btab time step) for the kernel."""
    from ..model.problem import Drift, LinearDrift

    grid = result.grid
    d = grid.ndim
    zero = np.zeros(d)
    dummy = np.zeros((1, 1, d))
    if isinstance(drift, str) and drift == "auto":
        p = result.params or {}
        desc = p.get("drift")
        if isinstance(desc, dict) and desc.get("type") == "linear":
            drift = LinearDrift(desc.get("kappa", 0.0), desc.get("centre", 0.0))
        elif isinstance(desc, dict):
            raise ValueError("the result was solved with a callable drift; pass drift=Drift(...) (it is "
                             "tabulated on the grid) or drift=None")
        elif "kappa" in p and np.any(np.asarray(p["kappa"], dtype=float) != 0):
            drift = LinearDrift(p["kappa"])      # case parameters: b = -kappa x
        else:
            drift = None
    if drift is None:
        return zero, zero, False, dummy, False, 1.0
    if np.isscalar(drift) or isinstance(drift, (list, tuple, np.ndarray)):
        drift = LinearDrift(drift)
    if isinstance(drift, LinearDrift):
        kap = np.broadcast_to(np.asarray(drift.kappa, dtype=float), (d,)).copy()
        cen = np.broadcast_to(np.asarray(drift.centre, dtype=float), (d,)).copy()
        return kap, cen, True, dummy, False, 1.0
    if not isinstance(drift, Drift):
        if not callable(drift):
            raise ValueError("drift must be 'auto', None, a kappa, LinearDrift(kappa), Drift(fn) or b(*coords, t)")
        drift = Drift(drift)
    xs = grid.mesh()
    times = result.t if drift.time_dependent else result.t[:1]
    tab = np.empty((len(times), grid.size, d))
    for j, tj in enumerate(times):
        b = drift(*xs, float(tj))
        if d == 1 and isinstance(b, np.ndarray) and b.shape == grid.shape:
            b = [b]
        if len(b) != d:
            raise ValueError(f"drift returned {len(b)} components; the grid has {d} axes")
        for k in range(d):
            tab[j, :, k] = np.broadcast_to(b[k], grid.shape).ravel()
    if not np.all(np.isfinite(tab)):
        raise ValueError("drift has non-finite values on the grid")
    bdt = float(result.t[1] - result.t[0]) if len(times) > 1 else 1.0
    return zero, zero, False, tab, True, bdt


def simulate_feedback(result, N: int | None = None, *, x0=None, n_steps: int | None = None, seed=0,
                      sigma: float | None = None, drift="auto", labels=None, record: int = 0,
                      full_cov: bool | None = None) -> AgentRun:
    """Simulate N agents driven by the grid feedback alpha = -grad u of an ``MFGResult``.

    Parameters
    ----------
    result : MFGResult (any solver; 1-D, 2-D or 3-D grid).
    N : number of agents, sampled from ``result.m[0]`` (``sample_density``) when x0 is not given.
    x0 : start positions (N, d) (or (N,) in 1-D) instead of sampling.
    n_steps : Euler-Maruyama steps on [0, T] (default: the result's Nt).
    seed : int / SeedSequence / Generator; fixes the start sample and every agent's noise.
    sigma : noise intensity (default ``result.params['sigma']``).
    drift : base drift b: ``"auto"`` (from the result's params: a linear drift or a case's ``kappa``),
        None, a kappa (number or per-axis), ``LinearDrift``, or ``Drift`` / callable b(*coords, t)
        (tabulated on the grid at the result's times and interpolated like alpha).
    labels : optional per-agent integer labels (energy is also reported per label).
    record : keep the full paths of the first ``record`` agents.
    """
    grid = result.grid
    problem = getattr(result, "problem", None)
    if problem is not None and getattr(problem, "geometry", None) is not None and problem.geometry.active:
        from ..fd.operator import check_no_exits

        check_no_exits(problem, "simulate_feedback (agents are reflected at the box's walls only)")
    if grid.has_exits:
        from ..fd.operator import check_no_exits

        check_no_exits(grid, "simulate_feedback (agents are reflected at non-periodic walls; absorption at "
                             "exits is not implemented)")
    d = grid.ndim
    t_res = np.asarray(result.t, dtype=float)
    T = float(t_res[-1])
    if sigma is None:
        sigma = (result.params or {}).get("sigma")
        if sigma is None:
            raise ValueError("the result's params carry no 'sigma'; pass sigma=")
    sigma = float(sigma)
    if n_steps is None:
        n_steps = len(t_res) - 1
    rng = _as_rng(seed)
    if x0 is None:
        if N is None:
            raise ValueError("give N (agents sampled from result.m[0]) or x0")
        x0 = sample_density(grid, result.m[0], int(N), rng)
    x0, lab, n_labels, n_steps, full_cov, out, shift = _prepare_common(x0, labels, record, n_steps, full_cov)
    if x0.shape[1] != d:
        raise ValueError(f"x0 has {x0.shape[1]} coordinates but the grid has {d} axes")
    Nag = x0.shape[0]
    atab = np.ascontiguousarray(np.asarray(result.alpha, dtype=float).reshape(len(t_res), grid.size, d))
    kap, cen, has_lin, btab, has_btab, bdt = _resolve_drift(result, drift)
    lo = np.array([b[0] for b in grid.bounds])
    hi = np.array([b[1] for b in grid.bounds])
    h = np.array(grid.spacing, dtype=float)
    ncell = np.array(grid.shape, dtype=np.int64)
    strides = np.array([int(np.prod(grid.shape[k + 1:])) for k in range(d)], dtype=np.int64)
    periodic = np.array([c == BC_PERIODIC for c in grid.bc_codes], dtype=np.bool_)
    # start inside the box (wrap periodic axes; refuse agents outside reflecting walls)
    x = x0.copy()
    for k in range(d):
        if periodic[k]:
            x[:, k] = lo[k] + np.mod(x[:, k] - lo[k], hi[k] - lo[k])
        elif np.any((x[:, k] < lo[k]) | (x[:, k] > hi[k])):
            raise ValueError(f"x0 has agents outside the box on axis {k} ({lo[k]}, {hi[k]})")
    st = _rng_states(rng, Nag)
    dt = T / n_steps
    tab_dt = float(t_res[1] - t_res[0]) if len(t_res) > 1 else 1.0
    fb = Feedback(atab, float(tab_dt), _f64(btab), bool(has_btab), float(bdt), _f64(kap), _f64(cen), bool(has_lin))
    box = Box(_f64(lo), _f64(hi), _f64(h), ncell, strides, periodic)
    _feedback_kernel(x, lab, st, fb, box, _stepping(sigma, dt, n_steps, shift, full_cov), out)
    t = np.linspace(0.0, T, n_steps + 1)
    run = _finish("feedback", t, x0, x, out, lab, n_labels, shift, full_cov, record, sigma,
                  seed if not isinstance(seed, np.random.Generator) else None)
    run.labels = None if labels is None else lab
    run.drift = ("linear" if has_lin else "tabulated" if has_btab else "none")
    return run


# ============================================================================================
# Gaussian mixtures, guidance shift
# ============================================================================================

def mixture_mean(target) -> np.ndarray:
    """The mean sum_k pi_k mu_k of a diagonal Gaussian mixture in any form ``mixture`` accepts."""
    return mixture(target).mean()


def _beta_mid(beta, t):
    """beta on the interval midpoints of t (so that a piecewise-constant beta with breaks on the grid is
    integrated exactly piece by piece); an array given on t is averaged over each interval."""
    if beta is None:
        raise ValueError("beta is needed to rebuild the guidance shift c_t")
    mid = 0.5 * (t[1:] + t[:-1])
    if callable(beta):
        return np.broadcast_to(np.asarray(beta(mid), dtype=float), mid.shape).astype(float)
    arr = np.asarray(beta, dtype=float)
    if arr.ndim == 1 and arr.shape == t.shape:
        return 0.5 * (arr[1:] + arr[:-1])
    return np.broadcast_to(arr, mid.shape).astype(float)


def _nu_on(nu, t, d):
    t = np.asarray(t, dtype=float)
    if nu is None:
        return np.zeros((len(t), d))
    if callable(nu):
        out = np.asarray(nu(t), dtype=float)
    else:
        out = np.asarray(nu, dtype=float)
    if out.ndim == 0:
        return np.full((len(t), d), float(out))
    if out.ndim == 1:
        if out.shape[0] == len(t) and (d == 1 or out.shape[0] != d):
            return np.repeat(out[:, None], d, axis=1)
        return np.broadcast_to(out, (len(t), d)).copy()
    if out.shape != (len(t), d):
        raise ValueError(f"guidance nu has shape {out.shape}; give a number, (d,), (nt, d) or nu(t)")
    return out


def guidance_shift(proto, beta, nu) -> tuple[np.ndarray, np.ndarray]:
    """c_t and c_t' on proto.t solving c'' = beta_t (c - nu_t), c(0) = c(T) = 0 (docs/method.md, sections
    'Independent agents and the energy identity' and 'Gaussian-mixture closed form').

    Green's function of the protocol's fundamental solutions (p(T) = 0, q(0) = 0, W = p(0) = q(T))::

        c(t)  = [p(t) int_0^t q beta nu ds + q(t) int_t^T p beta nu ds] / W
        c'(t) = [p'(t) int_0^t q beta nu ds + q'(t) int_t^T p beta nu ds] / W

    (trapezoid in q nu, p nu with beta at the interval midpoints: second order, and exact piece by piece
    for a piecewise-constant beta whose breaks lie on proto.t).  ``mfg_pde.oracles.analytic.gm_protocol`` builds
    the same c in closed form; this routine lets the simulator re-guide any protocol.
    beta: number, array on proto.t, or schedule/callable beta(t); nu: number, (d,), (nt, d) on proto.t,
    or callable nu(t)."""
    t = np.asarray(proto.t, dtype=float)
    d = np.asarray(proto.c).reshape(len(t), -1).shape[1]
    bm = _beta_mid(beta, t)[:, None]
    nu_t = _nu_on(nu, t, d)
    p, q, dp, dq = (np.asarray(a, dtype=float)[:, None] for a in (proto.p, proto.q, proto.dp, proto.dq))
    h = np.diff(t)[:, None]
    z = np.zeros((1, d))
    jq = 0.5 * h * bm * (q[1:] * nu_t[1:] + q[:-1] * nu_t[:-1])
    jp = 0.5 * h * bm * (p[1:] * nu_t[1:] + p[:-1] * nu_t[:-1])
    Aq = np.vstack([z, np.cumsum(jq, axis=0)])                     # int_0^t q beta nu
    Bp = np.vstack([np.cumsum(jp[::-1], axis=0)[::-1], z])         # int_t^T p beta nu
    W = float(proto.W)
    c = (p * Aq + q * Bp) / W
    c[0] = 0.0
    c[-1] = 0.0
    return c, (dp * Aq + dq * Bp) / W


def with_guidance(proto, beta, nu):
    """A copy of the protocol with c, c' rebuilt for the guidance nu_t (see ``guidance_shift``)."""
    c, dc = guidance_shift(proto, beta, nu)
    return dataclasses.replace(proto, c=c, dc=dc)


def simulate_gm(proto, target, x0=None, *, N: int | None = None, start=None, labels=None,
                n_steps: int | None = None, seed=0, guidance: str = "ia", beta=None, nu=None,
                mean0=None, self_consistent: bool = False, iterations: int = 10, damping: float = 0.5,
                nu0=0.0, record: int = 0, full_cov: bool | None = None) -> AgentRun:
    """Agents driven by the analytic per-agent Gaussian-mixture drift (product coupling, b = 0).

    Parameters
    ----------
    proto : GMProtocol (``mfg_pde.oracles.analytic.gm_protocol``): t, T, sigma, p, dp, q, dq, W, a, b, g, K, c, dc.
    target : diagonal Gaussian mixture m1: (weights (K,), means (K, d), variances (K, d)).
    x0 : start positions (N, d); or give ``start`` (a mixture) and N to sample them (labels = the
        start component of each agent).
    n_steps : Euler-Maruyama steps (default: len(proto.t) - 1).
    guidance : ``"ia"`` -- use the protocol's c as built (fixed centre);
        ``"nu"`` -- rebuild c for the guidance ``nu`` (number, (d,), (nt, d) or nu(t); needs ``beta``);
        ``"mf"`` -- rebuild c for nu_t = (1 - t/T) mean0 + (t/T) mean(m1), the MF guidance by the
        mean-interpolant theorem (needs ``beta``; mean0 defaults to the start law's mean: the start
        mixture's exact mean when ``start`` is given, else the sample mean of x0).
    self_consistent : with guidance="mf", do not use the closed-form line: start from nu_t = ``nu0``
        and iterate ``iterations`` times nu_t <- (1 - damping) nu_t + damping * empirical mean path
        (same seed each time); ``guidance_error`` records max_t |nu_t - line| per iteration
        and ``nu`` the final guidance on proto.t.
    """
    rng = _as_rng(seed)
    if x0 is None:
        if start is None or N is None:
            raise ValueError("give x0, or start (a Gaussian mixture) and N")
        x0, lab0 = sample_gaussian_mixture(start, int(N), rng)
        if labels is None:
            labels = lab0
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim == 1:
        x0 = x0[:, None]
    d = x0.shape[1]
    tgt = mixture(target, d, name="target")           # raises unless target has d (or 1) columns
    if n_steps is None:
        n_steps = len(proto.t) - 1
    T = float(proto.T)
    times = np.arange(int(n_steps)) * (T / int(n_steps))
    seed_rec = seed if not isinstance(seed, np.random.Generator) else None
    st0 = _rng_states(rng, x0.shape[0])
    tp = np.asarray(proto.t, dtype=float)

    def run_once(pr):
        xx, lab, n_labels, ns, fc, out, shift = _prepare_common(x0, labels, record, n_steps, full_cov)
        tab = protocol_tables(pr, tgt, times, d)
        x = xx.copy()
        _gm_kernel(x, xx, lab, st0.copy(), tab, _stepping(pr.sigma, T / ns, ns, shift, fc), out)
        run = _finish("gm-" + guidance, np.linspace(0.0, T, ns + 1), xx, x, out, lab, n_labels,
                      shift, fc, record, pr.sigma, seed_rec)
        run.labels = None if labels is None else lab
        return run

    if guidance == "ia":
        if self_consistent:
            raise ValueError("self_consistent needs guidance='mf'")
        return run_once(proto)
    if guidance == "nu":
        return run_once(with_guidance(proto, beta, nu))
    if guidance != "mf":
        raise ValueError(f"guidance {guidance!r}: choose 'ia', 'nu' or 'mf'")
    if mean0 is None:
        mean0 = mixture(start, d, name="start").mean() if start is not None else x0.mean(axis=0)
    mean0 = np.broadcast_to(np.asarray(mean0, dtype=float), (d,))
    line = (1.0 - tp / T)[:, None] * mean0[None] + (tp / T)[:, None] * tgt.mean()[None]
    if not self_consistent:
        run = run_once(with_guidance(proto, beta, line))
        run.nu = line
        return run
    nu_k = _nu_on(nu0, tp, d)
    errs = [float(np.max(np.abs(nu_k - line)))]
    run = None
    for _ in range(int(iterations)):
        run = run_once(with_guidance(proto, beta, nu_k))
        emp = np.stack([np.interp(tp, run.t, run.mean[:, k]) for k in range(d)], axis=1)
        nu_k = (1.0 - damping) * nu_k + damping * emp
        errs.append(float(np.max(np.abs(nu_k - line))))
    run.nu = nu_k
    run.line = line
    run.guidance_error = np.array(errs)
    return run


# ============================================================================================
# sampling helpers and W1
# ============================================================================================

def sample_density(grid: Grid, m, N: int, seed=0) -> np.ndarray:
    """N samples (N, d) of a grid density read as piecewise constant on the cells.

    1-D: inverse CDF (piecewise-linear CDF).  d > 1: a cell drawn from the flattened masses, then a
    uniform jitter inside it (the same law)."""
    rng = _as_rng(seed)
    m = grid.check_field(m, "density")
    if np.any(m < 0) or not m.sum() > 0:
        raise ValueError("density must be non-negative with positive mass")
    N = int(N)
    if grid.ndim == 1:
        lo = grid.bounds[0][0]
        h = grid.spacing[0]
        cdf = np.concatenate([[0.0], np.cumsum(m)])
        cdf /= cdf[-1]
        u = rng.random(N)
        i = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, grid.shape[0] - 1)
        mass = cdf[i + 1] - cdf[i]
        frac = np.where(mass > 0, (u - cdf[i]) / np.where(mass > 0, mass, 1.0), 0.5)
        return (lo + (i + np.clip(frac, 0.0, 1.0)) * h)[:, None]
    p = m.ravel() / m.sum()
    cells = rng.choice(p.size, size=N, p=p)
    idx = np.unravel_index(cells, grid.shape)
    out = np.empty((N, grid.ndim))
    for k, ((lo, _hi), h) in enumerate(zip(grid.bounds, grid.spacing)):
        out[:, k] = lo + (idx[k] + rng.random(N)) * h
    return out


def sample_gaussian_mixture(target, N: int, seed=0, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """N samples of a diagonal Gaussian mixture (any form ``mixture`` accepts): (x (N, d), labels (N,) = the
    component drawn); ``DiagonalMixture.sample``."""
    return mixture(target, d).sample(int(N), _as_rng(seed))


def w1_to_density(samples, grid: Grid, density) -> float:
    """Exact W1 = int |F_N - F| dx between an empirical law on the line and a 1-D grid density read as
    piecewise constant on the cells (piecewise-linear CDF F on the box)."""
    if grid.ndim != 1:
        raise ValueError("w1_to_density is for 1-D grids")
    xs = np.sort(np.asarray(samples, dtype=float).ravel())
    N = len(xs)
    m = grid.check_field(density, "density")
    lo, hi = grid.bounds[0]
    edges = np.linspace(lo, hi, grid.shape[0] + 1)
    Fe = np.concatenate([[0.0], np.cumsum(m)])
    Fe /= Fe[-1]
    pts = np.unique(np.concatenate([edges, xs]))
    F = np.interp(pts, edges, Fe)                     # 0 left of the box, 1 right of it
    a, b = pts[:-1], pts[1:]
    Fn = np.searchsorted(xs, a, side="right") / N     # empirical CDF, constant on [a, b)
    d1 = F[:-1] - Fn
    d2 = F[1:] - Fn
    L = b - a
    same = d1 * d2 >= 0
    seg = np.where(same, 0.5 * (np.abs(d1) + np.abs(d2)) * L,
                   (d1 * d1 + d2 * d2) / (2.0 * np.maximum(np.abs(d1 - d2), 1e-300)) * L)
    return float(seg.sum())
