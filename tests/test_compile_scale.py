"""Compiling long functions: no pass may walk the whole function for each of its
statements (quadratic time), or recurse once a statement (Python's stack).

A straight-line function of a few hundred statements crashed with RecursionError
(a rule's shape folding walked every definition back to the arguments); the naming
pass tested every pair of values that share a name. Timings live in benchmarks/;
here the long programs must compile and be right, and the sweeps that replaced
pairwise tests must agree with them.
"""
import importlib.util
import itertools

import numpy as np
from hypothesis import given, settings, strategies as st

import adjoint
from adjoint.codegen.naming import _overlap, _overlapping
from adjoint.testing import numeric_grad


def _long_function(tmp_path, n: int):
    """f(x, w): n statements `x = np.sin(x) * w + c_k`, a chain as deep as n."""
    lines = ["import numpy as np", "", "", "def f(x, w):"]
    lines += [f"    x = np.sin(x) * w + {0.1 + k * 1e-3!r}" for k in range(n)]
    lines += ["    return np.sum(x * x)", ""]
    path = tmp_path / f"long{n}.py"
    path.write_text("\n".join(lines))
    spec = importlib.util.spec_from_file_location(f"long{n}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.f


def test_a_long_straight_line_function_compiles_and_is_right(tmp_path):
    f = _long_function(tmp_path, 400)
    x, w = np.array([0.3, -0.2, 0.9]), 0.8
    value, (dx, dw) = adjoint.value_and_grad(f, wrt=(0, 1), cache_dir=tmp_path)(x, w)
    assert np.isclose(value, f(x, w))
    np.testing.assert_allclose(dx, numeric_grad(f, (x, w), 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dw, numeric_grad(f, (x, w), 1), rtol=1e-6, atol=1e-9)
    # generic code too (no call observed: no shape is known to stop a walk early)
    assert "def f_grad" in adjoint.source(f, wrt=(0, 1))


spans = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 4)).map(
    lambda t: (t[0], t[0] + t[1])), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(spans, min_size=1, max_size=6))
def test_the_span_sweep_finds_what_the_pairwise_test_finds(owners):
    owner = [object() for _ in owners]
    want = set()
    for i, j in itertools.combinations(range(len(owners)), 2):
        if _overlap(owners[i], owners[j]):
            want |= {owner[i], owner[j]}
    got = _overlapping([(s, e, owner[i]) for i, ss in enumerate(owners) for s, e in ss])
    assert got == want
