"""Quick-look figure of an :class:`~mfg_pde.result.MFGResult`.

matplotlib is imported lazily (inside :func:`plot_result`), so ``import mfg_pde`` stays fast and
never selects a backend.  The figure is built with the object-oriented API
(``matplotlib.figure.Figure`` + the Agg canvas), so it renders and saves without a display and
without touching the backend of an interactive session.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_result"]

_HISTORY_KEYS = ("residual", "hjb_residual", "fp_residual")


def _edges(c: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres c (for pcolormesh)."""
    c = np.asarray(c, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _oracle_array(oracle_mean, t: np.ndarray, ndim: int):
    if oracle_mean is None:
        return None
    om = oracle_mean(t) if callable(oracle_mean) else oracle_mean
    om = np.asarray(om, dtype=float)
    if om.ndim == 1:
        om = om[:, None]
    if om.shape[0] != t.shape[0] or om.shape[1] != ndim:
        raise ValueError(f"oracle_mean has shape {np.shape(om)}; expected ({t.shape[0]},) or "
                         f"({t.shape[0]}, {ndim}) -- one mean per time level")
    return om


def _heat(fig, ax, t, x, field, title, label, cmap):
    mesh = ax.pcolormesh(_edges(t), _edges(x), np.asarray(field, dtype=float).T,
                         shading="flat", cmap=cmap)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label=label)


def _evacuated(result):
    """(evacuated fraction per level, per-side cumulative fractions or None, balance error or None)."""
    out = getattr(result, "outflow", None)
    if out is not None:
        per_side = None
        if len(out.sides) > 1:
            cum = np.concatenate([np.zeros((1,) + out.per_side.shape[1:]), np.cumsum(out.per_side, axis=0)])
            per_side = [(lab, cum[:, k, j] / out.mass0) for lab, (k, j) in zip(out.sides, result.grid.exit_sides)]
        return np.asarray(out.evacuated, dtype=float), per_side, float(out.balance_error)
    mass = np.asarray(result.mass(), dtype=float)
    return 1.0 - mass / mass[0], None, None


def _snapshot_levels(t, evac, count=4):
    """Time levels for the density snapshots: evenly spaced, or with exits the first levels at which
    0, 25, 50, 75 % of the crowd has left (evenly spaced where a fraction is never reached)."""
    n_last = len(t) - 1
    even = np.unique(np.round(np.linspace(0, n_last, count)).astype(int))
    if evac is None:
        return list(even)
    levels = []
    for j, frac in enumerate(np.linspace(0.0, 0.75, count)):
        hit = np.nonzero(evac >= frac - 1e-12)[0]
        levels.append(int(hit[0]) if hit.size else int(even[min(j, len(even) - 1)]))
    return sorted(set(levels)) if len(set(levels)) > 1 else list(even)


def _plane(grid, field):
    """A 2-D field on (x, y): the field itself in 2-D, its integral over z in 3-D."""
    field = np.asarray(field, dtype=float)
    if grid.ndim == 3:
        return field.sum(axis=2) * grid.spacing[2]
    return field


def _draw_room(ax, grid, obstacle):
    """Obstacle outline (white contour of the mask) and exit sides (thick red lines) on an (x, y) axes."""
    (x0, x1), (y0, y1) = grid.bounds[0], grid.bounds[1]
    if obstacle is not None:
        obs = np.asarray(obstacle, dtype=float)
        if obs.ndim == 3:
            obs = obs.max(axis=2)
        if obs.shape == tuple(grid.shape[:2]) and 0 < obs.max() and obs.min() < 1:
            ax.contour(grid.axes[0], grid.axes[1], obs.T, levels=[0.5], colors="white", linewidths=1.2)
    for k, j in grid.exit_sides:
        if k == 0:
            xb = (x0, x1)[j]
            ax.plot([xb, xb], [y0, y1], color="tab:red", lw=4, solid_capstyle="butt", clip_on=False)
        elif k == 1:
            yb = (y0, y1)[j]
            ax.plot([x0, x1], [yb, yb], color="tab:red", lw=4, solid_capstyle="butt", clip_on=False)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")


def _snapshots(fig, axes, result, evac):
    """Density over (x, y) at four levels, one shared colour scale (square-root norm: the thin crowd of
    the late snapshots stays visible next to the initial peak)."""
    from matplotlib.colors import PowerNorm

    grid = result.grid
    t = np.asarray(result.t, dtype=float)
    levels = _snapshot_levels(t, evac, len(axes))
    planes = [_plane(grid, result.m[n]) for n in levels]
    vmax = max(float(np.max(pl)) for pl in planes) or 1.0
    obstacle = getattr(result, "obstacle", None)
    mesh = None
    for ax, n, pl in zip(axes, levels, planes):
        mesh = ax.pcolormesh(_edges(grid.axes[0]), _edges(grid.axes[1]), np.maximum(pl, 0.0).T, shading="flat",
                             cmap="viridis", norm=PowerNorm(0.5, vmin=0.0, vmax=vmax))
        _draw_room(ax, grid, obstacle)
        what = f"m(t={t[n]:.3g})" if grid.ndim == 2 else f"int m dz (t={t[n]:.3g})"
        if evac is not None:
            what += f", {100 * evac[n]:.0f}% out"
        ax.set_title(what, fontsize="medium")
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    for ax in axes[len(levels):]:
        ax.set_axis_off()
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label="density (sqrt scale)", shrink=0.9)


