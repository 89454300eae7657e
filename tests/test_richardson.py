"""Richardson extrapolation: second-order fields on the LQ case (error AND observed order); the order p
from the time scheme, numbers and arrays, synthetic sequences and fields recovered to round-off, errors."""

import numpy as np
import pytest

import mfg_pde as mp
from mfg_pde.cases import get
from mfg_pde.richardson import extrapolate, restrict, solve_extrapolated


def test_lq_extrapolated_fields_are_second_order():
    c = get("lqg")
    runs = {N: c.run({"N": N, "Nt": N}) for N in (50, 100, 200)}
    E = np.array([list(c.errors(extrapolate(runs[N].result, runs[2 * N].result), runs[N].params).values())
                  for N in (50, 100)])
    orders = np.log2(E[0] / E[1])
    assert np.all(orders > 1.6) and np.all(orders < 2.3), orders
    first = np.array(list(c.errors(runs[100].result, runs[100].params).values()))
    assert np.all(E[1] < first / 20)  # far below the first-order error at the same coarse grid


def test_restriction_and_mass():
    coarse, fine = mp.Grid([(0, 1), (0, 2)], (4, 5)), mp.Grid([(0, 1), (0, 2)], (8, 10))
    f = np.arange(80.0).reshape(8, 10)
    r = restrict(coarse, fine, f)
    assert r.shape == (4, 5) and r[0, 0] == pytest.approx((0 + 1 + 10 + 11) / 4)
    with pytest.raises(ValueError, match="twice the cells"):
        restrict(coarse, mp.Grid([(0, 1), (0, 2)], (8, 9)), np.zeros((8, 9)))
    build = lambda N, Nt: get("lqg").build(get("lqg").resolve({"N": N, "Nt": Nt}))[0]  # noqa: E731
    r = solve_extrapolated(build, 60, 60)
    np.testing.assert_allclose(r.mass(), 1.0, atol=1e-12)
    assert r.solver["richardson"]


# ------------------------------------------------------------------ order p, numbers, synthetic fields
from mfg_pde import richardson as R


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("ratio", [2, 3])
def test_scalar_recovers_the_limit_of_an_exact_power_sequence(p, ratio):
    """X(h) = X* + c h^p: the extrapolation is X* to round-off and the error estimate is |X(h/r) - X*|."""
    X, c, h = 1.2345, -0.7, 0.1
    out = R.extrapolate_scalar(X + c * h ** p, X + c * (h / ratio) ** p, p=p, ratio=ratio)
    assert out.value == pytest.approx(X, abs=1e-14) and (out.p, out.ratio) == (p, ratio)
    assert out.error == pytest.approx(abs(c) * (h / ratio) ** p, rel=1e-12)
    # the wrong order leaves an error of the size of the fine one
    wrong = R.extrapolate_scalar(X + c * h ** p, X + c * (h / ratio) ** p, p=3 - p, ratio=ratio)
    assert abs(wrong.value - X) > 0.1 * abs(c) * (h / ratio) ** p
    # arrays elementwise, and extrapolate() passes numbers on
    arr = R.extrapolate(np.array([X, 2 * X]) + c * h ** p, np.array([X, 2 * X]) + c * (h / ratio) ** p,
                        p=p, ratio=ratio)
    np.testing.assert_allclose(arr.value, [X, 2 * X], atol=1e-14)


def test_scalar_order_rises_by_one_with_a_higher_term():
    # X(h) = X* + h^2 + h^3: the raw errors fall at order 2, the extrapolated ones at order 3
    def X(h):
        return 1.0 + h ** 2 + h ** 3
    hs = [0.2, 0.1, 0.05, 0.025]
    raw = [X(h) - 1.0 for h in hs]
    ext = [R.extrapolate_scalar(X(h), X(h / 2), scheme="strang").value - 1.0 for h in hs[:-1]]
    np.testing.assert_allclose(R.observed_order(raw), 2.0, atol=0.2)
    np.testing.assert_allclose(R.observed_order(ext), 3.0, atol=1e-12)


