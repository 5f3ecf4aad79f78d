"""The package's imports run one way, down through its layers, and never in a cycle.

    ir, errors, runtime  ->  rules  ->  frontend  ->  analysis  ->  passes, ad
        ->  codegen  ->  guards, values, display  ->  driver  ->  higher  ->  api
        ->  compose, explain, check, testing  ->  cli, the package itself

A module may import from its own layer or any layer below it. Imports inside
functions count too (a late import is still a dependency), and so does any cycle
they close. `from adjoint import __version__` reads the one constant the package
sets before it imports anything, and is allowed everywhere. runtime.py imports
nothing from adjoint at all: generated modules paste or import it alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "adjoint"

LAYERS = [
    ("adjoint.ir", "adjoint.errors", "adjoint.runtime"),
    ("adjoint.rules",),
    # lower.py on top of the modules it lowers with: they never import it
    ("adjoint.frontend.source", "adjoint.frontend.check", "adjoint.frontend.markers",
     "adjoint.frontend.normalize", "adjoint.frontend.bindings"),
    ("adjoint.frontend.objects", "adjoint.frontend.sugar", "adjoint.frontend.ordering",
     "adjoint.frontend.strings", "adjoint.frontend.casts",
     "adjoint.frontend.containers"),
    ("adjoint.frontend",),
    ("adjoint.analysis",),
    ("adjoint.passes", "adjoint.ad"),
    ("adjoint.codegen",),
    ("adjoint.guards", "adjoint.values", "adjoint.display", "adjoint.floats"),
    ("adjoint.driver",),
    ("adjoint.higher", "adjoint.index"),  # (the cache's index reads driver's code print)
    ("adjoint.api",),
    ("adjoint.compose", "adjoint.explain", "adjoint.check", "adjoint.testing"),
    ("adjoint.cli", "adjoint"),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = modules()


def layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def imports(module: str) -> set[str]:
    """The adjoint modules `module` imports, at its top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in MODULES:
                    out.add(sub)
                elif not (node.module == "adjoint" and a.name == "__version__"):
                    out.add(node.module)
    out.discard(module)
    return out


GRAPH = {m: imports(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module):
    up = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports from above it: {up}"


def test_the_runtime_imports_nothing_from_adjoint():
    assert GRAPH["adjoint.runtime"] == set()


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(m, path):
        state[m] = 1
        for t in sorted(GRAPH[m]):
            if t == "adjoint":
                continue  # the package imports everything: its own __init__ is the top
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
