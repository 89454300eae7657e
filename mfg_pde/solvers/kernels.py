"""Numba kernels: upwind (Engquist-Osher) implicit operators, line solves, HJB and FP sweeps.

Arrays are handled in a padded 3-D layout ``(n0, n1, n2)`` (trailing axes of size 1 in 1-D/2-D);
a space-time field is ``(Nt+1, n0, n1, n2)``.  Along axis k a 3-D array is viewed as
``(A, n, B)`` (A = product of the sizes before k, B = product after k), so one batched
tridiagonal solver serves every axis: the inner loop runs over the contiguous index B.

Discretisation (Achdou & Capuzzo-Dolcetta 2010, extended by per-axis upwinding of the drift).
With D+u_i = (u_{i+1} - u_i)/h, D-u_i = (u_i - u_{i-1})/h and b = b+ - b- along axis k,
the policy-dependent upwind coefficients are

    Ap_i = min(D+u_i, 0) - b+_i   (<= 0),        Bm_i = max(D-u_i, 0) + b-_i   (>= 0),

and the per-axis operator  (L_k u)_i = -nu (D+ - D-)u_i / h + Ap_i D+u_i + Bm_i D-u_i  has rows

    lower = -nu/h^2 - Bm_i/h,   upper = -nu/h^2 + Ap_i/h,   diag = -(lower + upper).

The factor M_k = I + dt L_k is an M-matrix with unit row sums.  Reflecting walls use mirror
ghosts (D-u_0 = D+u_{n-1} = 0, so lower_0 = upper_{n-1} = 0); periodic axes wrap (cyclic
tridiagonal solve by Sherman-Morrison).

HJB step n (implicit Euler, backward), with c(u) = sum_k [min(D+_k u,0)^2 + max(D-_k u,0)^2]/2:

    M_0 M_1 M_2 (u^n) u^n = u^{n+1} + dt (f^n + c(u^n))

solved by policy iteration (= Newton for the Engquist-Osher Hamiltonian; in 1-D exactly the
implicit scheme  (u^n - u^{n+1})/dt - nu Lap_h u^n + H_EO(D u^n) - b . D u^n = f^n).
In 2-D/3-D the product of factors is the Lie (direction) splitting of I + dt sum_k L_k.

FP step n (forward), the exact transpose:   (M_0 M_1 M_2)(u^n)^T m^{n+1} = m^n,
i.e. solve with M_2^T, then M_1^T, then M_0^T.  Mass is conserved to round-off and m >= 0 for
any dt, and sum_i m^{n+1}_i (P u)_i = sum_i m^n_i u_i holds exactly (discrete duality).
"""

from __future__ import annotations

import numpy as np
from numba import njit

BC_PERIODIC = 1


# ----------------------------------------------------------------------------- coefficients
@njit(cache=True, inline="always")
def _split(shape3, axis):
    if axis == 0:
        return 1, shape3[0], shape3[1] * shape3[2]
    if axis == 1:
        return shape3[0], shape3[1], shape3[2]
    return shape3[0] * shape3[1], shape3[2], 1


@njit(cache=True)
def line_coefficients(g3, drift_k, has_drift, a, nu, dt, h, periodic, lo, di, up):
    """Fill lo, di, up (shape (n, B)) with the rows of M_k = I + dt L_k for outer index a.

    g3 and drift_k are (A, n, B) views of the policy state u and of the drift component b_k.
    lower = dt(-nu/h^2 - Bm/h), upper = dt(-nu/h^2 + Ap/h), diag = 1 - lower - upper.
    """
    n = g3.shape[1]
    B = g3.shape[2]
    inv_h = 1.0 / h
    dif = nu * inv_h * inv_h
    for i in range(n):
        ip = i + 1
        im = i - 1
        wall_hi = False
        wall_lo = False
        if ip == n:
            if periodic:
                ip = 0
            else:
                wall_hi = True
                ip = i
        if im < 0:
            if periodic:
                im = n - 1
            else:
                wall_lo = True
                im = i
        for b in range(B):
            gi = g3[a, i, b]
            if wall_hi:
                upper = 0.0
            else:
                dp = (g3[a, ip, b] - gi) * inv_h
                ap = dp if dp < 0.0 else 0.0
                if has_drift:
                    bk = drift_k[a, i, b]
                    if bk > 0.0:
                        ap -= bk
                upper = dt * (-dif + ap * inv_h)
            if wall_lo:
                lower = 0.0
            else:
                dm = (gi - g3[a, im, b]) * inv_h
                bm = dm if dm > 0.0 else 0.0
                if has_drift:
                    bk = drift_k[a, i, b]
                    if bk < 0.0:
                        bm -= bk
                lower = dt * (-dif - bm * inv_h)
            lo[i, b] = lower
            up[i, b] = upper
            di[i, b] = 1.0 - lower - upper


