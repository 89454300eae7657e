"""Figures: the panels, the dashboard, style options (API and CLI), the movie and the README's paper figure.

Every figure is opened and checked: the saved image is figsize * dpi pixels, no axes is empty, the drawn data
lie within the axes limits, images span the grid's bounds, and what is drawn is the result's data.  All on
hand-built MFGResult objects (tiny grids, no solver) except one ``mfg-pde run --plot``.
"""

from __future__ import annotations

import os
import re

import matplotlib
import numpy as np
import pytest
from PIL import Image  # Pillow: a dependency of matplotlib

import mfg_pde as mp
from mfg_pde import cli
from mfg_pde import plotting as mpl_plot
from mfg_pde.model.grid import Grid
from mfg_pde.plotting import Style, StyleError
from mfg_pde.result import MFGResult, OutflowHistory

matplotlib.use("Agg")   # the figures use the Agg canvas anyway; nothing here may open a window

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


# ---------------------------------------------------------------------------------- results from arrays
def _result(ndim=1, nt=6, bounds=None, shape=None, symmetric=False, case="synthetic-case", history=True):
    """A smooth drifting, spreading Gaussian (centred on the domain when symmetric=True)."""
    if ndim == 1:
        grid = Grid([bounds or (-2.0, 3.0)], shape or 16)
    elif ndim == 2:
        grid = Grid(bounds or [(0.0, 4.0), (0.0, 1.0)], shape or (24, 8))
    else:
        grid = Grid(bounds or [(-1.0, 1.0)] * 3, shape or (5, 6, 7))
    t = np.linspace(0.0, 1.0, nt + 1)
    xs = grid.mesh()
    centre = [0.5 * (lo + hi) for lo, hi in grid.bounds]
    drift = 0.0 if symmetric else 0.4
    m = np.stack([np.exp(-sum((x - c - (drift * tk if k == 0 else 0.0)) ** 2 for k, (x, c) in
                              enumerate(zip(xs, centre))) / (0.1 + 0.2 * tk)) for tk in t])
    m /= grid.integrate(m)[(slice(None),) + (None,) * ndim]
    u = np.stack([(1.0 - tk) * sum((x - c) ** 2 for x, c in zip(xs, centre)) + 0.1 * xs[0] for tk in t])
    hist = {"residual": np.array([1.0, 1e-2, 1e-4, 1e-7]), "hjb_residual": np.array([0.5, 5e-3, 5e-5, 5e-8]),
            "fp_residual": np.array([0.2, 2e-3, 2e-5, 2e-8])} if history else {}
    return MFGResult(grid=grid, t=t, u=u, m=m, converged=True, status="converged", iterations=4, history=hist,
                     params={"N": 16, "sigma": 0.5, "beta": 2.0, "figure": "out.png"},
                     solver={"method": "anderson", "tol": 1e-8}, case=case)


def _exit_result(nt=20, rate=8.0):
    """2-D room with the exit x = 1 (hi side): the mass decays like exp(-rate t) (below 1e-3 from t ~ 0.86)
    and the outflow record balances it exactly."""
    grid = Grid([(0.0, 2.0), (0.0, 1.0)], (16, 8), bc=[("reflecting", "exit"), "reflecting"])
    t = np.linspace(0.0, 1.0, nt + 1)
    x, y = grid.mesh()
    shape = np.stack([np.exp(-((x - 0.6 - 0.8 * tk) ** 2 + (y - 0.5) ** 2) / 0.05) for tk in t])
    mass = np.exp(-rate * t)
    m = shape / grid.integrate(shape)[:, None, None] * mass[:, None, None]
    per_side = np.zeros((nt, 2, 2))
    per_side[:, 0, 1] = mass[:-1] - mass[1:]
    cumulative = np.concatenate([[0.0], np.cumsum(per_side.sum(axis=(1, 2)))])
    out = OutflowHistory(t=t, mass=grid.integrate(m), per_side=per_side, cumulative=cumulative, sides=["x hi"])
    obstacle = np.zeros(grid.shape, dtype=bool)
    obstacle[10:12, 2:5] = True
    u = np.stack([(1.0 - tk) * (2.0 - x) for tk in t])
    return MFGResult(grid=grid, t=t, u=u, m=m, converged=True, status="converged", iterations=3,
                     history={"residual": np.array([1.0, 1e-3, 1e-9])}, params={"N": 16, "kappa": 1.0},
                     case="room", outflow=out, obstacle=obstacle)


