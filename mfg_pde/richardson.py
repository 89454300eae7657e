"""Richardson extrapolation in h and dt: second-order fields from two first-order solves.

The scheme is first order in h and dt together, so with the fine solve on a grid with twice the
cells per axis and twice the time steps, F_R = 2 F_fine - F_coarse cancels the leading error term.
Fine fields are restricted to the coarse cells by averaging the 2^d fine cells inside each coarse
cell (second-order accurate at the coarse cell centre) and sampled at the even fine time levels.
Mass is conserved exactly (both solves have mass 1); positivity of m may be lost by O(h^2) in the
far tails, where m is tiny.
"""

from __future__ import annotations

import numpy as np

from .model.grid import Grid
from .result import MFGResult


def observed_order(errors, ratio: float = 2.0) -> np.ndarray:
    """Observed orders log(|e_k| / |e_{k+1}|) / log(ratio) of errors at successive refinements by ``ratio``
    (nan where an error is 0)."""
    e = np.abs(np.asarray(errors, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(e[:-1] / e[1:]) / np.log(ratio)
    return np.where(e[1:] > 0, out, np.nan)


def restrict(coarse: Grid, fine: Grid, field: np.ndarray) -> np.ndarray:
    """Average a fine field (..., *fine.shape) over the 2^d fine cells of each coarse cell."""
    if fine.bounds != coarse.bounds or any(nf != 2 * nc for nf, nc in zip(fine.shape, coarse.shape)):
        raise ValueError(f"fine grid {fine.shape} must have twice the cells of the coarse grid {coarse.shape} "
                         "on the same bounds")
    out = np.asarray(field, dtype=float)
    lead = out.ndim - fine.ndim
    for k, nc in enumerate(coarse.shape):
        ax = lead + k
        shape = out.shape[:ax] + (nc, 2) + out.shape[ax + 1:]
        out = out.reshape(shape).mean(axis=ax + 1)
    return out


def extrapolate(coarse: MFGResult, fine: MFGResult) -> MFGResult:
    """Second-order result 2 fine - coarse on the coarse grid and time levels."""
    Nt = len(coarse.t) - 1
    if len(fine.t) - 1 != 2 * Nt or not np.isclose(fine.t[-1], coarse.t[-1]):
        raise ValueError(f"the fine solve needs 2 x {Nt} time steps over the same horizon (got {len(fine.t) - 1})")
    fields = {}
    for name in ("u", "m"):
        f = restrict(coarse.grid, fine.grid, getattr(fine, name)[::2])
        fields[name] = 2.0 * f - getattr(coarse, name)
    out = MFGResult(grid=coarse.grid, t=coarse.t, u=fields["u"], m=fields["m"],
                    converged=bool(coarse.converged and fine.converged),
                    status=f"richardson({coarse.status}; {fine.status})", iterations=coarse.iterations + fine.iterations,
                    history=dict(coarse.history), params=dict(coarse.params),
                    solver={**coarse.solver, "richardson": True, "fine_shape": list(fine.grid.shape)},
                    case=coarse.case)
    return out


def solve_extrapolated(build, N: int, Nt: int, solve=None, **solve_kwargs) -> MFGResult:
    """Solve build(N, Nt) and build(2N, 2Nt) (build returns an MFGProblem) and extrapolate."""
    if solve is None:
        from .iterate.solve import solve
    coarse = solve(build(N, Nt), **solve_kwargs)
    fine = solve(build(2 * N, 2 * Nt), **solve_kwargs)
    return extrapolate(coarse, fine)