@njit(cache=True)
def _transpose_lines(lo, di, up, lo_t, up_t, periodic):
    """Rows of M^T: lower^T_i = upper_{i-1}, upper^T_i = lower_{i+1} (wrapping if periodic)."""
    n = lo.shape[0]
    B = lo.shape[1]
    for i in range(n):
        for b in range(B):
            if i > 0:
                lo_t[i, b] = up[i - 1, b]
            elif periodic:
                lo_t[i, b] = up[n - 1, b]
            else:
                lo_t[i, b] = 0.0
            if i < n - 1:
                up_t[i, b] = lo[i + 1, b]
            elif periodic:
                up_t[i, b] = lo[0, b]
            else:
                up_t[i, b] = 0.0


# ----------------------------------------------------------------------------- line solvers
@njit(cache=True)
def _thomas(lo, di, up, rhs, x, cp):
    """Solve tridiagonal systems (one per column b) lo_i x_{i-1} + di_i x_i + up_i x_{i+1} = rhs_i.

    lo[0] and up[n-1] are ignored.  Stable without pivoting for row- or column-diagonally
    dominant matrices (all M_k and M_k^T here)."""
    n = di.shape[0]
    B = di.shape[1]
    for b in range(B):
        den = di[0, b]
        cp[0, b] = up[0, b] / den
        x[0, b] = rhs[0, b] / den
    for i in range(1, n):
        for b in range(B):
            den = di[i, b] - lo[i, b] * cp[i - 1, b]
            cp[i, b] = up[i, b] / den
            x[i, b] = (rhs[i, b] - lo[i, b] * x[i - 1, b]) / den
    for i in range(n - 2, -1, -1):
        for b in range(B):
            x[i, b] -= cp[i, b] * x[i + 1, b]


@njit(cache=True)
def _cyclic(lo, di, up, rhs, x, cp, di2, z, zr):
    """Cyclic tridiagonal solve (corners lo[0] at column n-1, up[n-1] at column 0) by
    Sherman-Morrison on top of two Thomas solves."""
    n = di.shape[0]
    B = di.shape[1]
    for i in range(n):
        for b in range(B):
            di2[i, b] = di[i, b]
            zr[i, b] = 0.0
    for b in range(B):
        gamma = -di[0, b]
        di2[0, b] = di[0, b] - gamma
        di2[n - 1, b] = di[n - 1, b] - up[n - 1, b] * lo[0, b] / gamma
        zr[0, b] = gamma
        zr[n - 1, b] = up[n - 1, b]
    _thomas(lo, di2, up, rhs, x, cp)
    _thomas(lo, di2, up, zr, z, cp)
    for b in range(B):
        gamma = -di[0, b]
        beta = lo[0, b]
        fact = (x[0, b] + beta * x[n - 1, b] / gamma) / (1.0 + z[0, b] + beta * z[n - 1, b] / gamma)
        for i in range(n):
            x[i, b] -= fact * z[i, b]


@njit(cache=True)
def solve_axis(g, drift_k, has_drift, axis, nu, dt, h, periodic, transpose, rhs, out):
    """out = M_k(g)^{-1} rhs (or M_k(g)^{-T} rhs if transpose), all arrays 3-D (n0, n1, n2)."""
    A, n, B = _split(g.shape, axis)
    g3 = g.reshape((A, n, B))
    r3 = rhs.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    lo = np.empty((n, B))
    di = np.empty((n, B))
    up = np.empty((n, B))
    cp = np.empty((n, B))
    if transpose:
        lo_t = np.empty((n, B))
        up_t = np.empty((n, B))
    else:
        lo_t = lo
        up_t = up
    if periodic:
        di2 = np.empty((n, B))
        z = np.empty((n, B))
        zr = np.empty((n, B))
    else:
        di2 = di
        z = di
        zr = di
    for a in range(A):
        line_coefficients(g3, d3, has_drift, a, nu, dt, h, periodic, lo, di, up)
        if transpose:
            _transpose_lines(lo, di, up, lo_t, up_t, periodic)
        if periodic:
            _cyclic(lo_t, di, up_t, r3[a], o3[a], cp, di2, z, zr)
        else:
            _thomas(lo_t, di, up_t, r3[a], o3[a], cp)