# ---------------------------------------------------------------------------------- checks
def _data_artists(ax):
    """Artists of ax that carry data: lines with finite points, meshes, quivers, images, contour sets, patches."""
    found = [ln for ln in ax.get_lines() if np.any(np.isfinite(np.asarray(ln.get_ydata(), dtype=float)))]
    found += [c for c in ax.collections if getattr(c, "get_array", lambda: None)() is not None or
              len(getattr(c, "get_offsets", lambda: [])()) or len(getattr(c, "get_paths", lambda: [])())]
    found += list(ax.images) + list(ax.patches)
    return found


def _check_within_limits(ax):
    """Every data line (drawn in data coordinates) and every mesh lies within the axes limits."""
    x0, x1 = sorted(ax.get_xlim())
    y0, y1 = sorted(ax.get_ylim())
    tol_x, tol_y = 1e-9 * (x1 - x0), 1e-9 * (y1 - y0)
    for ln in ax.get_lines():
        if ln.get_transform() is not ax.transData:   # axhline / axvline: axes coordinates
            continue
        xd = np.asarray(ln.get_xdata(), dtype=float)
        yd = np.asarray(ln.get_ydata(), dtype=float)
        ok = np.isfinite(xd) & np.isfinite(yd)
        if ax.get_yscale() == "log":
            ok &= yd > 0
        assert np.all((xd[ok] >= x0 - tol_x) & (xd[ok] <= x1 + tol_x)), (ax.get_title(), ln.get_label())
        assert np.all((yd[ok] >= y0 - tol_y) & (yd[ok] <= y1 + tol_y)), (ax.get_title(), ln.get_label(), (y0, y1))
    for mesh in _meshes(ax):
        coords = mesh.get_coordinates()
        assert coords[..., 0].min() >= x0 - tol_x and coords[..., 0].max() <= x1 + tol_x, ax.get_title()
        assert coords[..., 1].min() >= y0 - tol_y and coords[..., 1].max() <= y1 + tol_y, ax.get_title()


def _meshes(ax):
    return [c for c in ax.collections if type(c).__name__ == "QuadMesh"]


def _extent(mesh):
    c = mesh.get_coordinates()
    return c[..., 0].min(), c[..., 0].max(), c[..., 1].min(), c[..., 1].max()


def _check_figure(fig, path, figsize, dpi):
    """Saved size is figsize * dpi; no empty axes; data within limits."""
    w, h = Image.open(path).size
    assert abs(w - figsize[0] * dpi) <= 1 and abs(h - figsize[1] * dpi) <= 1, ((w, h), figsize, dpi)
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        assert _data_artists(ax), f"empty axes: {ax.get_title()!r} {ax.get_label()!r}"
        if ax.get_label() == "<colorbar>":
            continue
        _check_within_limits(ax)


def _titled(fig, start):
    found = [a for a in fig.axes if a.get_title().startswith(start)]
    assert found, (start, [a.get_title() for a in fig.axes])
    return found[0]


