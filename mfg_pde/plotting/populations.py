"""Quick-look figure of a multi-population result (``result.MultiPopulationResult``).

1-D: one space-time image of each population's density, the final densities of all populations on one
axis, and their mean paths.  2-D: each population's final density, and an overlay in which population k
is drawn in its own colour (red, blue, green, ...) with an intensity proportional to its density, so that
segregated crowds show as separate colours and mixed regions as blends.  Built with the object-oriented API
(Agg canvas), like ``dashboard``."""

from __future__ import annotations

import numpy as np

from .style import Style

_COLOURS = np.array([[0.84, 0.15, 0.16], [0.12, 0.47, 0.71], [0.17, 0.63, 0.17], [0.58, 0.40, 0.74],
                     [1.00, 0.50, 0.05]])


def plot_populations(result, path=None, style: Style | None = None):
    """Draw ``result`` (see the module docstring); save to ``path`` when given; return the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style = style if style is not None else Style()
    K, grid, t = result.K, result.grid, np.asarray(result.t)
    if grid.ndim == 1:
        ncol = K + 2
        figsize = style.figsize or (3.2 * ncol, 3.2)
    else:
        ncol = K + 1
        figsize = style.figsize or (3.4 * ncol, 3.2)
    fig = Figure(figsize=figsize, dpi=style.dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncol)
    m = result.m
    if grid.ndim == 1:
        x = grid.axes[0]
        for k in range(K):
            ax = axes[k]
            im = ax.imshow(m[k].T, origin="lower", aspect="auto", cmap=style.cmap,
                           extent=[t[0], t[-1], x[0], x[-1]])
            fig.colorbar(im, ax=ax)
            ax.set(title=f"{result.names[k]}: m(t, x)", xlabel="t", ylabel="x")
        ax = axes[K]
        for k in range(K):
            ax.plot(x, m[k][0], color=_COLOURS[k % 5], ls=":", lw=1)
            ax.plot(x, m[k][-1], color=_COLOURS[k % 5], label=result.names[k])
        ax.set(title="densities at t = 0 (dotted) and T", xlabel="x")
        ax.legend()
        ax = axes[K + 1]
        means = result.mean()
        for k in range(K):
            ax.plot(t, means[k, :, 0], color=_COLOURS[k % 5], label=result.names[k])
        ax.set(title="mean positions", xlabel="t", ylabel="mean x")
        ax.legend()
    else:
        x, y = grid.axes[0], grid.axes[1]
        ext = [x[0], x[-1], y[0], y[-1]]
        last = m[:, -1] if grid.ndim == 2 else m[:, -1].sum(axis=tuple(range(3, m.ndim - 1)))
        rgb = np.ones(last.shape[1:] + (3,))
        for k in range(K):
            ax = axes[k]
            im = ax.imshow(last[k].T, origin="lower", extent=ext, cmap=style.cmap)
            fig.colorbar(im, ax=ax)
            ax.set(title=f"{result.names[k]}: m(T, x, y)", xlabel="x", ylabel="y")
            w = last[k] / max(float(last[k].max()), 1e-300)
            rgb -= w[..., None] * (1.0 - _COLOURS[k % 5])[None, None, :]
        ax = axes[K]
        ax.imshow(np.clip(rgb, 0, 1).transpose(1, 0, 2), origin="lower", extent=ext)
        ax.set(title="all populations at T", xlabel="x", ylabel="y")
    fig.suptitle(f"{result.case or 'several populations'}: {result.status}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=style.dpi)
    return fig
