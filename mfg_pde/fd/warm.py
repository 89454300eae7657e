"""First-run compilation on two cores: the forward kernels are compiled in a helper process while this one
compiles the backward (HJB) kernels.

numba compiles a kernel on its first call and keeps the machine code in its on-disk cache, so only the very
first solve after an installation (or an edit of the kernels) pays for compilation: for a 1-D problem about 7 s
for the HJB sweep and 6 s for the FP sweep, 1-D residuals and loop reductions on one core of the reference
machine (twice that for the general sweeps of 2-D/3-D and periodic grids, ``kernels.hjb_sweep_for``).  Both
halves are independent, and numba's compiler is one lock per process, so ``start`` launches one helper
process that compiles the forward half into the same cache while the caller goes on with its HJB sweep;
``wait`` (called before the first FP sweep) joins it, and the caller then loads the forward kernels from
the cache instead of compiling them.  Every kernel takes the same argument types for every problem with the
same kind of Hamiltonian (the ``kernels.Operator`` / ``Axis`` records, 4-D/5-D float arrays: one type for the
quadratic Hamiltonian, one for all others, each compiled apart), so one tiny problem of that kind -- on one
line, or on another grid -- compiles what any such problem needs.

Nothing happens when the cache already holds the kernels, on a single core, when numba caching is disabled,
or with ``MFG_PDE_PARALLEL_COMPILE=0``; any failure of the helper only means the caller compiles those
kernels itself, as it would without it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

_LOG = logging.getLogger("mfg_pde")
_HELPER = None          # the running helper process, if any
_STARTED = False        # one attempt per process
_WAITED = [0.0]         # seconds spent in ``wait`` (progress reports them as compile time)

#: the kernels the helper compiles (all of them, and the HJB sweep, decide whether the cache is cold): for a grid
#: of one non-periodic line (``kernels.is_line``: 1-D, exits and walls allowed) and for the others
FORWARD_LINE = ("fp_sweep_line", "coupling_stats", "mix_inplace", "l1_diff")
FORWARD = ("fp_sweep", "coupling_stats", "mix_inplace", "l1_diff")
#: and the 1-D residual pass, for one line without exits or obstacles (``split_residuals``)
LINE_RESIDUAL = "pair_residual_line"


_KIND = [True, True, True]   # (quadratic, line, line residual) of the problem last given to ``start``: ``cold``'s
                             # defaults


def is_line_problem(problem) -> bool:
    """Whether ``problem`` (None: the README's first example) solves on one non-periodic line (``kernels.is_line``)."""
    grid = getattr(problem, "grid", None)
    if grid is None:
        return True
    from ..model.grid import BC_PERIODIC

    return grid.ndim == 1 and not bool((grid.bc_codes == BC_PERIODIC).any())


def _line_residual(problem) -> bool:
    """Whether ``problem``'s residual pass is the 1-D one (``pair_residual_line``: one line without exits and
    obstacles, ``split_residuals``)."""
    if problem is None:
        return True
    try:
        from .operator import kernel_data

        kd = kernel_data(problem, exits_supported=True)
    except Exception:  # noqa: BLE001 -- not a single-population grid problem: the helper's default
        return is_line_problem(problem)
    return kd.ndim == 1 and not kd.periodic[0] and kd.exits is None and not kd.has_walls


def _cached(dispatcher, quadratic: bool) -> bool | None:
    """Whether numba's on-disk cache holds ``dispatcher`` for the records of the quadratic Hamiltonian (or of the
    others: ``quadratic`` False; kernels without records: any entry); None where this numba version hides it."""
    from numba.core import types

    from .kernels import _is_quadratic

    try:
        index = dispatcher._cache._cache_file._load_index()   # {} when absent or stale
    except AttributeError:
        return None
    for key in index:
        recs = [t for t in key[0] if isinstance(t, types.BaseNamedTuple) and "hpar" in t.fields]
        if not recs or _is_quadratic(recs[0]) == quadratic:
            return True
    return False


def forward_kernels(line: bool, line_residual: bool) -> tuple:
    """The names of the kernels the helper compiles for a problem on one line (or not) whose residual pass is
    the 1-D one (or not)."""
    return (FORWARD_LINE if line else FORWARD) + ((LINE_RESIDUAL,) if line_residual else ())


def cold(quadratic: bool | None = None, line: bool | None = None, line_residual: bool | None = None) -> bool:
    """True when the on-disk cache lacks the HJB sweep or one of the forward kernels (``forward_kernels``) for the
    quadratic Hamiltonian (or for the others: ``quadratic`` False) on one non-periodic line (or on the other
    grids: ``line`` False); by default those of the problem last given to ``start`` (before: the quadratic
    Hamiltonian on one line without exits)."""
    from . import kernels

    quadratic = _KIND[0] if quadratic is None else quadratic
    line = _KIND[1] if line is None else line
    line_residual = (_KIND[2] and line) if line_residual is None else line_residual
    names = ("hjb_sweep_line" if line else "hjb_sweep",) + forward_kernels(line, line_residual)
    found = [_cached(getattr(kernels, name), quadratic) for name in names]
    return any(f is False for f in found) and None not in found


def start(problem=None) -> None:
    """Launch the helper process if the cache is cold for the kind of Hamiltonian of ``problem`` (quadratic, or
    not; default quadratic), once per process; no-op otherwise."""
    global _HELPER, _STARTED
    if problem is not None:
        ham = getattr(problem, "hamiltonian", None)
        _KIND[:] = [ham is None or bool(getattr(ham, "is_quadratic", True)), is_line_problem(problem),
                    _line_residual(problem)]
    if _STARTED:
        return
    _STARTED = True
    if os.environ.get("MFG_PDE_PARALLEL_COMPILE", "1") == "0" or (os.cpu_count() or 1) < 2:
        return
    try:
        quadratic, line, line_residual = _KIND
        if not cold(quadratic, line, line_residual):
            return
        # PYTHONSAFEPATH=1: ``python -c`` would put the current folder first on sys.path, so run from a source
        # checkout after ``pip install .`` the helper would compile ./mfg_pde, not the installed package the
        # solve loads (Python >= 3.11; older ones ignore it).  PYTHONPATH is passed on as it is.
        code = (f"from mfg_pde.fd.warm import compile_forward; "
                f"compile_forward(quadratic={quadratic}, line={line}, line_residual={line_residual})")
        _HELPER = subprocess.Popen([sys.executable, "-c", code],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=dict(os.environ, MFG_PDE_PARALLEL_COMPILE="0", PYTHONSAFEPATH="1"))
        _LOG.debug("compiling the forward kernels in process %d (first run)", _HELPER.pid)
    except Exception:  # noqa: BLE001 -- the helper is an optimisation only
        _HELPER = None


def wait(timeout: float = 300.0) -> None:
    """Join the helper (if one runs): its kernels are then in the cache for this process to load."""
    global _HELPER
    helper, _HELPER = _HELPER, None
    if helper is None:
        return
    t0 = time.perf_counter()
    try:
        helper.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 -- too slow or gone: compile here instead
        helper.kill()
    _WAITED[0] += time.perf_counter() - t0


def waited() -> float:
    """Seconds this process has spent waiting for the helper (the forward kernels compiling there)."""
    return _WAITED[0]


def compile_forward(quadratic: bool = True, line: bool = True, line_residual: bool | None = None) -> None:
    """Compile (or load) the forward kernels by calling each once on a tiny problem (with the quadratic
    Hamiltonian, or with another one: the one type of all the others' records): the FP sweep (of one
    non-periodic line, or the general one: ``line`` False; the records have one type for every grid), the 1-D
    residual pass (``line_residual``, by default ``line``: one line without exits or obstacles) and the
    coupling-loop reductions (the general residual pass compiles in the
    solving process at its first use, after the FP sweep: here it would make the helper outlast the HJB
    compilation)."""
    import numpy as np

    from . import kernels
    from .operator import make_operator

    Nt, n = 2, 4
    shape3 = (n, 1, 1)
    ham = {} if quadratic else {"hkind": kernels.HAM_BOUNDED, "hpar": [1.0]}
    op = make_operator(1, 0.1, 0.1, [0.25, 1.0, 1.0], [False, False, False], np.zeros((1, 1, 1, 1, 1)), False, **ham)
    u = np.zeros((Nt + 1,) + shape3)
    m = np.full((Nt + 1,) + shape3, 1.0)
    f = np.zeros((Nt,) + shape3)
    states = np.zeros((Nt, 0) + shape3)
    (kernels.fp_sweep_line if line else kernels.fp_sweep)(m, u, states, op)
    norms = np.empty((Nt, 4))
    if line if line_residual is None else line_residual:
        flat_m = m.reshape(Nt + 1, n)
        kernels.pair_residual_line(u.reshape(Nt + 1, n), f.reshape(Nt, n), flat_m, flat_m, op, norms)
    flat = m.reshape(Nt + 1, n)
    kernels.coupling_stats(flat, flat, u.reshape(Nt + 1, n), 0.25, 1.0)
    kernels.mix_inplace(flat.copy(), flat, 0.5)
    kernels.l1_diff(flat[0], flat[1])
