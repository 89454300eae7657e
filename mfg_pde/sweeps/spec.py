"""What a sweep runs: the case, the varied parameters (the study's dimensions) and the fixed ones.

``--vary`` values (``parse_values``):

* a list, ``beta=1,2,4`` (each value parsed as the parameter's type);
* ``linspace(a, b, n)``: n evenly spaced values from a to b, both included (``numpy.linspace``);
* ``geomspace(a, b, n)``: n geometrically spaced values from a to b, both included (``numpy.geomspace``);
* ``logspace(a, b, n)``: n values from 10**a to 10**b (``numpy.logspace``: a and b are exponents);
* ``range(a, b[, step])``: integers a, a + step, ... below b (Python's ``range``).

Several parameters varied together along one dimension (a grid-refinement study: N and Nt doubled
together) are written ``N,Nt=50:50,100:100,200:200``: the dimension is named by the first parameter and
the others are coordinates along it.  In Python: ``vary={("N", "Nt"): [(50, 50), (100, 100)]}``.

The dimensions are the product of the ``--vary`` options, in their order (the last varies fastest).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re

import numpy as np

from ..cases import CaseError, get as get_case

__all__ = ["Dimension", "Study", "SweepError", "parse_values"]


class SweepError(ValueError):
    """A bad sweep request (one line, meant for the user): unknown parameter, malformed values, an output
    that cannot be written or that holds another study."""


_FUNC = re.compile(r"^\s*(linspace|geomspace|logspace|range)\s*\((.*)\)\s*$", re.IGNORECASE)


def _numbers(name, func, args_text, count):
    parts = [a.strip() for a in args_text.split(",")]
    if len(parts) not in count or not all(parts):
        want = " or ".join(str(c) for c in count)
        raise SweepError(f"--vary {name}={func}({args_text}): {func} takes {want} numbers, e.g. "
                         f"{name}={func}(0.5, 8, 16)" if func != "range" else
                         f"--vary {name}=range({args_text}): range takes 2 or 3 integers, e.g. "
                         f"{name}=range(100, 401, 100)")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise SweepError(f"--vary {name}={func}({args_text}): the arguments must be numbers") from None


def _expand(name: str, text: str) -> list:
    """The raw values of one parameter from its ``--vary`` text (strings, or numbers from a function)."""
    m = _FUNC.match(text)
    if m is None:
        if "(" in text or ")" in text:
            raise SweepError(f"--vary {name}={text}: not a list of values nor linspace(a, b, n), geomspace(a, b, n), "
                             "logspace(a, b, n) or range(a, b[, step])")
        values = [v.strip() for v in text.split(",")]
        if not text.strip() or any(not v for v in values):
            raise SweepError(f"--vary {name}={text!r}: give comma-separated values, e.g. {name}=1,2,4 (an empty "
                             "value is not allowed)")
        return values
    func, args = m.group(1).lower(), m.group(2)
    if func == "range":
        nums = _numbers(name, func, args, (2, 3))
        if not all(float(v).is_integer() for v in nums):
            raise SweepError(f"--vary {name}=range({args}): range takes integers")
        vals = list(range(*(int(v) for v in nums)))
    else:
        a, b, n = _numbers(name, func, args, (3,))
        if not n.is_integer() or n < 1:
            raise SweepError(f"--vary {name}={func}({args}): the count n must be a positive integer")
        if func == "geomspace" and (a == 0 or b == 0 or (a < 0) != (b < 0)):
            raise SweepError(f"--vary {name}=geomspace({args}): the ends must be non-zero and of one sign")
        vals = list(getattr(np, func)(a, b, int(n)))
    if not vals:
        raise SweepError(f"--vary {name}={text}: gives no values")
    return [v.item() if isinstance(v, np.generic) else v for v in vals]


def _convert(case, name, raw):
    """raw (a string from the command line or a Python value) as the type of the case's parameter ``name``.
    Only the type is checked here; ranges and cross-parameter rules are the case's (``Case.resolve``), checked
    per point, so that a value the case rejects is a failed point of the study, not a failed study."""
    known = {p.name: p for p in case.params}
    if name not in known:
        case.resolve({name: raw})   # raises the case's message (renamed parameter, list of known ones)
    param = known[name]
    if param.output:
        raise SweepError(f"--vary/--set {name}: an output parameter (a file each run writes) cannot be set in a "
                         "sweep: every point would overwrite it; the study's results go to --out")
    kind = type(param.default)
    if kind is int and isinstance(raw, (float, np.floating)) and not float(raw).is_integer():
        raise SweepError(f"--vary {name}: {raw!r} is not an integer, and {name} is an integer parameter "
                         "(use range(...) or a list of integers)")
    loose = dataclasses.replace(param, positive=False, nonnegative=False, choices=None)
    try:
        return loose.parse(raw)
    except CaseError as exc:
        raise SweepError(f"--vary/--set {exc}") from None


def parse_values(case, name: str, values) -> list:
    """The values of parameter ``name`` of ``case`` from a ``--vary`` text (see the module docstring) or a
    Python sequence, each converted to the parameter's type; repeated values are an error."""
    raw = _expand(name, values) if isinstance(values, str) else list(np.atleast_1d(values).tolist()
                                                                     if isinstance(values, np.ndarray) else values)
    if not raw:
        raise SweepError(f"--vary {name}: no values")
    out = [_convert(case, name, v) for v in raw]
    seen = set()
    for v in out:
        if v in seen:
            raise SweepError(f"--vary {name}: the value {v!r} is repeated")
        seen.add(v)
    return out