# ---------------------------------------------------------------------------------- the dashboard
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_dashboard_size_content_and_limits(tmp_path, ndim):
    res = _result(ndim)
    png = tmp_path / "d.png"
    oracle = res.mean() + 0.01
    fig = mpl_plot.plot_result(res, png, oracle_mean=oracle, figsize=(9, 7), dpi=40)
    _check_figure(fig, png, (9, 7), 40)
    # title: the case, its key parameters (not the output file), the status
    title = fig.get_suptitle()
    assert title.startswith("synthetic-case: N=16, sigma=0.5, beta=2") and "converged, 4 iterations" in title
    assert "figure" not in title and "out.png" not in title
    # the mean path: computed (solid) and the closed form (dashed) per component, the result's data
    mean_ax = _titled(fig, "mean path")
    lines = mean_ax.get_lines()
    assert len(lines) == 2 * ndim
    mean = res.mean()
    for k in range(ndim):
        label = lines[2 * k].get_label()
        if "symmetric" in label:                     # a symmetric axis: drawn as exactly 0
            assert np.all(lines[2 * k].get_ydata() == 0) and np.max(np.abs(mean[:, k])) < 1e-12
        elif "constant to round-off" in label:       # constant to round-off (the centre of an axis)
            np.testing.assert_allclose(lines[2 * k].get_ydata(), mean[:, k], rtol=1e-12)
            assert np.ptp(lines[2 * k].get_ydata()) == 0 and np.ptp(mean[:, k]) < 1e-12
        else:
            np.testing.assert_allclose(lines[2 * k].get_ydata(), mean[:, k], rtol=1e-14)
        assert lines[2 * k + 1].get_linestyle() == "--"
        np.testing.assert_allclose(lines[2 * k + 1].get_ydata(), oracle[:, k], rtol=1e-14)
    hist = _titled(fig, "convergence history")
    assert hist.get_yscale() == "log"
    grid = res.grid
    if ndim == 1:
        m_ax = _titled(fig, "density m(t, x)")
        (mesh,) = _meshes(m_ax)
        np.testing.assert_allclose(np.asarray(mesh.get_array()).ravel(), res.m.T.ravel(), rtol=1e-13)
        dt = res.t[1] - res.t[0]
        np.testing.assert_allclose(_extent(mesh), (-dt / 2, 1 + dt / 2, *grid.bounds[0]), atol=1e-12)
    else:
        snaps = [a for a in fig.axes if re.match(r"(m|int m dz)\(t=", a.get_title())]
        assert len(snaps) == 4
        for ax in snaps:
            (mesh,) = _meshes(ax)
            np.testing.assert_allclose(_extent(mesh), (*grid.bounds[0], *grid.bounds[1]), atol=1e-12)
            assert ax.get_aspect() == 1.0
        quivers = [c for a in fig.axes for c in a.collections if type(c).__name__ == "Quiver"]
        assert len(quivers) == 1 and quivers[0].N > 0


def test_dashboard_natural_size_follows_the_aspect_ratio(tmp_path):
    """Without a figsize the snapshot row is as high as the domain's aspect needs: a flat room gives a low
    figure, a square one a higher figure, a tall one is narrower; no big empty bands above the images."""
    flat = _result(2, bounds=[(0.0, 4.0), (0.0, 1.0)], shape=(24, 8))
    square = _result(2, bounds=[(0.0, 2.0), (0.0, 2.0)], shape=(12, 12))
    tall = _result(2, bounds=[(0.0, 1.0), (0.0, 3.0)], shape=(8, 24))
    _, hf = mpl_plot.natural_figsize(flat)
    ws, hs = mpl_plot.natural_figsize(square)
    wt, ht = mpl_plot.natural_figsize(tall)
    assert hf < hs < ht and wt < ws
    for res in (flat, square, tall):
        png = tmp_path / "n.png"
        fig = mpl_plot.plot_result(res, png, dpi=30)
        _check_figure(fig, png, mpl_plot.natural_figsize(res), 30)
        snap = _titled(fig, "m(t=0)")
        fig.canvas.draw()
        box = snap.get_window_extent()                  # the image's box after the equal aspect
        row = snap.get_figure().bbox                    # the snapshot row (a subfigure)
        # the row is the image plus its title and tick labels (about 0.85 inch): no empty band
        assert (row.height - box.height) / 30 < 1.0, (box.height, row.height)


def test_dashboard_with_exits(tmp_path):
    res = _exit_result()
    png = tmp_path / "room.png"
    fig = mpl_plot.plot_result(res, png, figsize=(12, 9), dpi=30)
    _check_figure(fig, png, (12, 9), 30)
    titles = [a.get_title() for a in fig.axes]
    assert sum("% out" in t for t in titles) == 4
    ev = _titled(fig, "evacuated fraction")
    evac = ev.get_lines()[0]
    np.testing.assert_allclose(evac.get_ydata(), res.outflow.evacuated, rtol=1e-12)
    snap = _titled(fig, "m(t=0)")
    assert len(snap.collections) >= 2                  # density mesh + obstacle outline
    assert any(ln.get_color() == "tab:red" for ln in snap.get_lines())    # the exit side


