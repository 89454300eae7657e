"""The parameter blocks several registered cases share: the grid (N, Nt) and the coupling loop (tol, method)."""

from __future__ import annotations

from .base import Param


def grid_params(N=200, Nt=200):
    return (Param("N", N, "cells per axis", positive=True),
            Param("Nt", Nt, "time steps", positive=True))


COUPLING_METHODS = ("picard", "fictitious-play", "anderson", "newton", "auto")


def solver_params(tol=1e-10, method="auto", choices=COUPLING_METHODS):
    return (Param("tol", tol, "relative tolerance of the coupling loop", positive=True),
            Param("method", method, "coupling loop", choices=tuple(choices)))