@dataclasses.dataclass
class Dimension:
    """One dimension of the study: ``names[0]`` names it; ``values`` holds one tuple per position, one entry
    per name (several names: parameters varied together)."""

    names: tuple
    values: list

    @property
    def name(self) -> str:
        return self.names[0]

    def __len__(self) -> int:
        return len(self.values)


def _parse_linked(case, names, values) -> list:
    if isinstance(values, str):
        items = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in items):
            raise SweepError(f"--vary {','.join(names)}={values!r}: give comma-separated tuples "
                             f"{':'.join(['a'] * len(names))}, e.g. N,Nt=50:50,100:100")
        rows = [tuple(x.strip() for x in item.split(":")) for item in items]
    else:
        rows = [tuple(r) for r in values]
    for r in rows:
        if len(r) != len(names):
            shown = ":".join(map(str, r))
            raise SweepError(f"--vary {','.join(names)}: {shown!r} has {len(r)} values, expected {len(names)} "
                             f"(one per parameter, separated by ':')")
    cols = [[_convert(case, n, r[k]) for r in rows] for k, n in enumerate(names)]
    tuples = list(zip(*cols))
    if len(set(tuples)) != len(tuples) or len(set(cols[0])) != len(cols[0]):
        raise SweepError(f"--vary {','.join(names)}: a value of {names[0]} is repeated (it names the dimension)")
    return tuples


class Study:
    """A case, its varied parameters (the dimensions, ``Dimension``) and its fixed parameters.

    ``vary``: an ordered mapping name -> values (a ``--vary`` text or a sequence) or (name, name, ...) ->
    sequence of tuples; ``fixed``: name -> value (``--set``).  Unknown parameters, a parameter both varied and
    fixed, malformed values and output parameters raise ``SweepError`` / ``CaseError``."""

    def __init__(self, case, vary: dict, fixed: dict | None = None):
        self.case = get_case(case) if isinstance(case, str) else case
        if not vary:
            raise SweepError("a sweep needs at least one --vary NAME=VALUES (e.g. --vary beta=1,2,4)")
        self.fixed = {}
        for name, raw in (fixed or {}).items():
            self.fixed[name] = _convert(self.case, name, raw)
        self.dims = []
        seen = set()
        for key, values in vary.items():
            names = tuple(n.strip() for n in key.split(",")) if isinstance(key, str) else tuple(key)
            if not all(names):
                raise SweepError(f"--vary {key}=...: empty parameter name")
            for n in names:
                if n in seen:
                    raise SweepError(f"--vary {n}: the parameter is varied twice")
                if n in self.fixed:
                    raise SweepError(f"parameter {n} is both varied (--vary) and fixed (--set): give one")
                seen.add(n)
            if len(names) == 1:
                vals = [(v,) for v in parse_values(self.case, names[0], values)]
            else:
                vals = _parse_linked(self.case, names, values)
            self.dims.append(Dimension(names, vals))
        # the fixed parameters as the case resolves them (defaults included): recorded in the output
        base = {**self.case.defaults(), **self.fixed}
        self.params = {k: v for k, v in base.items() if k not in seen}

    @property
    def shape(self) -> tuple:
        return tuple(len(d) for d in self.dims)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dim_names(self) -> list:
        return [d.name for d in self.dims]

    @property
    def varied(self) -> list:
        return [n for d in self.dims for n in d.names]

    def points(self):
        """(index tuple, overrides dict) of every point, in C order (the last dimension fastest)."""
        for idx in itertools.product(*(range(len(d)) for d in self.dims)):
            over = dict(self.fixed)
            for d, i in zip(self.dims, idx):
                over.update(zip(d.names, d.values[i]))
            yield idx, over

    def key_of(self, idx) -> tuple:
        """The point's coordinates (one value per dimension, its first name's value)."""
        return tuple(d.values[i][0] for d, i in zip(self.dims, idx))

    def fingerprint(self) -> str:
        """JSON of what makes two studies the same (case, fixed parameters, varied names): an output file
        of the same fingerprint can be resumed."""
        return json.dumps({"case": self.case.name, "params": _jsonable(self.params),
                           "dims": [list(d.names) for d in self.dims]}, sort_keys=True)

    def describe(self) -> str:
        return " x ".join(f"{d.name}[{len(d)}]" for d in self.dims)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