def test_bad_oracle_shape_and_unknown_style_option():
    res = _result(1)
    with pytest.raises(ValueError, match="oracle_mean"):
        mpl_plot.plot_result(res, oracle_mean=np.zeros(3))
    with pytest.raises(TypeError, match="did you mean 'dpi'"):
        mpl_plot.plot_result(res, dpii=100)


# ---------------------------------------------------------------------------------- panels
def test_density_1d_lines_and_log_scale():
    res = _result(1, nt=8)
    ax = mpl_plot.density(res, t=[0.0, 0.5, 1.0])
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["t = 0", "t = 0.5", "t = 1"]
    for ln, n in zip(lines, (0, 4, 8)):
        np.testing.assert_array_equal(ln.get_ydata(), res.m[n])
    assert ax.get_xlim() == res.grid.bounds[0] and ax.get_ylim()[0] == 0.0
    _check_within_limits(ax)
    ax = mpl_plot.density(res, scale="log", log_floor=1e-3)      # one time (T), log axis
    (ln,) = ax.get_lines()
    y = np.asarray(ln.get_ydata())
    assert ax.get_yscale() == "log"
    floor = 1e-3 * res.m[-1].max()
    assert np.all(np.isnan(y[res.m[-1] < floor])) and np.all(y[res.m[-1] >= floor] == res.m[-1][res.m[-1] >= floor])
    _check_within_limits(ax)
    with pytest.raises(ValueError, match="outside the result's time range"):
        mpl_plot.density(res, t=2.0)


def test_density_2d_image_style_and_units():
    res = _result(2)
    ax = mpl_plot.density(res, t=0.5, cmap="magma", scale="sqrt", units={"x": "m", "y": "m"})
    (mesh,) = _meshes(ax)
    np.testing.assert_allclose(np.asarray(mesh.get_array()).ravel(), res.m[3].T.ravel(), rtol=1e-13)
    assert _extent(mesh) == pytest.approx((*res.grid.bounds[0], *res.grid.bounds[1]))
    assert mesh.get_cmap().name.startswith("magma") and type(mesh.norm).__name__ == "PowerNorm"
    assert ax.get_xlabel() == "x [m]" and ax.get_ylabel() == "y [m]"
    assert mpl_plot.density(res).get_xlabel() == "x"             # no unit: a bare label, no "[1]"
    _check_within_limits(ax)


def test_snapshots_row_shares_one_scale():
    res = _result(2, nt=8)
    axes = mpl_plot.snapshots(res, times=[0.0, 0.5, 1.0])
    assert len(axes) == 3
    norms = {(m.norm.vmin, m.norm.vmax) for ax in axes for m in _meshes(ax)}
    assert len(norms) == 1 and norms.pop() == (0.0, res.m[[0, 4, 8]].max())
    one_d = mpl_plot.snapshots(_result(1, nt=8), count=3)
    assert len(one_d.get_lines()) == 3


@pytest.mark.parametrize("field", ["m", "u", "alpha"])
def test_spacetime_1d(field):
    res = _result(1)
    ax = mpl_plot.spacetime(res, field=field)
    (mesh,) = _meshes(ax)
    want = {"m": res.m, "u": res.u, "alpha": res.alpha[..., 0]}[field]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).ravel(), want.T.ravel(), rtol=1e-13, atol=1e-15)
    assert ax.get_xlabel() == "t" and ax.get_ylabel() == "x"
    if field == "alpha":    # signed: a diverging map centred on 0
        assert mesh.norm.vmin == -mesh.norm.vmax
    _check_within_limits(ax)
    with pytest.raises(ValueError, match="field"):
        mpl_plot.spacetime(res, field="v")


