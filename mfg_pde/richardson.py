"""Richardson extrapolation in h and dt: higher-order fields and numbers from two solves.

A quantity computed with a scheme of order p (leading error c h^p, h and dt refined together by the
ratio r) at a coarse and at a refined resolution,

    X_coarse = X + c h^p + ...,    X_fine = X + c (h / r)^p + ...,

gives the extrapolation and an estimate of the fine result's error

    X_R = (r^p X_fine - X_coarse) / (r^p - 1),      |X_fine - X| ~ |X_fine - X_coarse| / (r^p - 1).

For r = 2: p = 1 (the core implicit-Euler scheme, the implicit-Euler planning sweeps) gives
2 X_fine - X_coarse; p = 2 (the Strang planning sweeps) gives (4 X_fine - X_coarse) / 3.

* ``extrapolate_scalar(coarse, fine, p=..., ratio=...)``: numbers or arrays of the same shape (energies,
  moments, errors), any ratio r > 1; returns the value and the error estimate.
* ``extrapolate(coarse, fine)``: two ``MFGResult``s, the fine one on a grid with twice the cells per axis
  and twice the time steps over the same horizon (ratio 2); the fields u and m of the fine result are
  restricted to the coarse cells and sampled at the even fine time levels. Numbers and arrays are passed
  on to ``extrapolate_scalar``.

The order p is taken from the results when not given: ``result.solver["time_scheme"]`` names the
planning solver's time scheme, whose order is ``SCHEME_ORDER[scheme]``; results without a time scheme
come from the first-order implicit-Euler solvers (``mp.solve``, ``solve_planning_newton``, the FP
transport of the diffusion cases), p = 1. A scheme missing from ``SCHEME_ORDER`` is an error that asks
for p explicitly; a new time scheme is registered by adding its order there.

Restriction of the fine fields to the coarse cells (``restriction=``; by default "average" for p < 2 and
"cubic" for p >= 2):

* ``"average"``: the mean of the 2^d fine cells inside each coarse cell. Mass is conserved
  exactly (both solves have mass 1); positivity of m may be lost by O(h^2) in the far tails. The
  extrapolated field approximates the exact field's *cell averages* over the coarse cells to higher
  order than p = 2 (the average of two fine point values differs from the coarse cell average by the
  same h^2 term that the extrapolation removes), and its point values to O(h^2).
* ``"cubic"``: cubic interpolation to the coarse cell centres from the four nearest fine centres
  (weights (-1, 9, 9, -1)/16; one-sided (5, 15, -5, 1)/16 at a non-periodic wall), fourth-order
  accurate: the extrapolated field approximates point values at the coarse centres; mass is conserved
  only up to O(h^4) at the walls. With p = 2 the averaged restriction would leave an O(h^2) error at the
  coarse centres (on the Strang lqg-bridge, N = 100 -> 200: max error of m 1.8e-3 fine, 2.5e-3 averaged
  and extrapolated, 5.7e-5 cubic and extrapolated).

Moments computed on the coarse grid from an extrapolated field keep the O(h^2) of their own quadrature;
extrapolate the moments themselves (``extrapolate_scalar``) when they are the quantity of interest.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from .model.grid import Grid
from .planning.sinkhorn import TIME_SCHEMES
from .result import MFGResult

__all__ = ["FIRST_ORDER_DEFAULT", "SCHEME_ORDER", "Extrapolated", "extrapolate", "extrapolate_scalar",
           "observed_order", "order_of", "restrict", "scheme_order", "solve_extrapolated"]

#: time scheme (``result.solver["time_scheme"]``) -> order p of the combined (h, dt) error when h and dt
#: are refined together: the planning solver's own table (a new scheme registers its order there).
SCHEME_ORDER = TIME_SCHEMES

#: order of results that record no time scheme: the implicit-Euler solvers (mp.solve, solve_planning_newton,
#: fp_transport) are first order in h and dt together
FIRST_ORDER_DEFAULT = 1

RESTRICTIONS = ("average", "cubic")


@dataclass(frozen=True)
class Extrapolated:
    """A Richardson-extrapolated number (or array).

    value : (r^p fine - coarse) / (r^p - 1).
    error : |fine - coarse| / (r^p - 1), the estimated error of the fine result (the extrapolated value is
        more accurate than that by a factor h when the expansion holds).
    p, ratio : the order and the refinement ratio used.
    """

    value: float | np.ndarray
    error: float | np.ndarray
    p: float
    ratio: float


def observed_order(errors, ratio: float = 2.0) -> np.ndarray:
    """Observed orders log(|e_k| / |e_{k+1}|) / log(ratio) of errors at successive refinements by ``ratio``
    (nan where an error is 0)."""
    e = np.abs(np.asarray(errors, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(e[:-1] / e[1:]) / np.log(ratio)
    return np.where(e[1:] > 0, out, np.nan)


def scheme_order(scheme: str) -> int:
    """Order p of a time scheme from ``SCHEME_ORDER``; an unknown scheme is a ValueError asking for p."""
    try:
        return SCHEME_ORDER[scheme]
    except (KeyError, TypeError):
        known = ", ".join(f"{k!r} (p = {v})" for k, v in SCHEME_ORDER.items())
        raise ValueError(f"no order is known for time scheme {scheme!r} (known: {known}); pass the order "
                         "explicitly (p=...) or register the scheme in mfg_pde.planning.sinkhorn.TIME_SCHEMES") from None


def order_of(result: MFGResult) -> int:
    """Order p of the scheme that computed ``result``: ``SCHEME_ORDER[result.solver["time_scheme"]]``, or
    ``FIRST_ORDER_DEFAULT`` (1) when the result records no time scheme (implicit-Euler solvers)."""
    scheme = (result.solver or {}).get("time_scheme")
    return FIRST_ORDER_DEFAULT if scheme is None else scheme_order(scheme)


def _check_order(p) -> float:
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (Real, np.integer, np.floating)) \
            or not np.isfinite(p) or not p > 0:
        raise ValueError(f"p = {p!r}: the order of the scheme's leading error must be a number > 0 "
                         "(p = 1 for implicit Euler, p = 2 for Strang)")
    return float(p)


def _check_ratio(ratio) -> float:
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (Real, np.integer, np.floating)) \
            or not np.isfinite(ratio) or not ratio > 1:
        raise ValueError(f"ratio = {ratio!r}: the refinement ratio h_coarse / h_fine must be a number > 1 "
                         "(2 when the fine solve halves h and dt)")
    return float(ratio)


def extrapolate_scalar(coarse, fine, *, p=None, scheme: str | None = None, ratio: float = 2.0) -> Extrapolated:
    """Richardson extrapolation of numbers or same-shape arrays computed at two resolutions.

    coarse, fine : the quantity at step h and at h / ratio (numbers, or arrays of one shape: elementwise).
    p : order of the leading error; or ``scheme``, a time scheme of ``SCHEME_ORDER`` ("euler" 1,
        "strang" 2).  One of them is required (both: they must agree).
    ratio : refinement ratio r = h_coarse / h_fine > 1.

    Returns ``Extrapolated(value, error, p, ratio)``: value = (r^p fine - coarse) / (r^p - 1), error =
    |fine - coarse| / (r^p - 1) (estimated error of ``fine``); floats for number inputs.
    """
    if isinstance(coarse, MFGResult) or isinstance(fine, MFGResult):
        raise TypeError("extrapolate_scalar takes numbers or arrays; extrapolate(coarse, fine) takes two MFGResults")
    if p is None and scheme is None:
        raise ValueError("extrapolate_scalar needs the order of the scheme: give p=... (1 for implicit Euler, "
                         "2 for Strang) or scheme=... (one of " + ", ".join(map(repr, SCHEME_ORDER)) + ")")
    if scheme is not None:
        ps = scheme_order(scheme)
        if p is not None and _check_order(p) != ps:
            raise ValueError(f"p = {p!r} contradicts scheme {scheme!r} (p = {ps}); give one of them")
        p = ps
    p, r = _check_order(p), _check_ratio(ratio)
    c, f = np.asarray(coarse, dtype=float), np.asarray(fine, dtype=float)
    if c.shape != f.shape:
        raise ValueError(f"coarse has shape {c.shape} and fine {f.shape}: extrapolate values of the same shape "
                         "(fields on refined grids: extrapolate(coarse_result, fine_result))")
    w = r ** p
    value = (w * f - c) / (w - 1.0)
    error = np.abs(f - c) / (w - 1.0)
    if value.ndim == 0:
        value, error = float(value), float(error)
    return Extrapolated(value, error, p, r)


def _cubic_weights(nc: int, periodic: bool):
    """(nc, 4) fine indices and weights that interpolate 2 nc fine cell-centre values to the nc coarse
    centres with cubic (fourth-order) accuracy."""
    i = np.arange(nc)
    idx = np.stack([2 * i - 1, 2 * i, 2 * i + 1, 2 * i + 2], axis=1)
    w = np.tile(np.array([-1.0, 9.0, 9.0, -1.0]) / 16.0, (nc, 1))
    if periodic:
        return idx % (2 * nc), w
    nf = 2 * nc
    idx[0], w[0] = [0, 1, 2, 3], np.array([5.0, 15.0, -5.0, 1.0]) / 16.0
    idx[-1], w[-1] = [nf - 4, nf - 3, nf - 2, nf - 1], np.array([1.0, -5.0, 15.0, 5.0]) / 16.0
    return idx, w


def restrict(coarse: Grid, fine: Grid, field: np.ndarray, how: str = "average") -> np.ndarray:
    """A fine field (..., *fine.shape) on the coarse cells: ``how="average"`` averages the 2^d fine cells of
    each coarse cell; ``how="cubic"`` interpolates to the coarse centres with fourth-order accuracy (see
    the module docstring)."""
    if how not in RESTRICTIONS:
        raise ValueError(f"restriction {how!r}: choose one of {', '.join(map(repr, RESTRICTIONS))}")
    if fine.ndim != coarse.ndim or fine.bounds != coarse.bounds \
            or any(nf != 2 * nc for nf, nc in zip(fine.shape, coarse.shape)):
        raise ValueError(f"fine grid {fine.shape} on {fine.bounds} must have twice the cells of the coarse grid "
                         f"{coarse.shape} on the same bounds {coarse.bounds}")
    out = np.asarray(field, dtype=float)
    lead = out.ndim - fine.ndim
    if lead < 0 or out.shape[lead:] != fine.shape:
        raise ValueError(f"field has shape {out.shape}; the fine grid needs (..., *{fine.shape})")
    for k, nc in enumerate(coarse.shape):
        ax = lead + k
        if how == "average":
            shape = out.shape[:ax] + (nc, 2) + out.shape[ax + 1:]
            out = out.reshape(shape).mean(axis=ax + 1)
        else:
            idx, w = _cubic_weights(nc, coarse.bc_sides[k][0] == "periodic")
            wshape = [1] * out.ndim
            wshape[ax] = nc
            out = sum(np.take(out, idx[:, j], axis=ax) * w[:, j].reshape(wshape) for j in range(4))
    return out


def extrapolate(coarse, fine, p=None, *, ratio: float = 2.0, restriction: str | None = None):
    """Richardson extrapolation of two results (or of two numbers / arrays, see ``extrapolate_scalar``).

    coarse, fine : ``MFGResult``s, the fine one with twice the cells per axis (same bounds) and twice the
        time steps over the same horizon, computed by the same time scheme.
    p : order of the scheme's leading error; by default from the results (``order_of``: the planning
        solver's ``solver["time_scheme"]`` through ``SCHEME_ORDER``, p = 1 without one).
    ratio : 2 for results (the only refinement the field restriction handles); any r > 1 for numbers.
    restriction : "average" (cell averages, mass exact) or "cubic" (point values at the coarse centres);
        None (default): "average" for p < 2, "cubic" for p >= 2.

    Returns, for results, an ``MFGResult`` on the coarse grid and time levels with u and m extrapolated;
    ``solver`` records ``richardson_order``, ``richardson_restriction`` and ``richardson_error`` (the
    estimated max-norm error of the fine u and m, max |R fine - coarse| / (2^p - 1)).  For numbers or arrays
    the ``Extrapolated`` of ``extrapolate_scalar``.
    """
    if not isinstance(coarse, MFGResult) and not isinstance(fine, MFGResult):
        return extrapolate_scalar(coarse, fine, p=p, ratio=ratio)
    if not (isinstance(coarse, MFGResult) and isinstance(fine, MFGResult)):
        raise TypeError(f"extrapolate needs two MFGResults or two numbers/arrays, got {type(coarse).__name__} "
                        f"and {type(fine).__name__}")
    if _check_ratio(ratio) != 2.0:
        raise ValueError(f"ratio = {ratio!r}: results are extrapolated from a fine solve with twice the cells and "
                         "time steps (ratio 2); use extrapolate_scalar for quantities at other ratios")
    if restriction is not None and restriction not in RESTRICTIONS:
        raise ValueError(f"restriction {restriction!r}: choose one of {', '.join(map(repr, RESTRICTIONS))} "
                         "(or None: average for p < 2, cubic for p >= 2)")
    sc, sf = (coarse.solver or {}).get("time_scheme"), (fine.solver or {}).get("time_scheme")
    if sc != sf:
        raise ValueError(f"the coarse result used time scheme {sc!r} and the fine one {sf!r}: extrapolate two "
                         "solves of the same scheme")
    p = order_of(coarse) if p is None else _check_order(p)
    if restriction is None:
        restriction = "average" if p < 2 else "cubic"
    Nt = len(coarse.t) - 1
    if len(fine.t) - 1 != 2 * Nt or not np.isclose(fine.t[-1], coarse.t[-1]) \
            or not np.isclose(fine.t[0], coarse.t[0]):
        raise ValueError(f"the fine solve needs 2 x {Nt} time steps over the same horizon "
                         f"[{coarse.t[0]:g}, {coarse.t[-1]:g}] (got {len(fine.t) - 1} over [{fine.t[0]:g}, {fine.t[-1]:g}])")
    w = 2.0 ** p
    fields, err = {}, {}
    for name in ("u", "m"):
        f = restrict(coarse.grid, fine.grid, getattr(fine, name)[::2], restriction)
        c = getattr(coarse, name)
        fields[name] = (w * f - c) / (w - 1.0)
        err[name] = float(np.max(np.abs(f - c))) / (w - 1.0)
    out = MFGResult(grid=coarse.grid, t=coarse.t, u=fields["u"], m=fields["m"],
                    converged=bool(coarse.converged and fine.converged),
                    status=f"richardson({coarse.status}; {fine.status})", iterations=coarse.iterations + fine.iterations,
                    history=dict(coarse.history), params=dict(coarse.params),
                    solver={**coarse.solver, "richardson": True, "fine_shape": list(fine.grid.shape),
                            "richardson_order": p, "richardson_restriction": restriction,
                            "richardson_error": err},
                    case=coarse.case)
    return out


def solve_extrapolated(build, N: int, Nt: int, solve=None, *, p=None, restriction: str | None = None,
                       **solve_kwargs) -> MFGResult:
    """Solve build(N, Nt) and build(2N, 2Nt) (build returns a problem ``solve`` takes; ``solve`` defaults to
    ``mp.solve``) and extrapolate (``p`` and ``restriction`` as in ``extrapolate``)."""
    if solve is None:
        from .iterate.solve import solve
    coarse = solve(build(N, Nt), **solve_kwargs)
    fine = solve(build(2 * N, 2 * Nt), **solve_kwargs)
    return extrapolate(coarse, fine, p, restriction=restriction)
