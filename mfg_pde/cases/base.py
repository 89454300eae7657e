"""Named, parameterised problems that know their closed-form oracle.

A case declares its parameters (name, default, help), builds an ``MFGProblem`` plus solver options
from a parameter dict, and -- when a closed form exists -- compares a result with it, returning
``Check`` rows (quantity, error, tolerance, pass/fail).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..result import CaseReport
from ..richardson import observed_order

__all__ = ["Case", "CaseError", "CaseReport", "CaseRun", "Check", "Param", "all_cases", "get", "names", "register"]


class CaseError(ValueError):
    """Bad case name, parameter name or parameter value (one line, meant for the user)."""


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    help: str
    choices: tuple | None = None
    positive: bool = False
    nonnegative: bool = False
    #: a path the case writes a file to (figure, table, HDF5) when it is not empty: announced by the CLI
    output: bool = False

    def parse(self, raw):
        """Convert a user value (string from the command line, or a Python value) to the type of the default."""
        kind = type(self.default)
        try:
            if isinstance(raw, str):
                if kind is bool:
                    low = raw.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError
                    value = low in ("1", "true", "yes", "on")
                elif kind is int:
                    value = int(raw)
                elif kind is float:
                    value = float(raw)
                else:
                    value = raw
            else:
                value = kind(raw)
        except (TypeError, ValueError):
            raise CaseError(f"parameter {self.name}={raw!r}: expected {kind.__name__} "
                            f"(default {self.default!r})") from None
        if kind in (int, float):
            if not np.isfinite(value):
                raise CaseError(f"parameter {self.name}={raw!r}: must be finite")
            if self.positive and not value > 0:
                raise CaseError(f"parameter {self.name}={raw!r}: must be > 0")
            if self.nonnegative and not value >= 0:
                raise CaseError(f"parameter {self.name}={raw!r}: must be >= 0")
        if self.choices is not None and value not in self.choices:
            raise CaseError(f"parameter {self.name}={raw!r}: choose one of {', '.join(map(str, self.choices))}")
        return value


@dataclass
class Check:
    """One comparison with a closed form."""

    quantity: str
    error: float
    tol: float
    note: str = ""
    at_least: bool = False  # True for an observed order, which must reach tol from above

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.error):
            return False
        return bool(self.error >= self.tol) if self.at_least else bool(self.error <= self.tol)


@dataclass
class CaseRun:
    case: str
    params: dict
    result: object
    checks: list = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.result.converged) and all(c.passed for c in self.checks)


class Case:
    """Base class for registered cases.  Subclasses set name, description, params and implement
    ``build`` (-> (problem, solve-options dict)) and optionally ``checks``."""

    name: str = ""
    description: str = ""
    params: tuple = ()
    has_oracle: bool = False
    #: axes of the grid ``build`` makes from the parameter N (cells per axis), for the memory check
    ndim: int = 1
    #: renamed parameters, old name -> (new name, why): the old name is refused with a message naming the new one
    renamed: dict = {}

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def resolve(self, overrides: dict | None = None) -> dict:
        """Defaults updated by overrides; unknown names and bad values raise CaseError."""
        values = self.defaults()
        known = {p.name: p for p in self.params}
        for key, raw in (overrides or {}).items():
            if key not in known and key in self.renamed:
                new, why = self.renamed[key]
                raise CaseError(f"case {self.name!r}: parameter {key!r} is called {new!r} now ({why}); "
                                f"use --set {new}=...")
            if key not in known:
                raise CaseError(f"case {self.name!r} has no parameter {key!r}; "
                                f"known: {', '.join(sorted(known))}")
            values[key] = known[key].parse(raw)
        self.validate_params(values)
        return values

    def validate_params(self, p: dict) -> None:
        """Cross-parameter checks (override in subclasses)."""

    def build(self, p: dict):
        raise NotImplementedError

    def grid_shape(self, p: dict):
        """Cells per axis of the grid the case solves on for parameters p, without building it: N cells
        on each of ``ndim`` axes by default; None when the case has no such parameter."""
        n = p.get("N")
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
            return (int(n),) * int(self.ndim)
        return None

    def check_memory(self, p: dict, method=None) -> None:
        """Refuse parameters whose solve cannot fit in the available memory, before anything is built:
        ``problem.InsufficientMemoryError`` naming N, Nt, the estimate and the memory available."""
        shape, Nt = self.grid_shape(p), p.get("Nt")
        if shape is None or not isinstance(Nt, (int, np.integer)) or isinstance(Nt, bool):
            return
        from ..model.problem import check_memory

        method = method if method is not None else p.get("method")
        grid = f"N = {p['N']} cells" if len(shape) == 1 else \
            f"N = {p['N']} ({' x '.join(map(str, shape))} = {int(np.prod(shape, dtype=object)):,} cells)"
        check_memory(shape, int(Nt), method, what=f"{self.name}: {grid} with Nt = {Nt}",
                     fix="lower N (--set N=...) or Nt")

    #: quantity -> allowed error at the default resolution (cases with an oracle)
    tolerances: dict = {}
    #: lowest acceptable observed order of convergence under refinement (first-order scheme)
    min_order: float = 0.8

    def errors(self, result, p: dict) -> dict:
        """quantity -> error against the closed form (cases with an oracle)."""
        return {}

    def decorate(self, result, problem, p: dict) -> None:
        """Attach case-specific data to a fresh result (e.g. ``result.obstacle`` for plots; what is not a
        result field goes into ``result.case_report``, a ``CaseReport``)."""

    def checks(self, result, p: dict) -> list:
        return [Check(k, v, self.tolerances[k], "max over t") for k, v in self.errors(result, p).items()]

    def written(self, p: dict) -> list:
        """(parameter, path) of the files this run wrote: the output parameters set in p whose file exists."""
        return [(q.name, str(p[q.name])) for q in self.params
                if q.output and p.get(q.name) and os.path.isfile(str(p[q.name]))]

    def refined(self, p: dict) -> dict:
        """Parameters of the next finer grid (h and dt halved)."""
        return {**p, "N": 2 * p["N"], "Nt": 2 * p["Nt"]}

    def validate(self, overrides: dict | None = None, progress: bool = False) -> CaseRun:
        """Solve at the default grid and at a twice finer one; checks are the default-grid errors
        against their tolerances AND the observed order log2(e_coarse / e_fine) of each error."""
        coarse = self.run(overrides, progress=progress)
        if not self.has_oracle:
            return coarse
        fine_p = self.refined(coarse.params)
        grid_keys = {k: fine_p[k] for k in ("N", "Nt") if k in fine_p}   # stationary cases: N only
        fine = self.run(grid_keys | dict(overrides or {}) | grid_keys, progress=progress)
        e_c = self.errors(coarse.result, coarse.params)
        e_f = self.errors(fine.result, fine.params)
        checks = list(coarse.checks)
        for q in e_c:
            order = float(observed_order([e_c[q], e_f[q]])[0])
            checks.append(Check(f"{q}: observed order", order, self.min_order,
                                f"errors {e_c[q]:.2e} -> {e_f[q]:.2e} ({', '.join(grid_keys)} doubled)", at_least=True))
        ok_fine = fine.result.converged
        run = CaseRun(self.name, coarse.params, coarse.result, checks, coarse.wall_time + fine.wall_time)
        if not ok_fine:
            run.checks.append(Check("refined solve converged", 1.0, 0.0, fine.result.status))
        return run

    def solver(self):
        """The solve function for this case's problems (terminal-cost loop by default)."""
        from ..iterate.solve import solve

        return solve

    def run(self, overrides: dict | None = None, progress: bool = False, **solve_overrides) -> CaseRun:
        solve = self.solver()
        p = self.resolve(overrides)
        self.check_memory(p, solve_overrides.get("method"))
        problem, options = self.build(p)
        options = {**options, **solve_overrides}
        t0 = time.perf_counter()
        result = solve(problem, progress=progress, **options)
        result.case = self.name
        # the parameters that ran: solver choices given to run (method, tol, max_iter) replace the defaults
        result.params = {**p, **{k: solve_overrides[k] for k in ("method", "tol", "max_iter")
                                 if k in solve_overrides}}
        grid = getattr(problem, "grid", None)
        if grid is not None and getattr(problem, "has_exits", grid.has_exits) and result.outflow is None:
            from ..diagnostics.outflow import attach_outflow  # exits: the outflow balance replaces mass conservation

            attach_outflow(result, problem)
        self.decorate(result, problem, p)
        checks = self.checks(result, p)
        return CaseRun(self.name, p, result, checks, time.perf_counter() - t0)


_REGISTRY: dict = {}


def register(case_cls):
    inst = case_cls()
    if not inst.name:
        raise ValueError("a case needs a name")
    if inst.name in _REGISTRY and type(_REGISTRY[inst.name]).__qualname__ != case_cls.__qualname__:
        raise ValueError(f"case name {inst.name!r} is taken by {type(_REGISTRY[inst.name]).__name__}; give "
                         f"{case_cls.__name__} another name")
    _REGISTRY[inst.name] = inst
    return case_cls


def get(name: str) -> Case:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CaseError(f"unknown case {name!r}; known cases: {', '.join(sorted(_REGISTRY))} "
                        "(see `mfg-pde cases`)") from None


def names() -> list:
    return sorted(_REGISTRY)


def all_cases() -> list:
    return [_REGISTRY[n] for n in names()]
