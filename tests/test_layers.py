"""The package's import graph points one way: from the command line down to the model.

Every import statement in the package (module level or inside a function) is an edge; the test fails on
an import cycle between modules and on an import from a lower layer into a higher one.  Layers, lowest
first (siblings on one layer may import each other, without cycles):

    _version < model < {io, io_multi} < result < fd < diagnostics < {iterate, newton, planning, particles, oracles}
    < {studies, richardson, plotting} < cases < sweeps < cli < the package's __init__
"""

import ast
import os

import pytest

import mfg_pde

ROOT = os.path.dirname(mfg_pde.__file__)
LAYERS = [("_version",), ("model",), ("io", "io_multi"), ("result",), ("fd",), ("diagnostics",),
          ("iterate", "newton", "planning", "particles", "oracles"), ("studies", "richardson", "plotting"),
          ("cases",), ("sweeps",), ("cli",)]


def _modules():
    mods = {}
    for dirpath, _dirs, files in os.walk(ROOT):
        if "__pycache__" in dirpath:
            continue
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = "mfg_pde." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                is_pkg = name.endswith(".__init__")
                mods[name[: -len(".__init__")] if is_pkg else name] = (path, is_pkg)
    return mods


MODULES = _modules()


def _edges():
    edges = {m: set() for m in MODULES}
    for mod, (path, is_pkg) in MODULES.items():
        package = mod if is_pkg else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(open(path).read())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from pkg import submodule` is an edge to the submodule
                    sub = f"{target}.{alias.name}"
                    targets.append(sub if sub in MODULES else target)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for t in targets:
                if t in MODULES and t != mod and not (MODULES[t][1] and mod.startswith(t + ".")):
                    edges[mod].add(t)
    return edges


def _layer(mod):
    if mod == "mfg_pde":
        return len(LAYERS)
    top = mod.split(".")[1]
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"module {mod} is on no layer: add its folder to LAYERS in this test")


def test_every_module_is_on_a_layer():
    for mod in MODULES:
        _layer(mod)


def test_imports_point_down():
    edges = _edges()
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
              for m in sorted(edges) for t in sorted(edges[m])
              if _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges = _edges()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("bad", ["upward", "cycle"])
def test_the_checks_can_fail(bad, monkeypatch):
    """An added upward edge or cycle is caught (the checks are not vacuous)."""
    real = _edges()

    def fake():
        e = {m: set(v) for m, v in real.items()}
        if bad == "upward":
            e["mfg_pde.model.grid"].add("mfg_pde.fd.kernels")
        else:
            e["mfg_pde.fd.kernels"].add("mfg_pde.fd.hjb")
        return e

    import sys
    monkeypatch.setattr(sys.modules[__name__], "_edges", fake)
    check = test_imports_point_down if bad == "upward" else test_no_import_cycle
    with pytest.raises(AssertionError):
        check()
