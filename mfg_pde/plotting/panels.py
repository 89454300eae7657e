"""One panel per function: each takes a result and ``ax=None`` and returns what it drew on.

==================  =====================================================================================
``density``         1-D: m(x) at one or more times (lines); 2-D/3-D: the density over (x, y) at one time
                    (3-D: its integral over z), obstacle outlined, exits in red
``snapshots``       1-D: several times in one axes; 2-D/3-D: a row of images with one colour scale
                    (returns the row of axes)
``spacetime``       m, u or alpha over (t, x) as an image (2-D/3-D: the x-marginal of m, mid-slices of u)
``control``         2-D/3-D: the feedback alpha = -grad u as arrows (or streamlines) over the density
``mean_path``       E[X_t] per axis, with an optional closed form; a mean that is zero (or constant) to
                    round-off is drawn as such and said so; with exits the mean of the mass still inside,
                    stopped where less than ``mass_floor`` of it is left
``variance_path``   Var[X_t] per axis, the same conventions
``outflow``         results on grids with exits: evacuated fraction, per exit side, or the outflow rate
``residuals``       convergence history (log scale), the solver's tolerance dashed
==================  =====================================================================================

With ``ax=None`` a panel makes its own figure (``style.figsize`` or a size fitted to the panel, constrained
layout, an Agg canvas: nothing touches the interactive backend); ``ax.figure.savefig(path)`` saves it.  Every
panel takes ``style=`` (a :class:`~mfg_pde.plotting.style.Style`) and its fields as keywords (``cmap=``,
``scale=``, ``font_size=``, ...).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .style import Style

__all__ = ["control", "density", "mean_path", "outflow", "residuals", "snapshots", "spacetime", "subplots",
           "variance_path"]

_LOG = logging.getLogger("mfg_pde")

HISTORY_KEYS = ("residual", "hjb_residual", "fp_residual")


# ---------------------------------------------------------------------------------- helpers
def _style(result, style, style_kw) -> Style:
    return Style.coerce(style, **style_kw).with_units(getattr(result, "params", None))


def new_figure(style: Style, figsize):
    """An Agg-backed Figure of ``style.figsize`` (or ``figsize``) at ``style.dpi``, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=style.figsize or figsize, dpi=style.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, style=None, **kw):
    """``(figure, axes)`` for composing panels: a Figure of ``style.figsize`` (default 4 x 3 inches per panel)
    at ``style.dpi`` with constrained layout and an Agg canvas; ``kw`` are the style's fields (``figsize=``,
    ``dpi=``, ...) and ``Figure.subplots`` options (``sharex=``, ``width_ratios=``, ...).  Save with
    ``fig.savefig(path)``: the file is ``figsize * dpi`` pixels (PNG) or vector (PDF, SVG)."""
    from dataclasses import fields

    names = {f.name for f in fields(Style)}
    style = Style.coerce(style, **{k: v for k, v in kw.items() if k in names})
    fig = new_figure(style, (4.0 * ncols, 3.0 * nrows))
    return fig, fig.subplots(nrows, ncols, **{k: v for k, v in kw.items() if k not in names})


def _axes(ax, style: Style, figsize):
    return new_figure(style, figsize).subplots() if ax is None else ax


def edges(c) -> np.ndarray:
    """Cell edges around sorted, evenly spaced centres c (for pcolormesh): a cell-centred grid's bounds."""
    c = np.asarray(c, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _grid_edges(grid, k: int) -> np.ndarray:
    """Cell edges of axis k: exactly the grid's bounds at both ends."""
    lo, hi = grid.bounds[k]
    return np.linspace(lo, hi, grid.shape[k] + 1)


def aspect(grid) -> float:
    """Height over width of the (x, y) domain (1 for 1-D)."""
    if grid.ndim < 2:
        return 1.0
    (x0, x1), (y0, y1) = grid.bounds[0], grid.bounds[1]
    return float((y1 - y0) / (x1 - x0))


def level_of(result, t) -> int:
    """The time level nearest to time t (None: the last level).  A time outside [t_0, T] is a ValueError."""
    times = np.asarray(result.t, dtype=float)
    if t is None:
        return len(times) - 1
    try:
        tv = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"t={t!r}: expected a time, a number in [{times[0]:g}, {times[-1]:g}]") from None
    slack = 0.5 * (times[-1] - times[0]) / max(len(times) - 1, 1)
    if not (math.isfinite(tv) and times[0] - slack <= tv <= times[-1] + slack):
        raise ValueError(f"t={t!r}: outside the result's time range [{times[0]:g}, {times[-1]:g}]")
    return int(np.argmin(np.abs(times - tv)))


