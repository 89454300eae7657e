"""Energies and costs of a planning solution (u, m), with the time rule of the scheme that produced it.

    E        = int_0^T int m |alpha|^2 dx dt            control energy, alpha = -grad u (no factor 1/2)
    kinetic  = E / 2                                     the kinetic part of the agent's cost (H = |p|^2/2)
    running  = int_0^T int m (V + F(x, m; t)) dx dt      the running part
    total    = kinetic + running                         a representative agent's expected cost

A first-order scheme (implicit Euler: step n uses m^{n+1} and V + F at t_{n+1}) gets the left rule over
the steps, whose error is O(dt) like the scheme's; a second-order scheme gets the trapezoid rule for E and
the midpoint rule (the Strang potential's own Vtot^{n+1/2} against (m^n + m^{n+1}) / 2) for the running
part: O(dt^2), so the quadrature does not spoil the scheme's order.
"""

from __future__ import annotations

import numpy as np

from ..result import gradient

RULES = ("left", "trapezoid")


def control_energy(grid, t, m, u, rule: str = "left") -> float:
    """E = int_0^T E|alpha_t|^2 dt with alpha = -grad u (centred differences).  rule "left": left
    Riemann sum over the steps (first order; u(T) may be singular where m1 = 0); "trapezoid": second
    order (levels where m |alpha|^2 is not finite, m = 0 with u = inf, count as 0).  The cost is E / 2."""
    if rule not in RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}; choose 'left' or 'trapezoid'")
    lv = slice(None) if rule == "trapezoid" else slice(None, -1)
    alpha = -gradient(grid, u[lv])
    with np.errstate(invalid="ignore"):
        dens = m[lv][..., None] * alpha ** 2
    dens = np.where(np.isfinite(dens), dens, 0.0).sum(axis=-1)
    e = np.asarray(grid.integrate(dens), dtype=float)
    dt = t[1] - t[0]
    if rule == "trapezoid":
        return float((e.sum() - 0.5 * (e[0] + e[-1])) * dt)
    return float(e.sum() * dt)


def midpoint_cost(problem, m):
    """Vtot at the step midpoints, Vtot^{n+1/2} = V(t_{n+1/2}) + F(x, (m^n + m^{n+1})/2; t_{n+1/2}),
    shape (Nt, *grid) (or (1, *grid) when nothing depends on t or m): second order in dt."""
    grid, Nt = problem.grid, problem.Nt
    tm = 0.5 * (problem.t[:-1] + problem.t[1:])
    vmid = problem.potential_midpoints()
    if problem.coupling is None:
        out = np.broadcast_to(vmid, (1,) + grid.shape) if np.ndim(vmid) <= grid.ndim else vmid
        return np.array(out, dtype=float)
    f = problem.coupling.field(grid, tm, 0.5 * (m[:-1] + m[1:]))
    out = np.array(np.broadcast_to(f + vmid, (Nt,) + grid.shape), dtype=float)
    if not np.all(np.isfinite(out)):
        raise ValueError("the running cost V + F has non-finite values on the grid")
    return out


def running_cost(problem, m, rule: str = "left") -> float:
    """int_0^T int m (V + F(x, m; t)) dx dt.  "left": sum_n dt int m^{n+1} f^n with the core scheme's
    f^n = V(t_{n+1}) + F(m^{n+1}; t_{n+1}); "trapezoid" (second-order schemes): sum_n dt int
    (m^n + m^{n+1}) / 2 Vtot^{n+1/2}, the midpoint cost that the Strang-split potential uses."""
    if rule not in RULES:
        raise ValueError(f"unknown quadrature rule {rule!r}; choose 'left' or 'trapezoid'")
    grid, dt = problem.grid, problem.dt
    if rule == "left":
        f = problem.running_cost(m)
        dens = m[1:] * f
    else:
        f = midpoint_cost(problem, m)
        dens = 0.5 * (m[:-1] + m[1:]) * f
    return float(np.sum(grid.integrate(dens)) * dt)


def agent_costs(problem, m, u, rule: str = "left") -> dict:
    """energy_E, kinetic_cost (= E / 2), running_cost and total_cost of the pair (u, m)."""
    E = control_energy(problem.grid, problem.t, m, u, rule)
    run = running_cost(problem, m, rule)
    return {"energy_E": E, "kinetic_cost": E / 2, "running_cost": run, "total_cost": E / 2 + run}