def _synthetic(grid, Nt, h, p, scheme, cell_average):
    """A result whose fields are X*(x, t) + c(x) h^p with X* cubic in x: point values at the centres, or
    (cell_average) exact cell averages of X* plus a c linear in x."""
    t = np.linspace(0.0, 1.0, Nt + 1)[:, None]
    x = grid.axes[0][None, :]
    if cell_average:  # average of x^3 over [x - d/2, x + d/2] is x^3 + x d^2/4
        d = grid.spacing[0]
        star = 1 + t * x - 0.3 * (x ** 3 + x * d ** 2 / 4)
        c = 2.0 + x
    else:
        star = 1 + t * x - 0.3 * x ** 3
        c = 2.0 + x - x ** 2 + 0.5 * x ** 3
    field = star + c * h ** p
    solver = {} if scheme is None else {"time_scheme": scheme}
    return mp.MFGResult(grid=grid, t=t[:, 0], u=field, m=2 * field, converged=True, status="converged",
                        solver=solver)


def _cubic_exact(grid, Nt, cell_average):
    t = np.linspace(0.0, 1.0, Nt + 1)[:, None]
    x = grid.axes[0][None, :]
    d = grid.spacing[0]
    return 1 + t * x - 0.3 * (x ** 3 + (x * d ** 2 / 4 if cell_average else 0))


@pytest.mark.parametrize("scheme,p", [("strang", 2), ("euler", 1), (None, 1)])
@pytest.mark.parametrize("how", ["average", "cubic"])
@pytest.mark.parametrize("bc", ["reflecting", "exit"])
def test_fields_on_refined_grids_with_the_order_of_the_scheme(scheme, p, how, bc):
    """Fields on a grid and its refinement, the order taken from result.solver["time_scheme"]: the limit
    is recovered to round-off (cell averages with "average", point values with "cubic")."""
    gc, gf = mp.Grid([(-1, 2)], 12, bc=bc), mp.Grid([(-1, 2)], 24, bc=bc)
    avg = how == "average"
    coarse = _synthetic(gc, 5, gc.spacing[0], p, scheme, avg)
    fine = _synthetic(gf, 10, gf.spacing[0], p, scheme, avg)
    out = R.extrapolate(coarse, fine, restriction=how)
    assert out.solver["richardson_order"] == p and out.solver["richardson_restriction"] == how
    np.testing.assert_allclose(out.u, _cubic_exact(gc, 5, avg), atol=1e-13)
    np.testing.assert_allclose(out.m, 2 * _cubic_exact(gc, 5, avg), atol=1e-13)
    # the estimated error of the fine u is max |c| (h_fine)^p, its actual error
    assert out.solver["richardson_error"]["u"] == pytest.approx(
        np.max(np.abs(R.restrict(gc, gf, fine.u[::2], how) - _cubic_exact(gc, 5, avg))), rel=1e-9)
    # the wrong order does not recover it
    other = R.extrapolate(coarse, fine, 3 - p, restriction=how)
    assert np.max(np.abs(other.u - _cubic_exact(gc, 5, avg))) > 1e-3


def test_default_restriction_follows_the_order():
    gc, gf = mp.Grid([(-1, 2)], 12), mp.Grid([(-1, 2)], 24)
    for scheme, how in (("strang", "cubic"), ("euler", "average"), (None, "average")):
        out = R.extrapolate(_synthetic(gc, 4, 0.1, 1, scheme, False), _synthetic(gf, 8, 0.05, 1, scheme, False))
        assert out.solver["richardson_restriction"] == how


def test_cubic_restriction_is_fourth_order_in_2d():
    gc, gf = mp.Grid([(0, 1), (0, 2)], (4, 5)), mp.Grid([(0, 1), (0, 2)], (8, 10))
    X, Y = gf.mesh()
    f = 1 + X ** 3 - 2 * X * Y ** 2 + Y ** 3          # cubic in each variable: interpolated exactly
    Xc, Yc = gc.mesh()
    np.testing.assert_allclose(R.restrict(gc, gf, f, "cubic"), 1 + Xc ** 3 - 2 * Xc * Yc ** 2 + Yc ** 3, atol=1e-13)
    with pytest.raises(ValueError, match="restriction 'linear'"):
        R.restrict(gc, gf, f, "linear")