def test_control_quiver_where_the_agents_are_and_streamlines():
    res = _exit_result()
    ax = mpl_plot.control(res, t=0.5, mass_floor=1e-2)
    (q,) = [c for c in ax.collections if type(c).__name__ == "Quiver"]
    assert q.N > 0
    n = 10
    dens = res.m[n]
    xi = np.searchsorted(res.grid.axes[0], q.X)
    yi = np.searchsorted(res.grid.axes[1], q.Y)
    assert np.all(dens[xi, yi] >= 1e-2 * dens.max())            # no arrows where nobody is
    assert not np.any(res.obstacle[xi, yi])                       # nor in the obstacle
    np.testing.assert_allclose(q.U, res.alpha[n, xi, yi, 0])
    _check_within_limits(ax)
    ax = mpl_plot.control(res, kind="stream")
    assert any(type(c).__name__ == "LineCollection" for c in ax.collections)
    with pytest.raises(ValueError, match="1-D"):
        mpl_plot.control(_result(1))


def test_mean_path_symmetric_is_zero_not_round_off_noise():
    res = _result(1, bounds=(-2.0, 2.0), symmetric=True)
    res.m = res.m * (1 + 1e-15 * np.random.default_rng(1).standard_normal(res.m.shape))   # round-off asymmetry
    assert 0 < np.max(np.abs(res.mean())) < 1e-13                 # round-off, not zero
    ax = mpl_plot.mean_path(res, closed_form=lambda t: 0.0 * t)
    computed, closed = ax.get_lines()
    assert np.all(computed.get_ydata() == 0.0)
    assert "symmetric" in computed.get_label() and "round-off" in computed.get_label()
    y0, y1 = ax.get_ylim()
    assert y1 - y0 > 0.1                                          # the axis is not scaled to 1e-16
    assert closed.get_linestyle() == "--"
    _check_within_limits(ax)
    # a real drift is drawn as computed
    moving = _result(1)
    ax = mpl_plot.mean_path(moving)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), moving.mean()[:, 0], rtol=1e-14)


def test_mean_and_variance_with_exits_stop_where_the_mass_is_gone():
    res = _exit_result()
    left = res.outflow.mass / res.outflow.mass[0]
    gone = left < 1e-3
    assert gone.any() and not gone.all()
    for panel, symbol in ((mpl_plot.mean_path, "E"), (mpl_plot.variance_path, "Var")):
        ax = panel(res)
        ln = ax.get_lines()[0]
        y = np.asarray(ln.get_ydata(), dtype=float)
        assert np.all(np.isnan(y[gone])) and np.all(np.isfinite(y[~gone]))
        assert ax.get_ylabel() == f"{symbol}[X_t | still inside]" and "still inside" in ax.get_title()
        assert ax.patches, "no grey band where the mass is gone"
        _check_within_limits(ax)
    var_ax = mpl_plot.variance_path(_result(2), closed_form=np.ones((7, 2)))
    cov = _result(2).covariance()
    np.testing.assert_allclose(var_ax.get_lines()[0].get_ydata(), cov[:, 0, 0], rtol=1e-14)
    np.testing.assert_allclose(var_ax.get_lines()[3].get_ydata(), 1.0)


def test_outflow_panel():
    res = _exit_result()
    ax = mpl_plot.outflow(res)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), 1 - res.outflow.evacuated)
    assert "balance error" in ax.get_title()
    _check_within_limits(ax)
    ax = mpl_plot.outflow(res, rate=True)
    dt = res.t[1] - res.t[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), res.outflow.per_side[:, 0, 1] / dt)
    with pytest.raises(ValueError, match="no exit side"):
        mpl_plot.outflow(_result(1))


def test_residuals_panel():
    res = _result(1)
    ax = mpl_plot.residuals(res)
    assert ax.get_yscale() == "log"
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["residual", "hjb_residual", "fp_residual", "tol 1e-08"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), res.history["residual"])
    _check_within_limits(ax)
    empty = mpl_plot.residuals(_result(1, history=False))
    assert empty.get_lines() == [] and [t.get_text() for t in empty.texts] == ["no convergence history"]


def test_panels_compose_on_given_axes_with_font_size(tmp_path):
    res = _result(1)
    fig = mpl_plot.panels.new_figure(Style(dpi=50, font_size=14), (9, 3))
    axes = fig.subplots(1, 3)
    assert mpl_plot.density(res, axes[0], font_size=14) is axes[0]
    assert mpl_plot.mean_path(res, axes[1], font_size=14) is axes[1]
    assert mpl_plot.residuals(res, axes[2], font_size=14) is axes[2]
    fig.savefig(tmp_path / "p.png", dpi=50)
    assert Image.open(tmp_path / "p.png").size == (450, 150)
    assert axes[1].xaxis.get_ticklabels()[0].get_fontsize() == 14
    assert axes[1].title.get_fontsize() == pytest.approx(14 * 1.2)      # "large"


