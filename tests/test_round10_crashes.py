"""Round 10b's crash classes: a gradient that came back read-only (G1), the cotangent of
`list(p.items())` (L1), and emitted files that did not run: a namedtuple's entry check
(S1), a standalone file's missing imports (S2), a dict default dropped (S3)."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap
from collections import namedtuple

import numpy as np
import pytest

import adjoint
from adjoint.cli import main as cli_main
from adjoint.testing import numeric_grad

Layer = namedtuple("Layer", ["W", "b"])


def two(x, y):
    return np.sum(x) + np.sum(y * 2.0)


def branchy(x, c):
    if c > 0:
        return np.sum(x)
    return np.sum(x ** 2)


def means(p):
    return np.mean(p["w"]) + np.sum(p["b"])


def spread(x):
    return np.broadcast_to(x[0], (3,))


def items_list(p):
    items = list(p.items())
    return np.sum(items[0][1] ** 2)


def items_enum(p):
    return sum(np.sum(v) * (i + 1) for i, (k, v) in enumerate(list(p.items())))


def mlp(layers, x):
    h = x
    for L in layers:
        h = np.tanh(L.W @ h + L.b)
    return np.sum(h ** 2)


Cfg = namedtuple("Cfg", ["n", "act"])


def powered(x, cfg):
    return np.sum(x ** cfg.n)


def logdet(A):
    sign, ld = np.linalg.slogdet(A)
    return ld


def lgamma2(x):
    return math.lgamma(x) * 2.0


def scaled(x, cfg={"scale": 2.0, "names": ["a", "b"]}):
    return cfg["scale"] * np.sum(x ** 2)


def capped(x, lim=float("inf")):
    return np.sum(np.minimum(x, lim) ** 2)


X = np.array([0.3, -0.7, 1.2])
LAYERS = [Layer(np.array([[0.5, 0.1, 0.0], [0.2, -0.4, 0.3], [0.0, 0.6, 0.1]]),
                np.array([0.1, -0.2, 0.05]))]


def _import(tmp_path, text: str, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _leaves(v):
    if isinstance(v, np.ndarray):
        return [v]
    if isinstance(v, dict):
        return [e for x in v.values() for e in _leaves(x)]
    if isinstance(v, (list, tuple)):
        return [e for x in v for e in _leaves(x)]
    return []


def _own(g, *inputs):
    """Every array in g writeable, sharing memory with no other and with no input."""
    arrays = _leaves(g)
    assert arrays and all(a.flags.writeable for a in arrays)
    for i, a in enumerate(arrays):
        assert not any(np.shares_memory(a, b) for b in arrays[i + 1:] + _leaves(inputs))


# ---------------------------------------------------------------- G1: read-only gradients

def test_gradients_are_writeable_and_their_own(tmp_path):
    y = X + 1.0
    gy = adjoint.grad(two, wrt=1)(X, y)
    _own(gy, X, y)
    np.testing.assert_allclose(gy, [2.0, 2.0, 2.0])  # d/dy sum(2y)
    np.testing.assert_allclose(gy, numeric_grad(two, (X, y), wrt=1), atol=1e-8)
    gy *= 0.5  # clipping in place: raised "output array is read-only"
    value, (gx, gy) = adjoint.value_and_grad(two, wrt=(0, 1))(X, y)
    _own((gx, gy), X, y)
    assert value == pytest.approx(two(X, y))
    gx *= 0.5
    gy *= 0.5
    np.testing.assert_allclose(gx + gy, [1.5, 1.5, 1.5])
    g = adjoint.grad(branchy)(X, 1.0)  # the read-only cotangent in one branch only
    _own(g, X)
    np.testing.assert_allclose(g, numeric_grad(branchy, (X, 1.0)), atol=1e-8)
    np.testing.assert_allclose(adjoint.grad(branchy)(X, -1.0), 2 * X)
    p = {"w": X.copy(), "b": X + 2.0}
    gp = adjoint.grad(means)(p)
    _own(gp, *p.values())
    np.testing.assert_allclose(gp["w"], np.full(3, 1 / 3))
    _own(adjoint.jvp(spread)(X, np.array([1.0, 2.0, 3.0]))[1], X)
    _own(adjoint.hvp(two, wrt=1)(X, y, np.ones(3)), X, y)
    # the emitted files copy the broadcast too, in both branches' code
    for f, args, wrt in [(two, (X, y), 1), (two, (X, y), (0, 1)), (branchy, (X, 1.0), 0)]:
        for standalone in (False, True):
            text = adjoint.source(f, wrt=wrt, args=args, standalone=standalone)
            mod = _import(tmp_path, text, f"g1_{f.__name__}_{len(str(wrt))}_{standalone}")
            got = getattr(mod, f"{f.__name__}_grad")(*args)
            _own(got, *args)
            want = numeric_grad(f, args, wrt=wrt)
            for a, b in zip(_leaves(got), _leaves(want) or [want]):
                np.testing.assert_allclose(a, b, atol=1e-8)


# ---------------------------------------------------------------- L1: list(p.items())

def test_list_of_items_of_a_dict_parameter(tmp_path):
    p = {"a": np.array([1.0, 2.0]), "b": np.array([-0.5, 3.0])}
    g = adjoint.grad(items_list)(p)
    np.testing.assert_allclose(g["a"], 2 * p["a"])  # only the first entry is read
    np.testing.assert_allclose(g["b"], [0.0, 0.0])
    fd = numeric_grad(items_list, (p,))
    np.testing.assert_allclose(g["a"], fd["a"], atol=1e-7)
    g = adjoint.grad(items_enum)(p)
    np.testing.assert_allclose(g["a"], [1.0, 1.0])  # d/dv of sum(v) * (i + 1)
    np.testing.assert_allclose(g["b"], [2.0, 2.0])
    mod = _import(tmp_path, adjoint.source(items_enum, args=(p,)), "l1_items")
    got = mod.items_enum_grad(p)
    np.testing.assert_allclose(got["b"], numeric_grad(items_enum, (p,))["b"], atol=1e-7)


def test_accum_reads_none_as_the_zero_of_a_slot_without_derivative():
    from adjoint.runtime import Cotangents, accum
    assert accum(None, None) is None
    np.testing.assert_allclose(accum(None, np.ones(2)), np.ones(2))
    c = Cotangents([None, np.zeros(2)])
    c += Cotangents([None, np.ones(2)])
    assert c[0] is None
    np.testing.assert_allclose(c[1], np.ones(2))


# ---------------------------------------------------------------- S1: a namedtuple parameter

def test_namedtuple_parameter_source_runs(tmp_path):
    want = adjoint.grad(mlp)(LAYERS, X)
    fd = numeric_grad(mlp, (LAYERS, X))
    np.testing.assert_allclose(want[0].W, fd[0].W, atol=1e-7)
    for standalone in (False, True):
        text = adjoint.source(mlp, args=(LAYERS, X), standalone=standalone)
        mod = _import(tmp_path, text, f"s1_mlp_{standalone}")
        got = mod.mlp_grad(LAYERS, X)
        np.testing.assert_allclose(got[0]["W"], want[0].W, atol=1e-12)
        np.testing.assert_allclose(got[0]["b"], want[0].b, atol=1e-12)
        other = namedtuple("Other", ["W", "b"])(*LAYERS[0])  # another class: refused
        with pytest.raises(ValueError, match="generated for"):
            mod.mlp_grad([other], X)


def test_namedtuple_of_plain_values_is_checked_by_class_name(tmp_path):
    cfg = Cfg(3, "tanh")
    mod = _import(tmp_path, adjoint.source(powered, args=(X, cfg)), "s1_powered")
    np.testing.assert_allclose(mod.powered_grad(X, cfg), 3 * X ** 2)  # was NameError: Cfg
    np.testing.assert_allclose(mod.powered_grad(X, cfg), numeric_grad(powered, (X, cfg)),
                               atol=1e-7)
    for other in (Cfg(2, "tanh"), (3, "tanh")):  # another value, a plain tuple: refused
        with pytest.raises(ValueError, match="generated for"):
            mod.powered_grad(X, other)


def test_cli_args_name_the_module_classes(tmp_path):
    (tmp_path / "nt_model.py").write_text(textwrap.dedent("""
        import numpy as np
        from collections import namedtuple
        Layer = namedtuple("Layer", ["W", "b"])
        def mlp(layers, x):
            h = x
            for L in layers:
                h = np.tanh(L.W @ h + L.b)
            return np.sum(h ** 2)
        """))
    out = tmp_path / "nt_grad.py"
    rc = cli_main(["emit", f"{tmp_path / 'nt_model.py'}:mlp", "--args",
                   "[Layer(np.eye(3) * 0.5, np.ones(3) * 0.1)], np.ones(3)", "-o", str(out)])
    assert rc == 0
    mod = _import(tmp_path, out.read_text(), "nt_grad")
    got = mod.mlp_grad(LAYERS, X)
    np.testing.assert_allclose(got[0]["b"], adjoint.grad(mlp)(LAYERS, X)[0].b, atol=1e-12)


# ---------------------------------------------------------------- S2: standalone imports

def test_standalone_file_imports_what_its_pasted_helpers_need(tmp_path):
    A = np.array([[2.0, 0.3, 0.0], [0.1, 1.5, 0.2], [0.0, 0.4, 3.0]])
    (tmp_path / "logdet_grad.py").write_text(adjoint.source(logdet, args=(A,),
                                                            standalone=True))
    # polygamma, pasted, reads the list _BERNOULLI: NameError when called
    (tmp_path / "lgamma2_grad.py").write_text(adjoint.source(lgamma2, args=(2.5,),
                                                             standalone=True))
    run = textwrap.dedent(f"""
        import sys
        sys.modules["adjoint"] = None  # any import of adjoint fails
        import numpy as np
        import logdet_grad, lgamma2_grad
        A = np.array({A.tolist()})
        np.save("g.npy", logdet_grad.logdet_grad(A))
        np.save("l.npy", lgamma2_grad.lgamma2_grad(2.5))
        try:
            logdet_grad.logdet_grad(np.zeros((3, 3)))
        except Exception as e:  # the pasted error class, at the user's line
            print(type(e).__name__, str(e).splitlines()[0])
        """)
    (tmp_path / "run.py").write_text(run)
    out = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), np.linalg.inv(A).T, atol=1e-12)
    psi = -0.5772156649015329 - 2 * math.log(2) + 2 + 2 / 3  # digamma(5/2)
    assert float(np.load(tmp_path / "l.npy")) == pytest.approx(2 * psi, abs=1e-12)
    assert 2 * psi == pytest.approx(numeric_grad(lgamma2, (2.5,)), abs=1e-7)
    assert out.startswith("NonDifferentiableError") and "singular" in out
    assert "test_round10_crashes.py" in out  # located at logdet's line


# ---------------------------------------------------------------- S3: defaults

def test_container_defaults_are_kept_in_the_emitted_signature(tmp_path):
    mod = _import(tmp_path, adjoint.source(scaled, args=(X,)), "s3_scaled")
    np.testing.assert_allclose(mod.scaled_grad(X), 4.0 * X)  # 2 * scale * x
    np.testing.assert_allclose(mod.scaled_grad(X), numeric_grad(scaled, (X,)), atol=1e-7)
    np.testing.assert_allclose(adjoint.grad(scaled)(X), 4.0 * X)
    # repr(inf) is not Python: that default is not printed, and the file imports
    mod = _import(tmp_path, adjoint.source(capped, args=(X, np.inf)), "s3_capped")
    np.testing.assert_allclose(mod.capped_grad(X, np.inf), 2 * X)