K = 2 * np.pi


def _sin_averages(g):
    """Exact cell averages of sin(K x): sin(K x) sin(K d / 2) / (K d / 2)."""
    d = g.spacing[0]
    return np.sin(K * g.axes[0]) * np.sin(K * d / 2) / (K * d / 2)


def test_periodic_restriction_wraps():
    """On a periodic axis the stencils wrap: a periodic field restricts with fourth-order point error
    ("cubic") and exactly for its cell averages ("average")."""
    errs = []
    for n in (16, 32, 64):
        gc, gf = mp.Grid([(0, 1)], n, bc="periodic"), mp.Grid([(0, 1)], 2 * n, bc="periodic")
        f = np.sin(K * gf.axes[0]) + 0.5
        errs.append(np.max(np.abs(R.restrict(gc, gf, f, "cubic") - np.sin(K * gc.axes[0]) - 0.5)))
        np.testing.assert_allclose(R.restrict(gc, gf, _sin_averages(gf), "average"), _sin_averages(gc), atol=1e-14)
    np.testing.assert_allclose(R.observed_order(errs), 4.0, atol=0.1)
    # and the reflecting restriction of the same samples is not the wrapped one at the walls
    gc, gf = mp.Grid([(0, 1)], 16), mp.Grid([(0, 1)], 32)
    assert not np.allclose(R.restrict(gc, gf, np.sin(2 * np.pi * gf.axes[0]), "cubic")[[0, -1]],
                           R.restrict(mp.Grid([(0, 1)], 16, bc="periodic"), mp.Grid([(0, 1)], 32, bc="periodic"),
                                      np.sin(2 * np.pi * gf.axes[0]), "cubic")[[0, -1]], atol=1e-8, rtol=0)


