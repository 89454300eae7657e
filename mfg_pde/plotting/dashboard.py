"""The quick-look dashboard of a result (:func:`plot_result`), built from the panels of ``panels.py``.

Rows (top to bottom):

* 1-D: density over (t, x) | value over (t, x) | density snapshots (lines)
* 2-D/3-D: a row of density snapshots over (x, y) (3-D: integrated over z), sized from the domain's aspect
  ratio; then the control field over the density | the x-marginal of m over (t, x) | u over (t, x)
* mean path | variance | convergence history (when there is one) | evacuated fraction (exits)

The title names the case (or the problem's name) with its key parameters, and the status.
"""

from __future__ import annotations

import logging

import numpy as np

from . import panels as P
from .style import Style

__all__ = ["describe", "plot_result"]

_LOG = logging.getLogger("mfg_pde")

#: case parameters that name output files, not the problem (left out of titles)
_OUTPUT_PARAMS = {"figure", "table", "csv", "h5", "out", "output", "movie", "plot"}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _coupling_text(spec) -> str | None:
    if not isinstance(spec, dict):
        return None
    kind = spec.get("type")
    if kind == "sum" and isinstance(spec.get("parts"), list):
        parts = [_coupling_text(p) for p in spec["parts"]]
        return " + ".join(p for p in parts if p)
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.items()
                     if k != "type" and isinstance(v, (int, float)) and not isinstance(v, bool))
    return f"{kind}({args})" if args else (str(kind) if kind else None)


def describe(result, max_items: int = 7) -> tuple:
    """(name, key parameters) of a result for a title: the case's name (or the problem's), and its scalar
    parameters (a case's) or T, sigma and the coupling (a problem's description in ``result.params``).
    Output file names, empty values and long strings are left out."""
    params = getattr(result, "params", None) or {}
    problem = getattr(result, "problem", None)
    name = getattr(result, "case", None) or params.get("name") or getattr(problem, "name", None)
    items = []
    if isinstance(params.get("grid"), dict) and "T" in params:      # a problem's describe()
        for key in ("T", "sigma"):
            if isinstance(params.get(key), (int, float)):
                items.append(f"{key}={_fmt(params[key])}")
        coupling = _coupling_text(params.get("coupling"))
        if coupling:
            items.append(coupling)
    else:
        for key, v in params.items():
            if key in _OUTPUT_PARAMS or key in ("name", "units") or v is None:
                continue
            if isinstance(v, str) and (not v or len(v) > 24):
                continue
            if not isinstance(v, (str, int, float, bool, np.integer, np.floating)):
                continue
            items.append(f"{key}={_fmt(v)}")
    if len(items) > max_items:
        items = items[:max_items] + ["..."]
    return (str(name) if name else None), ", ".join(items)


def _title(result, title, max_chars: int = 120) -> str:
    """Two lines: name and key parameters (cut at max_chars), then the status (its first clause), the
    iterations, the grid and Nt."""
    if title is not None:
        return str(title)
    name, params = describe(result)
    head = ": ".join(s for s in (name, params) if s) or "MFG result"
    if len(head) > max_chars:
        head = head[: head.rfind(", ", 0, max_chars - 5)] + ", ..."
    status = str(result.status).split(" (")[0].split(";")[0]
    status = status if len(status) <= 60 else status[:57] + "..."
    shape = " x ".join(str(n) for n in result.grid.shape)
    return f"{head}\n{status}, {result.iterations} iterations; grid {shape}, Nt {len(result.t) - 1}"


def _natural_size(result, n_bottom: int) -> tuple:
    """(figure width, [row heights]) in inches: rows sized so that (x, y) images keep the domain's aspect
    ratio without empty bands."""
    grid = result.grid
    if grid.ndim == 1:
        width = max(11.0, 3.7 * n_bottom)
        return width, [3.8, 3.4]
    a = P.aspect(grid)
    h_cap = 4.5                                             # the tallest snapshot image
    # as wide as the bottom row needs, and no wider than four snapshots at their tallest (tall domains)
    width = max(3.7 * n_bottom, min(13.0, 4 * (h_cap / a + 0.6) + 1.4))
    w_img = (width - 1.4) / 4 - 0.3                         # four snapshots and their colour bar
    h_img = min(max(w_img * a, 0.6), h_cap)
    w_ctrl = _control_width(a, width, 3.6)
    mid_h = 3.6 if w_ctrl < 0.5 * width else max(2.6, (w_ctrl - 0.6) * a + 1.2)
    return width, [h_img + 0.85, mid_h, 3.4]


def _control_width(a: float, width: float, row_h: float) -> float:
    """Width of the control panel of a row row_h high: its image at the domain's aspect ratio, at most half
    the figure (wide domains: the row is then made lower, to the image's height)."""
    return min((row_h - 1.2) / a + 0.6, 0.5 * width)