def _levels_of(result, times) -> list:
    if times is None or np.isscalar(times):
        return [level_of(result, times)]
    return [level_of(result, tv) for tv in times]


def plane(grid, field) -> np.ndarray:
    """A 2-D field on (x, y): the field itself in 2-D, its integral over z in 3-D."""
    field = np.asarray(field, dtype=float)
    if grid.ndim == 3:
        return field.sum(axis=2) * grid.spacing[2]
    return field


def has_exits(result) -> bool:
    """Whether mass can leave the result's domain: exit sides of its grid, or doors (``result.outflow.doors``)."""
    return bool(result.grid.has_exits or getattr(getattr(result, "outflow", None), "doors", None))


def remaining(result) -> np.ndarray:
    """Fraction of the initial mass still on the grid at each level (1 without exits)."""
    if not has_exits(result):
        return np.ones(len(result.t))
    out = getattr(result, "outflow", None)
    mass = np.asarray(out.mass if out is not None else result.mass(), dtype=float)
    return mass / mass[0]


def side_indices(result) -> list:
    """(axis, side) of each label in ``result.outflow.sides`` ("x hi", ...: exit sides and the sides with
    doors)."""
    grid = result.grid
    out = []
    for lab in result.outflow.sides:
        name, side = str(lab).split()
        out.append((list(grid.axis_names).index(name), ("lo", "hi").index(side)))
    return out


def evacuated(result):
    """(evacuated fraction per level, [(side label, cumulative fraction per level)] or None, balance error
    or None) of a result on a grid with exits."""
    out = getattr(result, "outflow", None)
    if out is not None:
        per_side = None
        if len(out.sides) >= 1:
            cum = np.concatenate([np.zeros((1,) + out.per_side.shape[1:]), np.cumsum(out.per_side, axis=0)])
            per_side = [(lab, cum[:, k, j] / out.mass0) for lab, (k, j) in zip(out.sides, side_indices(result))]
        return np.asarray(out.evacuated, dtype=float), per_side, float(out.balance_error)
    return 1.0 - remaining(result), None, None


def snapshot_levels(result, count: int = 4) -> list:
    """Time levels for snapshots: evenly spaced, or with exits the first levels at which 0, 25, 50, 75 % of
    the crowd has left (evenly spaced where a fraction is never reached)."""
    n_last = len(result.t) - 1
    even = [int(n) for n in np.unique(np.round(np.linspace(0, n_last, count)).astype(int))]
    if not has_exits(result):
        return even
    evac = evacuated(result)[0]
    levels = []
    for j, frac in enumerate(np.linspace(0.0, 0.75, count)):
        hit = np.nonzero(evac >= frac - 1e-12)[0]
        levels.append(int(hit[0]) if hit.size else even[min(j, len(even) - 1)])
    return sorted(set(levels)) if len(set(levels)) > 1 else even


def _line_colours(style: Style, count: int):
    """count colours from the density colour map, avoiding its light end (which vanishes on white)."""
    cmap = style.colormap("density")
    if count == 1:
        return ["C0"]

    def lum(c):
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    lo, hi = (0.3, 1.0) if lum(cmap(0.0)) > lum(cmap(1.0)) else (0.0, 0.8)
    return [cmap(v) for v in np.linspace(lo, hi, count)]


def _density_yscale(ax, style: Style, vmax: float) -> None:
    """The density axis of 1-D lines: from 0 (linear, sqrt) or log_floor * max (log) to just above the max."""
    vmax = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    if style.scale_for() == "log":
        ax.set_yscale("log")
        ax.set_ylim(vmax * style.log_floor, vmax * 1.5)
    else:
        if style.scale_for() == "sqrt":
            ax.set_yscale("function", functions=(lambda y: np.sqrt(np.maximum(y, 0.0)), np.square))
        ax.set_ylim(0.0, vmax * 1.05)


def _shown_density(values, style: Style, vmax: float) -> np.ndarray:
    """1-D density values as drawn: with the log scale, values below the floor are not drawn (NaN)."""
    values = np.asarray(values, dtype=float)
    if style.scale_for() == "log":
        return np.where(values >= vmax * style.log_floor, values, np.nan)
    return values


def doors_of(result) -> list:
    """The doors of the problem behind a result as (axis, side, face mask over the side's cells, name), or []
    (no problem attached, or no doors)."""
    geo = getattr(getattr(result, "problem", None), "geometry", None)
    if geo is None or not getattr(geo, "doors", ()):
        return []
    return [(k, j, np.asarray(faces, dtype=bool), name) for (k, j, faces), name in zip(geo.door_faces, geo.door_names)]


