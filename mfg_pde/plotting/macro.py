"""Figures of the heterogeneous-agent economies (``newton.equilibrium``, ``newton.transition``): built with the
object-oriented API (``matplotlib.figure.Figure``), like the other figures of ``mfg_pde.plotting``."""

from __future__ import annotations

import numpy as np

from ..newton.household import sqrt_law_coefficient

__all__ = ["equilibrium_figure", "transition_figure"]


def _visible_top(g_total: np.ndarray, h: float, a: np.ndarray) -> float:
    """The wealth beyond which 1e-4 of the households lie (the plotted range ends a bit above it)."""
    cdf = np.cumsum(g_total) * h
    return float(a[min(int(np.searchsorted(cdf, 1 - 1e-4)), a.size - 1)])


def equilibrium_figure(res, path=None, title: str = ""):
    """Consumption and savings per type (with the square-root law -sqrt(2 nu_1 (a - a_min)) of the low type near
    the borrowing limit), the densities per type, and the excess-supply curve S(r) with r*.  Returns the Figure;
    saved to path when given."""
    from matplotlib.figure import Figure

    sol, hh = res.solution, res.economy.household
    a = sol.a
    top = hh.a_min + 1.3 * (_visible_top(sol.g.sum(axis=0), sol.h, a) - hh.a_min)
    vis = a <= min(top, hh.a_max)
    fig = Figure(figsize=(10, 7))
    ax = fig.subplots(2, 2)
    for j in range(hh.K):
        lab = f"type {j + 1} (z = {hh.z[j]:g})"
        ax[0, 0].plot(a[vis], sol.c[j, vis], label=lab)
        ax[0, 1].plot(a[vis], sol.s[j, vis], label=lab)
        ax[1, 0].plot(a[vis][1:], sol.g[j, vis][1:], label=lab)
    nu = sqrt_law_coefficient(hh, sol)
    near = a <= hh.a_min + 0.05 * (a[vis][-1] - hh.a_min)
    ax[0, 1].plot(a[near], -np.sqrt(2 * nu * (a[near] - hh.a_min)), "k:", label=r"$-\sqrt{2\nu_1(a-a_{min})}$")
    ax[0, 1].axhline(0.0, color="grey", lw=0.5)
    ax[0, 0].set_title("consumption c_j(a)")
    ax[0, 1].set_title("savings s_j(a)")
    ax[1, 0].set_title(f"densities g_j(a) (a > a_min); mass at a_min: {res.fraction_at_limit:.4f}")
    for axis in (ax[0, 0], ax[0, 1], ax[1, 0]):
        axis.set_xlabel("wealth a")
        axis.legend(fontsize=8)
    if res.curve_r is not None:
        ax[1, 1].plot(res.curve_S, res.curve_r, "o-", ms=3, label="S(r)")
    ax[1, 1].axvline(0.0, color="grey", lw=0.5)
    ax[1, 1].plot([0.0], [res.r], "r*", ms=10, label=f"r* = {res.r:.5f}")
    ax[1, 1].set_xlabel("excess asset supply S(r)")
    ax[1, 1].set_ylabel("interest rate r")
    ax[1, 1].legend(fontsize=8)
    ax[1, 1].set_title("asset market")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def transition_figure(tr, path=None):
    """r(t) with the old and new stationary rates, the excess supply S(t), and the wealth density at a few times.
    Returns the Figure; saved to path when given."""
    from matplotlib.figure import Figure

    t, a = tr.path.t, tr.new.solution.a
    fig = Figure(figsize=(13, 3.8))
    ax = fig.subplots(1, 3)
    ax[0].plot(t[:-1], tr.r, label="r(t)")
    ax[0].axhline(tr.old.r, color="grey", ls=":", label=f"old r* = {tr.old.r:.4f}")
    ax[0].axhline(tr.new.r, color="k", ls="--", label=f"new r* = {tr.new.r:.4f}")
    ax[0].set_xlabel("t")
    ax[0].legend(fontsize=8)
    ax[0].set_title("interest rate")
    ax[1].plot(t, tr.path.assets)
    ax[1].set_title("excess bond supply S(t)")
    ax[1].set_xlabel("t")
    for n in np.unique(np.linspace(0, t.size - 1, 5).astype(int)):
        ax[2].plot(a[1:], tr.path.g[n].sum(axis=0)[1:], label=f"t = {t[n]:.0f}")
    ax[2].set_xlim(a[0], _visible_top(tr.path.g[0].sum(axis=0), tr.new.solution.h, a) * 1.3)
    ax[2].set_xlabel("wealth a")
    ax[2].set_title("wealth density (all types, a > a_min)")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def draw(result, path=None, title: str = ""):
    """The figure of a macro result: ``transition_figure`` for a transition (it has the old and the new
    equilibrium), else ``equilibrium_figure`` (title: the economy's name unless given)."""
    if hasattr(result, "old") and hasattr(result, "new"):
        return transition_figure(result, path)
    return equilibrium_figure(result, path, title=title or result.economy.name)