def _middle_widths(result, width: float, row_h: float) -> list:
    """Width ratios of the 2-D middle row: the control image at the domain's aspect ratio, the two (t, x)
    images share the rest."""
    w_ctrl = _control_width(P.aspect(result.grid), width, row_h)
    rest = (width - w_ctrl) / 2
    return [w_ctrl, rest, rest]


def plot_result(result, path=None, oracle_mean=None, *, oracle_variance=None, title=None, style=None, **style_kw):
    """The quick-look figure of a result, built from the panels of ``mfg_pde.plotting``.

    Parameters
    ----------
    result : MFGResult (1-D, 2-D or 3-D).  1-D: density and value over (t, x) and density snapshots; 2-D/3-D:
        density snapshots over (x, y) (3-D: integrated over z; with exits at 0, 25, 50, 75 % evacuated), the
        control field over the density, the x-marginal of m and a mid-slice of u over (t, x).  Then the mean
        and variance paths, the convergence history and, with exits, the evacuated fraction.  ``result.obstacle``
        is outlined in white, exit sides in red.
    path : optional file name; the figure is saved there at ``style.dpi`` (PNG, PDF, SVG: by its suffix).  The
        saved image is exactly ``figsize * dpi`` pixels.
    oracle_mean, oracle_variance : optional closed forms of the mean and variance paths, arrays shaped (Nt+1,)
        or (Nt+1, d), or callables t -> such an array; drawn dashed over the computed paths.
    title : the figure title (default: case or problem name, key parameters, status).
    style : a :class:`~mfg_pde.plotting.Style`; its fields may also be given as keywords (``figsize=(12, 8)``,
        ``dpi=200``, ``font_size=11``, ``cmap="magma"``, ``scale="log"``, ``units={"x": "m"}``).  Without a
        figsize the figure is sized from the domain's aspect ratio.

    Returns the matplotlib Figure (Agg canvas: no display needed, the interactive backend untouched).
    """
    style = P._style(result, style, style_kw)
    t = np.asarray(result.t, dtype=float)
    om = P.closed_form_array(oracle_mean, t, result.grid.ndim, "oracle_mean")
    ov = P.closed_form_array(oracle_variance, t, result.grid.ndim, "oracle_variance")
    with style.context():
        fig = _build(result, style, om, ov, title)
    if path is not None:
        fig.savefig(path, dpi=style.dpi)
        _LOG.debug("plot_result: wrote %s (%.3g x %.3g in at %g dpi)", path, *fig.get_size_inches(), style.dpi)
    return fig


def _build(result, style: Style, om, ov, title):
    grid = result.grid
    bottom = ["mean", "variance"] + (["residuals"] if P.has_history(result) else []) + \
        (["outflow"] if P.has_exits(result) else [])
    width, heights = _natural_size(result, len(bottom))
    title_h = 0.75
    fig = P.new_figure(style, (width, title_h + sum(heights)))
    fig_w = style.figsize[0] if style.figsize else width
    fig.suptitle(_title(result, title, max_chars=int(fig_w * 72 / (0.55 * 1.2 * (style.font_size or 10)))))
    rows = fig.subfigures(len(heights), 1, height_ratios=heights)
    if grid.ndim == 1:
        ax_m, ax_u, ax_s = rows[0].subplots(1, 3)
        P.spacetime(result, ax_m, field="m", style=style)
        P.spacetime(result, ax_u, field="u", style=style)
        P.snapshots(result, ax_s, style=style)
    else:
        levels = P.snapshot_levels(result, 4)
        n_ctrl = len(result.t) // 2
        snaps = list(rows[0].subplots(1, len(levels)))
        norm = P.draw_snapshot_row(snaps, result, levels, style, extra_levels=[n_ctrl])
        row_h = (style.figsize[1] - title_h) * heights[1] / sum(heights) if style.figsize else heights[1]
        ax_c, ax_m, ax_u = rows[1].subplots(1, 3, width_ratios=_middle_widths(result, fig_w, max(row_h, 1.5)))
        P.control(result, ax_c, t=result.t[n_ctrl], style=style, norm=norm, colorbar=False,
                  max_arrows=14)  # the snapshots' scale
        P.spacetime(result, ax_m, field="m", style=style)
        P.spacetime(result, ax_u, field="u", style=style)
    line_axes = list(rows[-1].subplots(1, len(bottom)))
    for ax, what in zip(line_axes, bottom):
        if what == "mean":
            P.mean_path(result, ax, closed_form=om, style=style)
        elif what == "variance":
            P.variance_path(result, ax, closed_form=ov, style=style)
        elif what == "residuals":
            P.residuals(result, ax, style=style)
        else:
            P.outflow(result, ax, style=style)
    return fig


def natural_figsize(result) -> tuple:
    """The dashboard's own (width, height) in inches for a result (what ``plot_result`` uses without a
    figsize)."""
    grid = result.grid
    n_bottom = 2 + P.has_history(result) + P.has_exits(result)
    width, heights = _natural_size(result, n_bottom)
    return width, 0.75 + sum(heights)

