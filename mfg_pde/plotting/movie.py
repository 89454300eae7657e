"""An animated GIF of a result's density (or value) over time: :func:`movie` (``mfg-pde movie``).

Written with ``matplotlib.animation.PillowWriter`` (Pillow ships with matplotlib: no external program).  The
number of frames is bounded: at most ``frames`` time levels, evenly spaced from t_0 to T.  The colour scale
(2-D) or the y axis (1-D) is fixed over the whole movie, so frames compare.
"""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

from . import panels as P

__all__ = ["movie", "movie_levels"]

_LOG = logging.getLogger("mfg_pde")


def movie_levels(n_levels: int, frames: int) -> np.ndarray:
    """The time levels of a movie: ``min(frames, n_levels)`` evenly spaced levels from the first to the last."""
    count = min(int(frames), int(n_levels))
    return np.unique(np.round(np.linspace(0, n_levels - 1, count)).astype(int))


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r}: expected an integer >= {low}")
    return int(value)


def movie(result_or_path, path, fps: float = 10, frames: int = 60, *, field: str = "m", style=None, **style_kw):
    """Write an animated GIF of the density (``field="m"``) or the value (``field="u"``) over time.

    result_or_path : an MFGResult, or the path of a result file (read with ``mfg_pde.load``).
    path : the GIF to write (suffix ``.gif``); written to a temporary file and renamed, so an existing file is
        replaced only by a complete movie.
    fps : frames per second.
    frames : the most frames: ``min(frames, Nt + 1)`` evenly spaced time levels (first and last included).
    field : "m" or "u".  1-D: a line over x with a fixed y axis (the style's scale for m); 2-D: an image over
        (x, y) with one colour scale for all frames, the obstacle outlined and exits in red; 3-D: the density
        integrated over z (``field="m"`` only).
    style : a :class:`~mfg_pde.plotting.Style` (figsize, dpi, font size, colour map, scale) or its fields as
        keywords.

    Returns the number of frames written.
    """
    from matplotlib.animation import PillowWriter
    from matplotlib.colors import Normalize

    result = result_or_path
    if isinstance(result_or_path, (str, os.PathLike)):
        from ..result import load

        result = load(result_or_path)
    path = os.fspath(path)
    if not path.lower().endswith(".gif"):
        raise ValueError(f"movie: path {path!r}: the Pillow writer writes GIF files; name it ....gif")
    frames = _check_int("frames", frames, 2)
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps={fps!r}: expected a positive number of frames per second") from None
    if not (np.isfinite(fps) and 0 < fps <= 100):
        raise ValueError(f"fps={fps!r}: expected a number of frames per second in (0, 100]")
    if field not in ("m", "u"):
        raise ValueError(f"movie: field={field!r}; choose 'm' (density) or 'u' (value)")
    grid = result.grid
    if grid.ndim == 3 and field == "u":
        raise ValueError("movie: field='u' of a 3-D result has no (x, y) image; use field='m' (integrated over z)")
    style = P._style(result, style, style_kw)
    t = np.asarray(result.t, dtype=float)
    levels = movie_levels(len(t), frames)
    data = np.asarray(result.m if field == "m" else result.u, dtype=float)
    symbol = "m" if field == "m" else "u"

    with style.context():
        if grid.ndim == 1:
            fig = P.new_figure(style, (6.4, 4.0))
            ax = fig.subplots()
            x = grid.axes[0]
            if field == "m":
                vmax = float(np.max(data[levels]))
                line, = ax.plot(x, P._shown_density(data[levels[0]], style, vmax), lw=2.0)
                P._density_yscale(ax, style, vmax)
            else:
                lo, hi = float(np.min(data[levels])), float(np.max(data[levels]))
                pad = 0.05 * (hi - lo) or 1.0
                line, = ax.plot(x, data[levels[0]], lw=2.0, color="tab:purple")
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_xlim(*grid.bounds[0])
            ax.set_xlabel(style.label("x"))
            ax.set_ylabel(style.label(symbol, "density m" if field == "m" else "value u"))
            ax.grid(True, alpha=0.3)

            def draw(n):
                line.set_ydata(P._shown_density(data[n], style, vmax) if field == "m" else data[n])
        else:
            fig = P.new_figure(style, (6.0, 0.9 + 4.6 * min(max(P.aspect(grid), 0.25), 2.0)))
            ax = fig.subplots()
            planes = [P.plane(grid, data[n]) for n in levels]
            if field == "m":
                norm = style.norm(max(float(np.max(pl)) for pl in planes), plane=True)
                cmap, label = style.colormap("density"), style.scale_label(style.label("m"), plane=True)
                planes = [np.maximum(pl, 0.0) for pl in planes]
            else:
                norm = Normalize(min(float(np.min(pl)) for pl in planes), max(float(np.max(pl)) for pl in planes))
                cmap, label = style.colormap("value"), style.label("u")
            mesh = ax.pcolormesh(P._grid_edges(grid, 0), P._grid_edges(grid, 1), planes[0].T, shading="flat",
                                 cmap=cmap, norm=norm)
            P.draw_room(ax, grid, getattr(result, "obstacle", None), P.doors_of(result))
            ax.set_xlabel(style.label("x"))
            ax.set_ylabel(style.label("y"))
            style.apply(fig.colorbar(mesh, ax=ax, label=label).ax)
            by_level = dict(zip(levels.tolist(), planes))

            def draw(n):
                mesh.set_array(by_level[int(n)].T.ravel())
        style.apply(ax)
        name = _title_prefix(result)

        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(suffix=".gif", prefix=".movie-", dir=directory)
        os.close(fd)
        try:
            writer = PillowWriter(fps=fps)
            with writer.saving(fig, tmp, style.dpi):
                for n in levels:
                    draw(n)
                    # the level in the title keeps every frame distinct (Pillow merges identical frames)
                    ax.set_title(f"{name}{symbol} at t = {t[n]:.4g} (level {n} of {len(t) - 1})",
                                 fontsize="medium")
                    writer.grab_frame()
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    _LOG.info("movie: wrote %s (%d frames of %d time levels, %g fps)", path, len(levels), len(t), fps)
    return len(levels)


def _title_prefix(result) -> str:
    """'case: ' for titles (empty without a name)."""
    from .dashboard import describe

    name = describe(result)[0]
    return f"{name}: " if name else ""
