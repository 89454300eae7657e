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


def plot_result(result, path=None, oracle_mean=None):
    """Four panels: density and value heat maps over (t, x), mean path, convergence history.

    Parameters
    ----------
    result : MFGResult (1-D, 2-D or 3-D).  For 2-D/3-D the density panel shows the marginal on x
        (integral over the other axes) and the value panel the mid-slice u(t, x, y_mid[, z_mid]).
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

    fig = Figure(figsize=(11.0, 8.0), layout="constrained")
    FigureCanvasAgg(fig)
    (ax_m, ax_u), (ax_mean, ax_hist) = fig.subplots(2, 2)
    title = f"{result.case}: " if result.case else ""
    fig.suptitle(f"{title}{result.status}, {result.iterations} iterations")

    # density / value heat maps over (t, x)
    if d == 1:
        _heat(fig, ax_m, t, x, m, "density m(t, x)", "m", "viridis")
        _heat(fig, ax_u, t, x, u, "value u(t, x)", "u", "magma")
    else:
        other = tuple(range(2, 1 + d))
        dv_other = float(np.prod(grid.spacing[1:]))
        marg = m.sum(axis=other) * dv_other
        _heat(fig, ax_m, t, x, marg, f"marginal density on x (integrated over "
              f"{', '.join(names[1:])})", "m_x", "viridis")
        mids = tuple(n // 2 for n in grid.shape[1:])
        idx = (slice(None), slice(None)) + mids
        at = ", ".join(f"{nm}={grid.axes[k + 1][i]:.3g}" for k, (nm, i) in
                       enumerate(zip(names[1:], mids)))
        _heat(fig, ax_u, t, x, u[idx], f"value u(t, x) at {at}", "u", "magma")

    # mean path per component
    mean = np.asarray(result.mean(), dtype=float)
    om = _oracle_array(oracle_mean, t, d)
    for k in range(d):
        line, = ax_mean.plot(t, mean[:, k], lw=3.0, alpha=0.55, label=f"mean {names[k]} (computed)")
        if om is not None:  # dashed, darker, on top: visible even where the two coincide
            ax_mean.plot(t, om[:, k], "--", color=line.get_color(), lw=1.3, zorder=3,
                         label=f"mean {names[k]} (closed form)")
    ax_mean.set_xlabel("t")
    ax_mean.set_ylabel("E[X_t]")
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