def test_strang_planning_fields_gain_orders_from_the_time_scheme():
    """A real Strang planning solve (lqg-bridge, Gaussian ends): p = 2 taken from solver["time_scheme"]
    and the cubic restriction make m much more accurate than the fine solve at the coarse centres."""
    from mfg_pde.oracles import analytic
    from mfg_pde.planning.sinkhorn import solve_planning

    case = get("lqg-bridge")
    runs = []
    for N in (100, 200):
        p = case.resolve({"N": N, "Nt": N // 5})
        runs.append(solve_planning(case.build(p)[0], time_scheme="strang", tol=1e-12))
    coarse, fine = runs
    ref = analytic.lqg_bridge(coarse.t, T=p["T"], sigma=p["sigma"], mean0=p["mean0"], var0=p["std0"] ** 2,
                              mean1=p["mean1"], var1=p["std1"] ** 2, beta=p["beta"], kappa=p["kappa"])
    x = coarse.grid.axes[0][None]
    exact = np.exp(-0.5 * (x - ref["mean"][:, None]) ** 2 / ref["var"][:, None]) / np.sqrt(2 * np.pi * ref["var"][:, None])
    out = R.extrapolate(coarse, fine)
    assert out.solver["richardson_order"] == 2 and out.solver["richardson_restriction"] == "cubic"
    e_fine = np.max(np.abs(R.restrict(coarse.grid, fine.grid, fine.m[::2], "cubic") - exact))
    e_rich = np.max(np.abs(out.m - exact))
    assert e_rich < e_fine / 10, (e_rich, e_fine)
    # the error estimate is the size of the fine solve's actual error
    assert 0.5 < out.solver["richardson_error"]["m"] / e_fine < 2
    # first order assumed for a second-order scheme: no gain
    assert np.max(np.abs(R.extrapolate(coarse, fine, 1).m - exact)) > e_fine


def test_every_planning_time_scheme_has_an_order():
    """A time scheme the planning solver accepts must be registered in SCHEME_ORDER (or Richardson on its
    results asks for p)."""
    from mfg_pde.planning.sinkhorn import TIME_SCHEMES

    assert set(TIME_SCHEMES) <= set(R.SCHEME_ORDER), set(TIME_SCHEMES) - set(R.SCHEME_ORDER)


def test_errors_name_the_problem():
    gc, gf = mp.Grid([(-1, 2)], 12), mp.Grid([(-1, 2)], 24)
    c, f = _synthetic(gc, 4, 0.1, 1, None, False), _synthetic(gf, 8, 0.05, 1, None, False)
    # mismatched grids
    with pytest.raises(ValueError, match="twice the cells"):
        R.extrapolate(c, _synthetic(mp.Grid([(-1, 2)], 18), 8, 0.05, 1, None, False))
    with pytest.raises(ValueError, match="same bounds"):
        R.extrapolate(c, _synthetic(mp.Grid([(-1, 3)], 24), 8, 0.05, 1, None, False))
    with pytest.raises(ValueError, match="2 x 4 time steps"):
        R.extrapolate(c, _synthetic(gf, 6, 0.05, 1, None, False))
    with pytest.raises(ValueError, match="ratio 2"):
        R.extrapolate(c, f, ratio=3)
    # schemes: unknown (explicit p works), mismatched
    cx, fx = (_synthetic(g, n, 0.1, 2, "exponential", False) for g, n in ((gc, 4), (gf, 8)))
    with pytest.raises(ValueError, match=r"time scheme 'exponential'.*p=\.\.\..*TIME_SCHEMES"):
        R.extrapolate(cx, fx)
    assert R.extrapolate(cx, fx, 2).solver["richardson_order"] == 2
    with pytest.raises(ValueError, match="'euler' and the fine one 'strang'"):
        R.extrapolate(_synthetic(gc, 4, 0.1, 1, "euler", False), _synthetic(gf, 8, 0.1, 1, "strang", False))
    with pytest.raises(ValueError, match="time scheme 'rk4'"):
        R.extrapolate_scalar(1.0, 1.1, scheme="rk4")
    with pytest.raises(ValueError, match="contradicts scheme 'strang'"):
        R.extrapolate_scalar(1.0, 1.1, p=1, scheme="strang")
    # bad p, ratio, restriction; numbers without an order; shapes; mixed types
    for bad in (0, -1, np.nan, np.inf, True, "2"):
        with pytest.raises(ValueError, match="order of the scheme's leading error"):
            R.extrapolate(c, f, bad)
        with pytest.raises(ValueError, match="order of the scheme's leading error"):
            R.extrapolate_scalar(1.0, 1.1, p=bad)
    for bad in (1, 0.5, np.nan):
        with pytest.raises(ValueError, match="refinement ratio"):
            R.extrapolate_scalar(1.0, 1.1, p=1, ratio=bad)
    with pytest.raises(ValueError, match="restriction 'nearest'"):
        R.extrapolate(c, f, restriction="nearest")
    with pytest.raises(ValueError, match="give p=... .*or scheme="):
        R.extrapolate(1.0, 1.1)
    with pytest.raises(ValueError, match=r"shape \(2,\) and fine \(3,\)"):
        R.extrapolate_scalar(np.zeros(2), np.zeros(3), p=1)
    with pytest.raises(TypeError, match="two MFGResults or two numbers"):
        R.extrapolate(c, 1.0)
    with pytest.raises(TypeError, match="numbers or arrays"):
        R.extrapolate_scalar(c, f, p=1)


def test_extrapolated_result_saves(tmp_path):
    gc, gf = mp.Grid([(-1, 2)], 12), mp.Grid([(-1, 2)], 24)
    out = R.extrapolate(_synthetic(gc, 4, 0.1, 2, "strang", False), _synthetic(gf, 8, 0.05, 2, "strang", False))
    out.save(tmp_path / "r.h5")
    back = mp.load(tmp_path / "r.h5")
    assert back.solver["richardson_order"] == 2 and back.solver["richardson_error"] == out.solver["richardson_error"]
