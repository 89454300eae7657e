"""Shared parameter blocks and measurements for the registered cases."""

from __future__ import annotations

import numpy as np

from .base import Param


def grid_params(N=200, Nt=200):
    return (Param("N", N, "cells per axis", positive=True),
            Param("Nt", Nt, "time steps", positive=True))


COUPLING_METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")


def solver_params(tol=1e-10, method="auto", choices=COUPLING_METHODS):
    return (Param("tol", tol, "relative tolerance of the coupling loop", positive=True),
            Param("method", method, "coupling loop", choices=tuple(choices)))


def quadratic_coefficient(grid, u_n, m_n, axis=0, mass_fraction=0.999):
    """Curvature S of u along one axis in the bulk: least-squares fit of u ~ S x^2/2 + s x + c on
    the cells carrying the central ``mass_fraction`` of the (marginal) density, weighted by m."""
    other = tuple(k for k in range(grid.ndim) if k != axis)
    if other:
        # restrict to the line through the density's peak along the other axes
        idx = list(np.unravel_index(np.argmax(m_n), m_n.shape))
        sl = tuple(slice(None) if k == axis else idx[k] for k in range(grid.ndim))
        u_line, m_line = u_n[sl], m_n[sl]
    else:
        u_line, m_line = u_n, m_n
    x = grid.axes[axis]
    cdf = np.cumsum(m_line) / m_line.sum()
    lo_tail = (1 - mass_fraction) / 2
    keep = (cdf >= lo_tail) & (cdf <= 1 - lo_tail)
    w = np.sqrt(m_line[keep])
    A = np.stack([0.5 * x[keep] ** 2, x[keep], np.ones(keep.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(A * w[:, None], u_line[keep] * w, rcond=None)
    return coef[0]