# ---------------------------------------------------------------------------------- style errors
@pytest.mark.parametrize("kw, param, words", [
    ({"cmap": "viridiss"}, "cmap", ["did you mean 'viridis'", "magma", "valid names include"]),
    ({"cmap": "nope"}, "cmap", ["valid names include", "viridis"]),
    ({"scale": "lg"}, "scale", ["linear, log, sqrt"]),
    ({"figsize": "8"}, "figsize", ["WIDTH,HEIGHT"]),
    ({"figsize": "8,four"}, "figsize", ["WIDTH,HEIGHT"]),
    ({"figsize": (8, -1)}, "figsize", ["positive"]),
    ({"dpi": 0}, "dpi", ["positive"]),
    ({"font_size": "big"}, "font_size", ["positive number"]),
])
def test_bad_style_options_name_the_parameter(kw, param, words):
    with pytest.raises(StyleError) as info:
        Style(**kw)
    assert info.value.param == param and str(info.value).startswith(f"{param}=")
    for w in words:
        assert w in str(info.value)


def test_figsize_strings():
    assert Style(figsize="8,4").figsize == (8.0, 4.0)
    assert Style(figsize="8x4.5").figsize == (8.0, 4.5)


# ---------------------------------------------------------------------------------- movie
@pytest.mark.parametrize("ndim, nt, frames, expect", [(1, 30, 12, 12), (2, 6, 60, 7)])
def test_movie_frames_and_size(tmp_path, ndim, nt, frames, expect):
    res = _result(ndim, nt=nt)
    gif = tmp_path / "m.gif"
    n = mpl_plot.movie(res, gif, fps=5, frames=frames, figsize=(4, 3), dpi=30)
    assert n == expect
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == expect and im.size == (120, 90)
    assert not [p for p in os.listdir(tmp_path) if p != "m.gif"]     # no temporary file left


def test_movie_from_a_file_and_bad_options(tmp_path):
    res = _exit_result(nt=8)
    h5 = tmp_path / "r.h5"
    res.save(h5)
    gif = tmp_path / "r.gif"
    import mfg_pde as mp

    assert mp.plotting.movie(str(h5), gif, frames=4, dpi=20, scale="sqrt") == 4
    with Image.open(gif) as im:
        assert im.n_frames == 4
    assert mpl_plot.movie(res, tmp_path / "u.gif", frames=3, field="u", dpi=20) == 3     # the value, 2-D
    with pytest.raises(ValueError, match="GIF"):
        mpl_plot.movie(res, tmp_path / "m.mp4")
    with pytest.raises(ValueError, match="frames"):
        mpl_plot.movie(res, gif, frames=1)
    with pytest.raises(StyleError, match="cmap"):
        mpl_plot.movie(res, gif, cmap="nope")


# ---------------------------------------------------------------------------------- CLI
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "r.h5"
    _result(2, nt=6).save(path)
    return path