def _evacuation_panel(ax, t, evac, per_side, balance):
    ax.plot(t, evac, lw=2.5, color="tab:red", label="evacuated (outflow / initial mass)")
    ax.plot(t, 1.0 - evac, lw=1.5, color="tab:blue", label="still inside")
    for lab, frac in per_side or ():
        ax.plot(t, frac, "--", lw=1.2, label=f"through {lab}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("t")
    ax.set_ylabel("fraction of the initial mass")
    title = "evacuated fraction"
    if balance is not None:
        title += f" (balance error {balance:.1e})"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def plot_result(result, path=None, oracle_mean=None):
    """Quick-look figure: density and value heat maps over (t, x), mean path, convergence history;
    2-D/3-D results add a row of density snapshots over (x, y), and results on grids with exit
    (absorbing) sides a panel of the evacuated fraction vs time.

    Parameters
    ----------
    result : MFGResult (1-D, 2-D or 3-D).  For 2-D/3-D the density panel shows the marginal on x
        (integral over the other axes) and the value panel the mid-slice u(t, x, y_mid[, z_mid]); the
        snapshot row shows m (its integral over z in 3-D) at four time levels -- with exits, when 0, 25,
        50 and 75 % of the crowd has left -- with the obstacle of ``result.obstacle`` (a
        boolean mask, e.g. from the exit-room case) outlined in white and the exit sides in red.
    path : optional file name; the figure is saved there (PNG, dpi 120, tight bounding box).
    oracle_mean : optional closed-form mean path, an array shaped (Nt+1,) or (Nt+1, d), or a
        callable t -> such an array; drawn dashed over the computed mean.

    Returns the matplotlib Figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    grid = result.grid
    t = np.asarray(result.t, dtype=float)
    m = np.asarray(result.m, dtype=float)
    u = np.asarray(result.u, dtype=float)
    x = np.asarray(grid.axes[0], dtype=float)
    names = grid.axis_names
    d = grid.ndim
    exits = grid.has_exits or bool(getattr(getattr(result, "outflow", None), "doors", None))  # or doors
    evac, per_side, balance = _evacuated(result) if exits else (None, None, None)

    fig = Figure(figsize=(13.0, 12.0) if d >= 2 else (13.0 if exits else 11.0, 8.0), layout="constrained")
    FigureCanvasAgg(fig)
    panels = fig
    if d >= 2:  # a row of (x, y) snapshots above the panels, in subfigures of their own (equal aspect)
        top, panels = fig.subfigures(2, 1, height_ratios=[1.0, 2.0])
        _snapshots(top, list(top.subplots(1, 4)), result, evac)
    heat_row, line_row = panels.subfigures(2, 1)
    ax_m, ax_u = heat_row.subplots(1, 2)
    if exits:
        ax_ev, ax_mean, ax_hist = line_row.subplots(1, 3)
        _evacuation_panel(ax_ev, t, evac, per_side, balance)
    else:
        ax_mean, ax_hist = line_row.subplots(1, 2)
    panels = heat_row
    title = f"{result.case}: " if result.case else ""
    fig.suptitle(f"{title}{result.status}, {result.iterations} iterations")

    # density / value heat maps over (t, x)
    if d == 1:
        _heat(panels, ax_m, t, x, m, "density m(t, x)", "m", "viridis")
        _heat(panels, ax_u, t, x, u, "value u(t, x)", "u", "magma")
    else:
        other = tuple(range(2, 1 + d))
        dv_other = float(np.prod(grid.spacing[1:]))
        marg = m.sum(axis=other) * dv_other
        _heat(panels, ax_m, t, x, marg, f"marginal density on x (integrated over "
              f"{', '.join(names[1:])})", "m_x", "viridis")
        mids = tuple(n // 2 for n in grid.shape[1:])
        idx = (slice(None), slice(None)) + mids
        at = ", ".join(f"{nm}={grid.axes[k + 1][i]:.3g}" for k, (nm, i) in
                       enumerate(zip(names[1:], mids)))
        _heat(panels, ax_u, t, x, u[idx], f"value u(t, x) at {at}", "u", "magma")

    # mean path per component
    mean = np.asarray(result.mean(), dtype=float)
    om = _oracle_array(oracle_mean, t, d)
    for k in range(d):
        line, = ax_mean.plot(t, mean[:, k], lw=3.0, alpha=0.55, label=f"mean {names[k]} (computed)")
        if om is not None:  # dashed, darker, on top: visible even where the two coincide
            ax_mean.plot(t, om[:, k], "--", color=line.get_color(), lw=1.3, zorder=3,
                         label=f"mean {names[k]} (closed form)")
    ax_mean.set_xlabel("t")
    ax_mean.set_ylabel("E[X_t]" if not exits else "E[X_t | still inside]")
    ax_mean.set_title("mean path")
    ax_mean.grid(True, alpha=0.3)
    ax_mean.legend(fontsize="small")

    # convergence history
    hist = result.history or {}
    drawn = False
    for key in _HISTORY_KEYS:
        vals = hist.get(key)
        if vals is None:
            continue
        vals = np.asarray(vals, dtype=float).ravel()
        if vals.size == 0:
            continue
        it = np.arange(1, vals.size + 1)
        pos = np.where(vals > 0, vals, np.nan)
        if not np.any(np.isfinite(pos)):
            continue
        ax_hist.plot(it, pos, marker="o", ms=3, lw=1.2, label=key)
        drawn = True
    if drawn:
        ax_hist.set_yscale("log")
        ax_hist.legend(fontsize="small")
    else:
        ax_hist.text(0.5, 0.5, "no convergence history", ha="center", va="center",
                     transform=ax_hist.transAxes)
    ax_hist.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_hist.set_xlabel("iteration")
    ax_hist.set_ylabel("residual")
    ax_hist.set_title("convergence history")
    ax_hist.grid(True, which="both", alpha=0.3)

    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