def _runs(mask):
    """(start, stop) index pairs of the runs of True in a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


def draw_room(ax, grid, obstacle, doors=()) -> None:
    """Obstacle outline (white contour of the mask), exit sides and doors (thick red lines: a door only
    along its own faces; the rest of its side is a wall) on an (x, y) axes; limits the axes to the domain,
    equal aspect.  doors: ``doors_of(result)`` (3-D: doors are drawn where they cross the plane's edge)."""
    (x0, x1), (y0, y1) = grid.bounds[0], grid.bounds[1]
    if obstacle is not None:
        obs = np.asarray(obstacle, dtype=float)
        if obs.ndim == 3:
            obs = obs.max(axis=2)
        if obs.shape == tuple(grid.shape[:2]) and 0 < obs.max() and obs.min() < 1:
            ax.contour(grid.axes[0], grid.axes[1], obs.T, levels=[0.5], colors="white", linewidths=1.2)
    red = {"color": "tab:red", "lw": 4, "solid_capstyle": "butt", "clip_on": False}
    for k, j in grid.exit_sides:
        if k == 0:
            xb = (x0, x1)[j]
            ax.plot([xb, xb], [y0, y1], **red)
        elif k == 1:
            yb = (y0, y1)[j]
            ax.plot([x0, x1], [yb, yb], **red)
    for k, j, faces, _name in doors:
        if k > 1:
            continue
        f = faces if faces.ndim == 1 else faces.any(axis=-1)  # 3-D: the faces' footprint on the (x, y) edge
        other = 1 - k
        edges = _grid_edges(grid, other)
        for a, b in _runs(f):
            lo, hi = edges[a], edges[b]
            if k == 0:
                xb = (x0, x1)[j]
                ax.plot([xb, xb], [lo, hi], **red)
            else:
                yb = (y0, y1)[j]
                ax.plot([lo, hi], [yb, yb], **red)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")


def density_image(ax, result, n: int, style: Style, norm):
    """The density at level n over (x, y) (3-D: integrated over z) as a QuadMesh spanning the grid's bounds."""
    grid = result.grid
    pl = np.maximum(plane(grid, result.m[n]), 0.0)
    mesh = ax.pcolormesh(_grid_edges(grid, 0), _grid_edges(grid, 1), pl.T, shading="flat",
                         cmap=style.colormap("density"), norm=norm)
    draw_room(ax, grid, getattr(result, "obstacle", None), doors_of(result))
    ax.set_xlabel(style.label("x"))
    ax.set_ylabel(style.label("y"))
    return mesh


def _density_symbol(grid) -> str:
    return "m" if grid.ndim < 3 else "int m dz"


def _need_2d(result, what: str) -> None:
    if result.grid.ndim < 2:
        raise ValueError(f"{what}: the result is 1-D; this panel draws over (x, y)")


# ---------------------------------------------------------------------------------- density panels
def density(result, ax=None, *, t=None, colorbar: bool = True, style=None, **style_kw):
    """The density at chosen times.

    1-D: one line m(x) per time in ``t`` (a number or a sequence; default T), y axis on the style's scale.
    2-D/3-D: the density over (x, y) at the single time ``t`` (3-D: integrated over z), on the style's colour
    map and scale, the obstacle (``result.obstacle``) outlined, exit sides and doors in red; a colour bar unless
    ``colorbar=False``.  Times are rounded to the nearest level.  Returns the axes.
    """
    style = _style(result, style, style_kw)
    grid = result.grid
    with style.context():
        if grid.ndim == 1:
            ax = _axes(ax, style, (6.0, 4.0))
            _density_lines(ax, result, _levels_of(result, t), style)
            return ax
        if not (t is None or np.isscalar(t)):
            raise ValueError("density: a 2-D/3-D result takes one time t; use snapshots(result, times=[...]) for "
                             "several")
        n = level_of(result, t)
        ax = _axes(ax, style, (5.5, 0.8 + 4.5 * min(max(aspect(grid), 0.25), 2.0)))
        pl = plane(grid, result.m[n])
        mesh = density_image(ax, result, n, style, style.norm(float(np.max(pl)), plane=True))
        ax.set_title(f"{_density_symbol(grid)}(t={result.t[n]:.3g})")
        if colorbar:
            style.apply(ax.figure.colorbar(mesh, ax=ax, label=style.scale_label(style.label("m"), plane=True)).ax)
        style.apply(ax)
        return ax


def _density_lines(ax, result, levels, style: Style) -> None:
    x = np.asarray(result.grid.axes[0], dtype=float)
    m = np.asarray(result.m, dtype=float)
    vmax = float(max(np.max(m[n]) for n in levels))
    for n, colour in zip(levels, _line_colours(style, len(levels))):
        ax.plot(x, _shown_density(m[n], style, vmax), color=colour, lw=1.6, label=f"t = {result.t[n]:.3g}")
    ax.set_xlim(*result.grid.bounds[0])
    _density_yscale(ax, style, vmax)
    ax.set_xlabel(style.label("x"))
    ax.set_ylabel(style.scale_label(style.label("m", "density m")))
    ax.set_title("density m(t, x)" if len(levels) > 1 else f"density m(t={result.t[levels[0]]:.3g}, x)")
    if len(levels) > 1:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    style.apply(ax)


def snapshots(result, ax=None, *, times=None, count: int = 4, colorbar: bool = True, style=None, **style_kw):
    """The density at several times.

    ``times`` (default: ``count`` evenly spaced levels; with exits the levels at which 0, 25, 50, 75 % of the
    crowd has left).  1-D: one line per time in a single axes, coloured along the colour map; returns the
    axes.  2-D/3-D: one image per time with one shared colour scale (``ax``: a sequence of at least as many
    axes, or None for a new row sized from the domain's aspect ratio); returns the list of axes used.
    """
    style = _style(result, style, style_kw)
    grid = result.grid
    levels = _levels_of(result, times) if times is not None else snapshot_levels(result, count)
    with style.context():
        if grid.ndim == 1:
            ax = _axes(ax, style, (6.0, 4.0))
            _density_lines(ax, result, levels, style)
            ax.set_title("density snapshots")
            return ax
        if ax is None:
            k = len(levels)
            w = 3.2
            fig = new_figure(style, (k * w + 1.0, 0.9 + (w - 0.4) * min(max(aspect(grid), 0.2), 2.5)))
            axes = list(np.atleast_1d(fig.subplots(1, k)))
        else:
            axes = list(np.atleast_1d(np.asarray(ax, dtype=object)).ravel())
            if len(axes) < len(levels):
                raise ValueError(f"snapshots: {len(levels)} times but {len(axes)} axes given")
        draw_snapshot_row(axes, result, levels, style, colorbar=colorbar)
        return axes[: len(levels)]


def draw_snapshot_row(axes, result, levels, style: Style, colorbar: bool = True, extra_levels=()):
    """Density images at ``levels`` on ``axes`` with one colour norm (up to the maximum over ``levels`` and
    ``extra_levels``: levels another panel draws on the same scale); returns the norm."""
    grid = result.grid
    vmax = max(float(np.max(plane(grid, result.m[n]))) for n in list(levels) + list(extra_levels))
    norm = style.norm(vmax, plane=True)
    evac = evacuated(result)[0] if has_exits(result) else None
    mesh = None
    for i, (ax, n) in enumerate(zip(axes, levels)):
        mesh = density_image(ax, result, n, style, norm)
        what = f"{_density_symbol(grid)}(t={result.t[n]:.3g})"
        if evac is not None:
            what += f", {100 * evac[n]:.0f}% out"
        ax.set_title(what, fontsize="medium")
        if i:
            ax.set_ylabel("")
            ax.tick_params(labelleft=False)
    for ax in axes[len(levels):]:
        ax.set_axis_off()
    if colorbar and mesh is not None:
        style.apply(axes[0].figure.colorbar(mesh, ax=list(axes[: len(levels)]), shrink=0.9,
                                            label=style.scale_label(style.label("m", "density"), plane=True)).ax)
    style.apply(*axes)
    return norm


# ---------------------------------------------------------------------------------- space-time
def spacetime(result, ax=None, *, field: str = "m", axis: int = 0, colorbar: bool = True, style=None, **style_kw):
    """An image over (t, x): time on the horizontal axis, one space axis on the vertical one.

    field : "m" (density: the style's colour map and scale; 2-D/3-D: the marginal on ``axis``, integrated over
        the other axes), "u" (value: ``value_cmap``, linear; 2-D/3-D: the slice through the middle of the other
        axes) or "alpha" (the control's component along ``axis``: a diverging map centred on 0; 2-D/3-D: mid-slice).
    Each cell spans its grid cell in x and half a time step either side of its level in t.  Returns the axes.
    """
    from matplotlib.colors import Normalize

    style = _style(result, style, style_kw)
    grid = result.grid
    if field not in ("m", "u", "alpha"):
        raise ValueError(f"spacetime: field={field!r}; choose 'm', 'u' or 'alpha'")
    if not (isinstance(axis, (int, np.integer)) and 0 <= axis < grid.ndim):
        raise ValueError(f"spacetime: axis={axis!r}; the grid has axes 0..{grid.ndim - 1}")
    names = grid.axis_names
    name = names[axis]
    others = [k for k in range(grid.ndim) if k != axis]
    mids = {k: grid.shape[k] // 2 for k in others}
    at = ", ".join(f"{names[k]}={grid.axes[k][mids[k]]:.3g}" for k in others)
    t = np.asarray(result.t, dtype=float)
    if field == "m":
        data = np.asarray(result.m, dtype=float)
        if others:
            data = data.sum(axis=tuple(1 + k for k in others)) * float(np.prod([grid.spacing[k] for k in others]))
        data = np.maximum(data, 0.0)
        title = (f"density m(t, {name})" if not others else
                 f"marginal density on {name} (integrated over {', '.join(names[k] for k in others)})")
        cmap, norm, label = style.colormap("density"), style.norm(float(np.max(data))), \
            style.scale_label(style.label("m" if not others else f"m_{name}"))
    else:
        src = np.asarray(result.u if field == "u" else result.alpha[..., axis], dtype=float)
        idx = (slice(None),) + tuple(slice(None) if k == axis else mids[k] for k in range(grid.ndim))
        data = src[idx]
        sym = "u" if field == "u" else f"alpha_{name}"
        title = f"{'value' if field == 'u' else 'control'} {sym}(t, {name})" + (f" at {at}" if others else "")
        if field == "u":
            cmap, norm = style.colormap("value"), Normalize(float(np.min(data)), float(np.max(data)))
        else:
            import matplotlib

            lim = float(np.max(np.abs(data))) or 1.0
            cmap, norm = matplotlib.colormaps["RdBu_r"], Normalize(-lim, lim)
        label = style.label(sym)
    with style.context():
        ax = _axes(ax, style, (6.5, 4.0))
        mesh = ax.pcolormesh(edges(t), _grid_edges(grid, axis), data.T, shading="flat", cmap=cmap, norm=norm)
        ax.set_xlabel(style.label("t"))
        ax.set_ylabel(style.label(name))
        ax.set_title(title)
        if colorbar:
            style.apply(ax.figure.colorbar(mesh, ax=ax, label=label).ax)
        style.apply(ax)
        return ax


# ---------------------------------------------------------------------------------- control field
def control(result, ax=None, *, t=None, kind: str = "quiver", underlay: bool = True, max_arrows: int = 20,
            mass_floor: float = 1e-3, colorbar: bool = True, norm=None, style=None, **style_kw):
    """The feedback alpha (= -grad u) over (x, y) at time ``t`` (default: the middle level), drawn where the
    agents are: arrows (``kind="quiver"``, at most ``max_arrows`` per axis) or streamlines (``kind="stream"``)
    over the density (``underlay``), masked where the density is below ``mass_floor`` times its maximum and
    inside the obstacle; arrows are spaced evenly in both directions (the longer side of the domain gets
    ``max_arrows``), their length proportional to the speed, the 90th percentile one spacing long.  ``norm``:
    the underlay's colour norm (default: the style's scale up to the density's maximum at t).  3-D: the (x, y)
    components on the mid-z slice over the z-integrated density.  1-D results raise ValueError (draw
    ``spacetime(result, field="alpha")``).  Returns the axes.
    """
    style = _style(result, style, style_kw)
    grid = result.grid
    if grid.ndim < 2:
        raise ValueError("control: the result is 1-D; draw the control over (t, x) with "
                         "spacetime(result, field='alpha')")
    if kind not in ("quiver", "stream"):
        raise ValueError(f"control: kind={kind!r}; choose 'quiver' or 'stream'")
    if not (isinstance(max_arrows, (int, np.integer)) and max_arrows >= 2):
        raise ValueError(f"control: max_arrows={max_arrows!r}; expected an integer >= 2")
    n = len(result.t) // 2 if t is None else level_of(result, t)
    alpha = np.asarray(result.alpha[n], dtype=float)
    if grid.ndim == 3:
        alpha = alpha[:, :, grid.shape[2] // 2, :]
    ax_, ay_ = alpha[..., 0], alpha[..., 1]
    dens = plane(grid, result.m[n])
    mask = dens < mass_floor * float(np.max(dens))
    obstacle = getattr(result, "obstacle", None)
    if obstacle is not None:
        obs = np.asarray(obstacle, dtype=bool)
        obs = obs.any(axis=2) if obs.ndim == 3 else obs
        if obs.shape == mask.shape:
            mask |= obs
    x, y = grid.axes[0], grid.axes[1]
    with style.context():
        ax = _axes(ax, style, (5.8, 0.9 + 4.5 * min(max(aspect(grid), 0.25), 2.0)))
        mesh = None
        if underlay:
            if norm is None:
                norm = style.norm(float(np.max(dens)), plane=True)
            mesh = density_image(ax, result, n, style, norm)
        else:
            draw_room(ax, grid, obstacle, doors_of(result))
            ax.set_xlabel(style.label("x"))
            ax.set_ylabel(style.label("y"))
        if kind == "quiver":
            gap = max(b[1] - b[0] for b in grid.bounds[:2]) / max_arrows   # same spacing along x and y
            sx = max(1, math.ceil(gap / grid.spacing[0] - 1e-9))
            sy = max(1, math.ceil(gap / grid.spacing[1] - 1e-9))
            ix, iy = np.arange(sx // 2, grid.shape[0], sx), np.arange(sy // 2, grid.shape[1], sy)
            sub = np.ix_(ix, iy)
            keep = ~mask[sub]
            X, Y = np.meshgrid(x[ix], y[iy], indexing="ij")
            U, V = ax_[sub][keep], ay_[sub][keep]
            speed = np.hypot(U, V)
            # lengths in data units, the 90th percentile of the speeds one arrow spacing long (a few outliers,
            # e.g. at an obstacle's edge, do not shrink all the others to dots)
            ref = float(np.percentile(speed, 90)) if speed.size else 0.0
            scale = ref / gap if ref > 0 else None
            ax.quiver(X[keep], Y[keep], U, V, color="white", edgecolor="black", linewidth=0.4, pivot="mid",
                      angles="xy", scale_units="xy", scale=scale, zorder=3)
        else:
            U = np.ma.masked_array(ax_.T, mask.T)
            V = np.ma.masked_array(ay_.T, mask.T)
            ax.streamplot(x, y, U, V, color="white", linewidth=0.8, arrowsize=0.8, density=1.0, zorder=3)
            ax.set_xlim(*grid.bounds[0])
            ax.set_ylim(*grid.bounds[1])
        where = ", z mid-slice" if grid.ndim == 3 else ""
        ax.set_title(f"control alpha\nt={result.t[n]:.3g}{where}", fontsize="medium")
        if colorbar and mesh is not None:
            style.apply(ax.figure.colorbar(mesh, ax=ax, label=style.scale_label(style.label("m"), plane=True)).ax)
        style.apply(ax)
        return ax


# ---------------------------------------------------------------------------------- moments
def closed_form_array(closed_form, t: np.ndarray, ndim: int, name: str = "oracle_mean"):
    """A closed form as an array (Nt+1, ndim): from an array shaped (Nt+1,) or (Nt+1, ndim), or a callable
    t -> such an array.  None stays None; a wrong shape is a ValueError naming ``name``."""
    if closed_form is None:
        return None
    om = closed_form(t) if callable(closed_form) else closed_form
    om = np.asarray(om, dtype=float)
    if om.ndim == 1:
        om = om[:, None]
    if om.ndim != 2 or om.shape[0] != t.shape[0] or om.shape[1] != ndim:
        raise ValueError(f"{name} has shape {np.shape(om)}; expected ({t.shape[0]},) or "
                         f"({t.shape[0]}, {ndim}) -- one value per time level")
    return om


def _moment_panel(ax, result, values, closed, style: Style, *, what: str, symbol: str, mass_floor: float,
                  roundoff: float | None, unit_power: int):
    grid = result.grid
    t = np.asarray(result.t, dtype=float)
    names = grid.axis_names
    exits = has_exits(result)
    alive = remaining(result) >= mass_floor if exits else np.ones(len(t), dtype=bool)
    flat_all = True
    centre = []
    for k in range(grid.ndim):
        vals = np.where(alive, values[:, k], np.nan)
        label = f"{what} {names[k]} (computed)"
        width = float(grid.bounds[k][1] - grid.bounds[k][0])
        finite = vals[np.isfinite(vals)]
        spread = float(np.ptp(finite)) if finite.size else 0.0
        flat = roundoff is not None and finite.size > 0 and spread <= roundoff * width
        if roundoff is not None and finite.size > 0 and not flat and spread <= 1e-6 * width:
            # flat to the eye but above round-off (e.g. the solver's tolerance): drawn as computed, the axis not
            # scaled to the wiggle (below), the spread said
            label = f"{what} {names[k]} (computed; varies by {spread:.0e} only)"
            centre.append(float(np.median(finite)))
            flat = None
        if flat:  # round-off noise: draw the constant it is, say so, never scale an axis to 1e-16
            med = float(np.median(finite))
            peak = float(np.max(np.abs(finite)))
            if abs(med) <= roundoff * width:
                vals = np.where(alive, 0.0, np.nan)
                label = f"{what} {names[k]} = 0 (symmetric: 0 to round-off, |computed| <= {peak:.0e})"
                centre.append(0.0)
            else:
                vals = np.where(alive, med, np.nan)
                label = f"{what} {names[k]} = {med:.4g} (constant to round-off)"
                centre.append(med)
        flat_all &= flat is None or bool(flat)
        line, = ax.plot(t, vals, lw=3.0, alpha=0.55, label=label)
        if closed is not None:  # dashed, darker, on top: visible even where the two coincide
            ax.plot(t, closed[:, k], "--", color=line.get_color(), lw=1.3, zorder=3,
                    label=f"{what} {names[k]} (closed form)")
    ax.set_xlim(t[0], t[-1])
    if flat_all and centre and closed is None:
        span = 0.1 * max(float(b[1] - b[0]) for b in grid.bounds)
        ax.set_ylim(min(centre) - span, max(centre) + span)
    if exits and not alive.all():
        t_gone = float(t[np.argmin(alive)])
        ax.axvspan(t_gone, t[-1], color="0.88", zorder=0,
                   label=f"< {100 * mass_floor:g}% of the mass left: not drawn")
    unit = (style.units or {}).get("x")
    unit = None if not unit else (unit if unit_power == 1 else f"{unit}^{unit_power}")
    ylabel = f"{symbol}[X_t | still inside]" if exits else f"{symbol}[X_t]"
    ax.set_ylabel(f"{ylabel} [{unit}]" if unit else ylabel)
    ax.set_xlabel(style.label("t"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    style.apply(ax)


def mean_path(result, ax=None, *, closed_form=None, mass_floor: float = 1e-3, roundoff: float = 1e-10,
              style=None, **style_kw):
    """The mean E[X_t] per axis over time, with ``closed_form`` dashed on top (an array (Nt+1,) or
    (Nt+1, d), or a callable t -> one).

    A component whose variation over time is below ``roundoff`` times the domain's width is round-off
    noise: it is drawn as the constant it is (0 for a symmetric problem: "symmetric: 0 to round-off", with
    the largest computed value) and the axis is not scaled to the noise.  With exits the mean is that of the
    mass still inside (conditional); it is not drawn where less than ``mass_floor`` of the initial mass is
    left (the grey band).  Returns the axes.
    """
    style = _style(result, style, style_kw)
    t = np.asarray(result.t, dtype=float)
    closed = closed_form_array(closed_form, t, result.grid.ndim, "closed_form")
    with np.errstate(invalid="ignore", divide="ignore"):  # exits: no mass left -> nan, not drawn
        mean = np.asarray(result.mean(), dtype=float)
    with style.context():
        ax = _axes(ax, style, (6.0, 4.0))
        _moment_panel(ax, result, mean, closed, style, what="mean",
                      symbol="E", mass_floor=mass_floor, roundoff=roundoff, unit_power=1)
        ax.set_title("mean path" + (" (mass still inside)" if has_exits(result) else ""))
        return ax


def variance_path(result, ax=None, *, closed_form=None, mass_floor: float = 1e-3, style=None, **style_kw):
    """The variance Var[X_t] per axis over time (the diagonal of the covariance), with ``closed_form``
    dashed on top (an array (Nt+1,) or (Nt+1, d), or a callable t -> one); with exits the variance of the
    mass still inside, not drawn where less than ``mass_floor`` of it is left.  Returns the axes."""
    style = _style(result, style, style_kw)
    t = np.asarray(result.t, dtype=float)
    closed = closed_form_array(closed_form, t, result.grid.ndim, "closed_form")
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.asarray(result.covariance(), dtype=float)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    with style.context():
        ax = _axes(ax, style, (6.0, 4.0))
        _moment_panel(ax, result, var, closed, style, what="variance", symbol="Var", mass_floor=mass_floor,
                      roundoff=None, unit_power=2)
        ax.set_title("variance" + (" (mass still inside)" if has_exits(result) else ""))
        return ax


# ---------------------------------------------------------------------------------- outflow, history
def outflow(result, ax=None, *, rate: bool = False, style=None, **style_kw):
    """Results on grids with exits: the evacuated fraction of the initial mass over time, what is still
    inside and the share through each door (several doors) or exit side (``rate=True``: the outflow per unit
    time through each door and side, as a fraction of the initial mass).  The title gives the outflow balance error.  A result without exit
    sides is a ValueError.  Returns the axes."""
    style = _style(result, style, style_kw)
    grid = result.grid
    if not has_exits(result):
        raise ValueError("outflow: the result's grid has no exit side (bc "
                         f"{grid.bc}); mass is conserved, there is no outflow to draw")
    t = np.asarray(result.t, dtype=float)
    evac, per_side, balance = evacuated(result)
    with style.context():
        ax = _axes(ax, style, (6.0, 4.0))
        if rate:
            out = getattr(result, "outflow", None)
            mid = 0.5 * (t[1:] + t[:-1])
            dt = np.diff(t)
            if out is not None:
                if out.per_door is not None and len(out.doors):  # each door on its own (its side: the sum)
                    for i, name in enumerate(out.doors):
                        ax.plot(mid, np.asarray(out.per_door)[:, i] / dt / out.mass0, lw=1.6, label=f"through {name}")
                else:
                    for lab, (k, j) in zip(out.sides, side_indices(result)):
                        ax.plot(mid, out.per_side[:, k, j] / dt / out.mass0, lw=1.6, label=f"through {lab}")
            else:
                ax.plot(mid, np.diff(evac) / dt, lw=1.6, label="all exits")
            t_unit = (style.units or {}).get("t")
            ax.set_ylabel(f"outflow rate [1/{t_unit}]" if t_unit else "outflow rate (initial mass per unit time)")
            ax.set_title("outflow rate")
        else:
            ax.plot(t, evac, lw=2.5, color="tab:red", label="evacuated (outflow / initial mass)")
            ax.plot(t, 1.0 - evac, lw=1.5, color="tab:blue", label="still inside")
            out = getattr(result, "outflow", None)
            if out is not None and out.per_door is not None and len(out.doors) > 1:
                for name in out.doors:
                    ax.plot(t, out.door_cumulative(name) / out.mass0, "--", lw=1.2, label=f"through {name}")
            elif per_side and len(per_side) > 1:
                for lab, frac in per_side:
                    ax.plot(t, frac, "--", lw=1.2, label=f"through {lab}")
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("fraction of the initial mass")
            title = "evacuated fraction"
            if balance is not None:
                title += f"\n(balance error {balance:.1e})"
            ax.set_title(title)
        ax.set_xlim(t[0], t[-1])
        ax.set_xlabel(style.label("t"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        style.apply(ax)
        return ax


def residuals(result, ax=None, *, keys=HISTORY_KEYS, show_tol: bool = True, style=None, **style_kw):
    """The convergence history: each of ``keys`` in ``result.history`` per iteration on a log scale (positive
    finite values), the solver's ``tol`` dashed (``show_tol``).  Without any history the axes says so.
    Returns the axes."""
    from matplotlib.ticker import MaxNLocator

    style = _style(result, style, style_kw)
    hist = getattr(result, "history", None) or {}
    with style.context():
        ax = _axes(ax, style, (6.0, 4.0))
        drawn = False
        for key in keys:
            vals = hist.get(key)
            if vals is None:
                continue
            vals = np.asarray(vals, dtype=float).ravel()
            pos = np.where(vals > 0, vals, np.nan)
            if not np.any(np.isfinite(pos)):
                continue
            ax.plot(np.arange(1, vals.size + 1), pos, marker="o", ms=3, lw=1.2, label=key)
            drawn = True
        if drawn:
            ax.set_yscale("log")
            tol = (result.solver or {}).get("tol") if isinstance(getattr(result, "solver", None), dict) else None
            if show_tol and isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0:
                ax.axhline(float(tol), color="0.4", ls=":", lw=1.0, label=f"tol {tol:.0e}")
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no convergence history", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration")
        ax.set_ylabel("residual")
        ax.set_title("convergence history")
        ax.grid(True, which="both", alpha=0.3)
        style.apply(ax)
        return ax


def has_history(result, keys=HISTORY_KEYS) -> bool:
    """Whether ``residuals`` has anything to draw for the result."""
    hist = getattr(result, "history", None) or {}
    for key in keys:
        vals = hist.get(key)
        if vals is not None and np.any(np.asarray(vals, dtype=float) > 0):
            return True
    return False