@njit(cache=True)
def apply_axis(g, drift_k, has_drift, axis, nu, dt, h, periodic, transpose, x, out):
    """out = M_k(g) x (or M_k(g)^T x): the matrix-vector product used by residuals."""
    A, n, B = _split(g.shape, axis)
    g3 = g.reshape((A, n, B))
    x3 = x.reshape((A, n, B))
    o3 = out.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    lo = np.empty((n, B))
    di = np.empty((n, B))
    up = np.empty((n, B))
    lo_t = np.empty((n, B))
    up_t = np.empty((n, B))
    for a in range(A):
        line_coefficients(g3, d3, has_drift, a, nu, dt, h, periodic, lo, di, up)
        if transpose:
            _transpose_lines(lo, di, up, lo_t, up_t, periodic)
        else:
            lo_t[:, :] = lo
            up_t[:, :] = up
        for i in range(n):
            im = i - 1 if i > 0 else n - 1
            ip = i + 1 if i < n - 1 else 0
            for b in range(B):
                s = di[i, b] * x3[a, i, b]
                if i > 0 or periodic:
                    s += lo_t[i, b] * x3[a, im, b]
                if i < n - 1 or periodic:
                    s += up_t[i, b] * x3[a, ip, b]
                o3[a, i, b] = s


# ----------------------------------------------------------------------------- Hamiltonian cost
@njit(cache=True)
def hamiltonian_cost(g, ndim, h, periodic, out):
    """out = c(g) = sum_k [min(D+_k g, 0)^2 + max(D-_k g, 0)^2] / 2 (Engquist-Osher, mirror walls)."""
    n0, n1, n2 = g.shape
    out[:, :, :] = 0.0
    for axis in range(ndim):
        A, n, B = _split(g.shape, axis)
        g3 = g.reshape((A, n, B))
        o3 = out.reshape((A, n, B))
        inv_h = 1.0 / h[axis]
        per = periodic[axis]
        for a in range(A):
            for i in range(n):
                ip = i + 1
                im = i - 1
                hi_ok = True
                lo_ok = True
                if ip == n:
                    if per:
                        ip = 0
                    else:
                        hi_ok = False
                if im < 0:
                    if per:
                        im = n - 1
                    else:
                        lo_ok = False
                for b in range(B):
                    gi = g3[a, i, b]
                    s = 0.0
                    if hi_ok:
                        dp = (g3[a, ip, b] - gi) * inv_h
                        if dp < 0.0:
                            s += dp * dp
                    if lo_ok:
                        dm = (gi - g3[a, im, b]) * inv_h
                        if dm > 0.0:
                            s += dm * dm
                    o3[a, i, b] += 0.5 * s


# ----------------------------------------------------------------------------- steps and sweeps
@njit(cache=True)
def hjb_step(u_next, f_n, drift_n, has_drift, ndim, nu, dt, h, periodic, g, tol, maxit, rhs, tmp, cost):
    """One backward implicit step: policy iteration for u^n, starting from g (overwritten).

    Solves  M_0 M_1 M_2 (g) g = u^{n+1} + dt (f^n + c(g)).  Returns the iteration count
    (negative if maxit was reached without |change| <= tol * max|g|)."""
    n_flat = g.size
    gf = g.reshape(n_flat)
    for it in range(1, maxit + 1):
        hamiltonian_cost(g, ndim, h, periodic, cost)
        rf = rhs.reshape(n_flat)
        cf = cost.reshape(n_flat)
        uf = u_next.reshape(n_flat)
        ff = f_n.reshape(n_flat)
        for j in range(n_flat):
            rf[j] = uf[j] + dt * (ff[j] + cf[j])
        src = rhs
        dst = tmp
        for k in range(ndim):
            solve_axis(g, drift_n[k], has_drift, k, nu, dt, h[k], periodic[k], False, src, dst)
            src, dst = dst, src
        sf = src.reshape(n_flat)
        delta = 0.0
        scale = 0.0
        for j in range(n_flat):
            d = abs(sf[j] - gf[j])
            if d > delta:
                delta = d
            a = abs(sf[j])
            if a > scale:
                scale = a
            gf[j] = sf[j]
        if delta <= tol * scale or delta == 0.0:
            return it
    return -maxit


@njit(cache=True)
def hjb_sweep(u, f, drift, has_drift, ndim, nu, dt, h, periodic, tol, maxit, guess, use_guess, its):
    """Backward sweep: given u[Nt] (terminal values), fill u[Nt-1], ..., u[0].

    f[n] is the running cost of step n (t_n -> t_{n+1}); drift[n] (or drift[0] if static) the
    drift of step n.  its[n] receives the policy-iteration count of step n."""
    Nt = u.shape[0] - 1
    shape = u.shape[1:]
    g = np.empty(shape)
    rhs = np.empty(shape)
    tmp = np.empty(shape)
    cost = np.empty(shape)
    static = drift.shape[0] == 1
    for n in range(Nt - 1, -1, -1):
        if use_guess:
            g[:, :, :] = guess[n]
        else:
            g[:, :, :] = u[n + 1]
        dn = drift[0] if static else drift[n]
        its[n] = hjb_step(u[n + 1], f[n], dn, has_drift, ndim, nu, dt, h, periodic, g, tol, maxit,
                          rhs, tmp, cost)
        u[n] = g