def test_cli_plot_style_options_reach_the_figure(saved, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert cli.main(["plot", str(saved), "--out", str(png), "--dpi", "30", "--figsize", "8,6",
                     "--font-size", "11", "--cmap", "magma", "--scale", "log"]) == 0
    assert Image.open(png).size == (240, 180)
    assert str(png) in capsys.readouterr().out
    pdf = tmp_path / "s.pdf"
    assert cli.main(["plot", str(saved), "--out", str(pdf), "--figsize", "8x6"]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("argv, words", [
    (["--cmap", "magmaa"], ["--cmap magmaa", "did you mean 'magma'", "valid names include"]),
    (["--scale", "lg"], ["--scale lg", "linear, log, sqrt"]),
    (["--figsize", "8"], ["--figsize 8", "WIDTH,HEIGHT"]),
    (["--dpi", "many"], ["--dpi many", "positive number"]),
    (["--dpi", "-3"], ["--dpi -3", "positive"]),
])
def test_cli_bad_style_options(saved, tmp_path, capsys, argv, words):
    png = tmp_path / "never.png"
    assert cli.main(["plot", str(saved), "--out", str(png), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mfg-pde: error:") and len(err.splitlines()) == 1
    for w in words:
        assert w in err
    assert not png.exists()


def test_cli_movie(saved, tmp_path, capsys):
    assert cli.main(["movie", str(saved), "--frames", "5", "--fps", "4", "--dpi", "20", "--figsize", "5,4"]) == 0
    gif = saved.with_suffix(".gif")
    with Image.open(gif) as im:
        assert im.n_frames == 5 and im.size == (100, 80)
    assert "(5 frames)" in capsys.readouterr().out
    assert cli.main(["movie", str(saved), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "GIF" in capsys.readouterr().err
    assert cli.main(["movie", str(saved), "--frames", "1"]) == 2


def test_cli_run_plot_with_style(tmp_path, capsys):
    png = tmp_path / "run.png"
    # style options without --plot: refused before the solve
    assert cli.main(["run", "lqg", "-q", "--set", "N=40", "--set", "Nt=20", "--dpi", "50"]) == 2
    assert "--dpi" in capsys.readouterr().err
    rc = cli.main(["run", "lqg", "-q", "--set", "N=40", "--set", "Nt=20", "--plot", str(png), "--dpi", "40",
                   "--figsize", "10,5", "--cmap", "cividis"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and f"wrote {png}" in out
    assert Image.open(png).size == (400, 200)


def test_cli_solve_figure_with_style(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text(
        "import mfg_pde as mp\n"
        "grid = mp.Grid([(-2, 2)], 24)\n"
        "problem = mp.MFGProblem(grid, T=0.5, Nt=10, sigma=0.8, m0=mp.gaussian(grid, mean=0.0, std=0.5),\n"
        "                        coupling=mp.QuadraticInteraction(beta=1.0))\n")
    assert cli.main(["solve", "tiny.py", "-q", "--cmap", "magma"]) == 2           # style without --figure
    assert "--figure" in capsys.readouterr().err
    assert cli.main(["solve", "tiny.py", "-q", "--figure", "t.png", "--dpi", "25", "--figsize", "12,8"]) == 0
    assert "wrote t.png" in capsys.readouterr().out
    assert Image.open("t.png").size == (300, 200)


# ---------------------------------------------------------------------------------- README
def test_readme_paper_figure_example(tmp_path, monkeypatch):
    """The README's "Figures for papers" block runs as written (on a saved result named as in the README)."""
    with open(README) as f:
        text = f.read()
    section = text.split("## Figures for papers", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    _result(1, nt=10).save("lqg.h5")
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    with open("lqg-paper.pdf", "rb") as f:
        assert f.read(5) == b"%PDF-"
    style, fig = scope["style"], scope["fig"]
    w, h = Image.open("lqg-paper.png").size
    assert (w, h) == (2160, 720) == (round(style.figsize[0] * style.dpi), round(style.figsize[1] * style.dpi))
    _check_figure(fig, "lqg-paper.png", style.figsize, style.dpi)
    a, b, c = scope["a"], scope["b"], scope["c"]
    assert len(_meshes(a)) == 1 and len(b.get_lines()) == 3
    assert [ln.get_linestyle() for ln in c.get_lines()] == ["-", "--"]
    assert a.xaxis.get_ticklabels()[0].get_fontsize() == 8


# ---------------------------------------------------------------------------------- defaults, titles, units
def test_default_scale_sqrt_for_plane_images_linear_elsewhere():
    res2 = _result(2)
    (mesh,) = _meshes(mpl_plot.density(res2))
    assert type(mesh.norm).__name__ == "PowerNorm" and mesh.norm.gamma == 0.5
    assert "sqrt scale" in mesh.colorbar.ax.get_ylabel()
    (mesh,) = _meshes(mpl_plot.density(res2, scale="linear"))
    assert type(mesh.norm).__name__ == "Normalize" and "scale" not in mesh.colorbar.ax.get_ylabel()
    (mesh,) = _meshes(mpl_plot.spacetime(_result(1)))
    assert type(mesh.norm).__name__ == "Normalize"
    (mesh,) = _meshes(mpl_plot.spacetime(_result(1), scale="log"))
    assert type(mesh.norm).__name__ == "LogNorm" and mesh.norm.vmin == pytest.approx(1e-6 * _result(1).m.max())


def test_title_of_a_plain_solve_and_units_from_the_result():
    res = _result(1, case=None)
    res.params = {"T": 1.0, "Nt": 6, "sigma": 0.8, "grid": res.grid.describe(), "name": "crowd",
                  "coupling": {"type": "quadratic-interaction", "beta": 2.0}, "units": {"x": "km", "t": "h"}}
    res.status = "converged (auto: anderson won; a long story of the race that does not belong in a title)"
    fig = mpl_plot.plot_result(res, dpi=30)
    head, second = fig.get_suptitle().split("\n")
    assert head == "crowd: T=1, sigma=0.8, quadratic-interaction(beta=2)"
    assert second == "converged, 4 iterations; grid 16, Nt 6"
    m_ax = _titled(fig, "density m(t, x)")
    assert m_ax.get_xlabel() == "t [h]" and m_ax.get_ylabel() == "x [km]"
    assert _titled(fig, "mean path").get_ylabel() == "E[X_t] [km]"
    assert _titled(fig, "variance").get_ylabel() == "Var[X_t] [km^2]"


def test_the_checks_catch_empty_axes_wrong_sizes_and_data_outside_the_limits(tmp_path):
    """The figure checks above fail where they should (so that their passing means something)."""
    fig, (a, b) = mpl_plot.subplots(1, 2, figsize=(4, 2), dpi=20)
    a.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "f.png")
    with pytest.raises(AssertionError, match="empty axes"):
        _check_figure(fig, tmp_path / "f.png", (4, 2), 20)
    b.plot([0, 1], [0, 1])
    _check_figure(fig, tmp_path / "f.png", (4, 2), 20)
    with pytest.raises(AssertionError):
        _check_figure(fig, tmp_path / "f.png", (4, 2), 30)
    a.set_ylim(0, 0.5)
    with pytest.raises(AssertionError):
        _check_within_limits(a)


def test_doors_are_drawn_along_their_faces_and_their_outflow_apart():
    """A room with two doors on one side: the image draws each door along its own faces (not the whole side),
    and the outflow panel shows each door's share, which adds up to the evacuated fraction."""
    grid = mp.Grid([(0, 1), (0, 1)], 24)
    doors = [mp.Door(("x", "hi"), mp.Interval(0.1, 0.3), name="low"),
             mp.Door(("x", "hi"), mp.Interval(0.6, 0.9), cost=0.2, name="high")]
    pb = mp.MFGProblem(grid, T=0.6, Nt=12, sigma=0.3, m0=mp.gaussian(grid, (0.5, 0.5), (0.12, 0.12)),
                       potential=np.ones(grid.shape), terminal_cost=np.ones(grid.shape), doors=doors)
    res = mp.solve(pb, method="picard")
    ax = mpl_plot.density(res, t=0.3)
    red = [ln for ln in ax.get_lines() if ln.get_color() == "tab:red"]
    spans = sorted((float(min(ln.get_ydata())), float(max(ln.get_ydata()))) for ln in red)
    edges = np.linspace(0, 1, 25)
    assert np.all([np.allclose(ln.get_xdata(), 1.0) for ln in red])
    assert len(spans) == 2
    for (lo, hi), (a, b) in zip(spans, [(0.1, 0.3), (0.6, 0.9)]):
        inside = edges[(edges >= a - 1e-12) & (edges <= b + 1e-12)]
        assert lo >= a - 1 / 24 and hi <= b + 1 / 24 and hi - lo > 0.5 * (b - a)  # the door, not the side
        assert lo in edges and hi in edges and inside.size > 0
    ax = mpl_plot.outflow(res)
    lines = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["through low"] + lines["through high"], res.outflow.evacuated, atol=1e-12)
    assert lines["through low"][-1] > 0.01 and lines["through high"][-1] > 0.01
    ax = mpl_plot.outflow(res, rate=True)
    assert sorted(ln.get_label() for ln in ax.get_lines()) == ["through high", "through low"]
    _check_within_limits(ax)
