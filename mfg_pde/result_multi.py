"""MultiPopulationResult: the solution of a multi-population game (``model.multipop``).

``result.populations[k]`` (also ``result[k]`` or ``result["name"]``) is an ``MFGResult`` of population k (its
u, m, alpha, mean, mass, its HJB solution and its population problem); the stacked fields ``u``, ``m``
(K, Nt+1, *grid) and ``alpha`` (K, Nt+1, *grid, ndim) have the population axis first.  The convergence
record (``converged``, ``status``, ``iterations``, ``history``, ``solver``) is the joint loop's.  ``save``
writes one HDF5 file with a population dimension (``io_multi``); ``mfg_pde.load`` (``load_any``) reads it back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import io_multi
from .model.grid import Grid
from .result import CaseReport, MFGResult, load


@dataclass
class MultiPopulationResult:
    grid: Grid
    t: np.ndarray
    names: list
    populations: list
    converged: bool = False
    status: str = "unknown"
    iterations: int = 0
    history: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    solver: dict = field(default_factory=dict)
    case: str | None = None
    case_report: CaseReport | None = field(default=None, repr=False, compare=False)
    problem: object | None = field(default=None, repr=False, compare=False)   # the MultiPopulationProblem

    def __repr__(self) -> str:
        return (f"MultiPopulationResult(populations={self.names}, grid={tuple(self.grid.shape)}, "
                f"Nt={len(self.t) - 1}, method={(self.solver or {}).get('method')!r}, status={self.status!r}, "
                f"iterations={self.iterations})")

    def __getitem__(self, key) -> MFGResult:
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(f"no population {key!r}; populations: {', '.join(self.names)}")
            key = self.names.index(key)
        return self.populations[key]

    def __len__(self) -> int:
        return len(self.populations)

    @property
    def K(self) -> int:
        return len(self.populations)

    @property
    def u(self) -> np.ndarray:
        return np.stack([r.u for r in self.populations])

    @property
    def m(self) -> np.ndarray:
        return np.stack([r.m for r in self.populations])

    @property
    def alpha(self) -> np.ndarray:
        return np.stack([r.alpha for r in self.populations])

    @property
    def obstacle(self):
        return self.populations[0].obstacle if self.populations else None

    @property
    def outflow(self):
        return None

    def mean(self) -> np.ndarray:
        """(K, Nt+1, ndim): the mean position of each population per time level."""
        return np.stack([r.mean() for r in self.populations])

    def mass_error(self) -> float:
        return max(r.mass_error() for r in self.populations)

    @property
    def final_residual(self) -> float:
        res = self.history.get("residual")
        return float(res[-1]) if res is not None and len(res) else float("nan")

    def summary(self) -> str:
        h = self.history
        wall = float(h["wall_time"][-1]) if "wall_time" in h and len(h["wall_time"]) else float("nan")
        extra = ""
        for key, label in (("hjb_residual", "HJB residual"), ("exploitability", "Nash gap")):
            v = h.get(key)
            if v is not None and len(v) and np.isfinite(v[-1]):
                extra += f"{label} {float(v[-1]):.3e}, "
        shape = " x ".join(str(n) for n in self.grid.shape)
        winner = (self.solver or {}).get("winner")
        method = (self.solver or {}).get("method", "?")
        if winner not in (None, method):
            method = f"{method} ({winner} finished)"
        return (f"{self.status}: {self.iterations} iterations, residual {self.final_residual:.3e}, {extra}"
                f"mass error {self.mass_error():.2e}, wall time {wall:.3f} s; {self.K} populations "
                f"({', '.join(self.names)}), grid {shape}, Nt {len(self.t) - 1}, method {method}")

    def save(self, path) -> None:
        """One HDF5 file: u, m, alpha with a population dimension, the joint history, each population's
        problem record (``io_multi``)."""
        io_multi.save_multi(self, path)


def load_any(path):
    """``mfg_pde.load``: a ``MultiPopulationResult`` from a multi-population file (``io_multi``), else the
    ``MFGResult`` of ``result.load``."""
    if not io_multi.is_multi(path):
        return load(path)
    rec = io_multi.read_multi(path)
    g = rec["grid"]
    grid = Grid(g["bounds"], g["shape"], g["bc"])
    names, t = rec["names"], rec["t"]
    head = {key: rec[key] for key in ("converged", "status", "iterations", "case")}
    pparams = (rec["params"] or {}).get("population_params") or [{}] * len(names)
    pops = []
    for k in range(len(names)):
        r = MFGResult(grid=grid, t=t, u=rec["u"][k], m=rec["m"][k], history={}, params=pparams[k],
                      solver={**(rec["solver"] or {}), "population": k, "name": names[k]}, **head)
        r.alpha = rec["alpha"][k]
        pops.append(r)
    report = None if rec["case_report"] is None else CaseReport(**rec["case_report"])
    return MultiPopulationResult(grid=grid, t=t, names=names, populations=pops, history=rec["history"],
                                 params=rec["params"], solver=rec["solver"], case_report=report, **head)