@njit(cache=True)
def fp_step(m_prev, u_n, drift_n, has_drift, ndim, nu, dt, h, periodic, out, tmp):
    """One forward step: solve (M_0 M_1 M_2)(u^n)^T m^{n+1} = m^n into out."""
    src = m_prev
    # apply M_{ndim-1}^{-T} first, M_0^{-T} last; alternate buffers so the last write lands in out
    bufs = (out, tmp) if ndim % 2 == 1 else (tmp, out)
    for j in range(ndim):
        k = ndim - 1 - j
        dst = bufs[j % 2]
        solve_axis(u_n, drift_n[k], has_drift, k, nu, dt, h[k], periodic[k], True, src, dst)
        src = dst


@njit(cache=True)
def fp_sweep(m, u, drift, has_drift, ndim, nu, dt, h, periodic):
    """Forward sweep: given m[0], fill m[1..Nt] with the transposed HJB operators at u[0..Nt-1]."""
    Nt = m.shape[0] - 1
    tmp = np.empty(m.shape[1:])
    static = drift.shape[0] == 1
    for n in range(Nt):
        dn = drift[0] if static else drift[n]
        fp_step(m[n], u[n], dn, has_drift, ndim, nu, dt, h, periodic, m[n + 1], tmp)


@njit(cache=True)
def hjb_residual(u, f, drift, has_drift, ndim, nu, dt, h, periodic, out_norms):
    """Residual of the discrete HJB at every step:  r^n = P(u^n) u^n - u^{n+1} - dt (f^n + c(u^n)).

    out_norms[n, 0] = max|r^n|, out_norms[n, 1] = max|u^{n+1} + dt (f^n + c(u^n))| (its scale)."""
    Nt = u.shape[0] - 1
    shape = u.shape[1:]
    cost = np.empty(shape)
    a = np.empty(shape)
    b = np.empty(shape)
    static = drift.shape[0] == 1
    for n in range(Nt):
        dn = drift[0] if static else drift[n]
        g = u[n]
        src = g
        # P x = M_0 (M_1 (M_2 x)): apply the last factor first
        bufs = (a, b)
        for j in range(ndim):
            k = ndim - 1 - j
            dst = bufs[j % 2]
            apply_axis(g, dn[k], has_drift, k, nu, dt, h[k], periodic[k], False, src, dst)
            src = dst
        hamiltonian_cost(g, ndim, h, periodic, cost)
        sf = src.reshape(src.size)
        uf = u[n + 1].reshape(src.size)
        ff = f[n].reshape(src.size)
        cf = cost.reshape(src.size)
        rmax = 0.0
        smax = 0.0
        for j in range(src.size):
            rhs = uf[j] + dt * (ff[j] + cf[j])
            r = abs(sf[j] - rhs)
            if r > rmax:
                rmax = r
            if abs(rhs) > smax:
                smax = abs(rhs)
        out_norms[n, 0] = rmax
        out_norms[n, 1] = smax


@njit(cache=True)
def fp_residual(m, u, drift, has_drift, ndim, nu, dt, h, periodic, out_norms):
    """Residual of the discrete FP:  r^n = P(u^n)^T m^{n+1} - m^n;  out_norms[n] = (max|r|, max|m^n|)."""
    Nt = m.shape[0] - 1
    shape = m.shape[1:]
    a = np.empty(shape)
    b = np.empty(shape)
    static = drift.shape[0] == 1
    for n in range(Nt):
        dn = drift[0] if static else drift[n]
        src = m[n + 1]
        # P^T = M_2^T M_1^T M_0^T: apply M_0^T first
        bufs = (a, b)
        for k in range(ndim):
            dst = bufs[k % 2]
            apply_axis(u[n], dn[k], has_drift, k, nu, dt, h[k], periodic[k], True, src, dst)
            src = dst
        sf = src.reshape(src.size)
        mf = m[n].reshape(src.size)
        rmax = 0.0
        smax = 0.0
        for j in range(src.size):
            r = abs(sf[j] - mf[j])
            if r > rmax:
                rmax = r
            if abs(mf[j]) > smax:
                smax = abs(mf[j])
        out_norms[n, 0] = rmax
        out_norms[n, 1] = smax


@njit(cache=True)
def axis_coefficients(g, drift_k, has_drift, axis, nu, dt, h, periodic, lo, di, up):
    """Rows of M_k(g) at every node: lo, di, up shaped like g (for assembly and tests)."""
    A, n, B = _split(g.shape, axis)
    g3 = g.reshape((A, n, B))
    d3 = drift_k.reshape((A, n, B)) if has_drift else g3
    lo3 = lo.reshape((A, n, B))
    di3 = di.reshape((A, n, B))
    up3 = up.reshape((A, n, B))
    for a in range(A):
        line_coefficients(g3, d3, has_drift, a, nu, dt, h, periodic, lo3[a], di3[a], up3[a])
