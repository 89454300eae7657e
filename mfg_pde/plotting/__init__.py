"""Figures of :class:`~mfg_pde.result.MFGResult` objects: panels, the quick-look dashboard, movies.

    from mfg_pde.plotting import plot_result, Style
    fig = plot_result(result, "run.png", dpi=200, cmap="magma", scale="sqrt")

Panels (each takes a result and ``ax=None``, draws on ax -- or on a new figure -- and returns it):
:func:`density`, :func:`snapshots`, :func:`spacetime`, :func:`control`, :func:`mean_path`,
:func:`variance_path`, :func:`outflow`, :func:`residuals`; :func:`subplots` makes a figure to compose them on.
:func:`plot_result` is the dashboard built from them; :func:`movie` writes an animated GIF of the density over
time.  All take ``style=`` (a :class:`Style`: figure size, dpi, font size, colour map, colour scale, units) or
its fields as keywords.

matplotlib is imported only when a figure is made, so ``import mfg_pde`` stays fast and never selects a
backend.  Figures are built with the object-oriented API (``matplotlib.figure.Figure`` + the Agg canvas): they
render and save without a display and without touching the backend of an interactive session.
"""

from __future__ import annotations

from .dashboard import describe, natural_figsize, plot_result
from .movie import movie
from .panels import (HISTORY_KEYS, closed_form_array, control, density, mean_path, outflow, residuals, snapshots,
                     spacetime, subplots, variance_path)
from .style import SCALES, Style, StyleError, parse_figsize

__all__ = ["SCALES", "Style", "StyleError", "control", "density", "describe", "mean_path", "movie", "natural_figsize",
           "outflow", "parse_figsize", "plot_result", "residuals", "snapshots", "spacetime", "subplots",
           "variance_path"]

_HISTORY_KEYS = HISTORY_KEYS


def _oracle_array(oracle_mean, t, ndim: int):
    """A closed-form mean path as an array (Nt+1, ndim) (see ``panels.closed_form_array``); used by the CLI."""
    return closed_form_array(oracle_mean, t, ndim, "oracle_mean")
