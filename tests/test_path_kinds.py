"""What one call sees is not what every call sees.

A value that is an int on the path one call takes may be a float on another, and
a size that depends on the data (`x[x > 0]`) may differ from call to call.

The first call is observed to learn kinds. A value observed to hold only ints is
no float, so it carries no gradient -- unless a varied float can flow into it on
another path (`best = max(best, v)` after `best = 0`; `k = 2 if c else x * 0.5`).
Sizes that depend on the data are forgotten after observing, so the code reads them
at run time. Each program here is compiled on one input and then called on others:
the gradient and the JVP must match finite differences on every call, and the HVP
must match differences of the gradient.
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.testing import check_program, numeric_grad
from tests.test_guards import module

SOURCE = """
import numpy as np


def running_max(x):
    best = 0
    for v in x:
        best = max(best, v)
    return best


def running_min(x):
    low = 0
    for v in x:
        low = min(v, low)
    return low * 2.0


def int_or_float(x):
    if x > 1.0:
        k = 2
    else:
        k = x * 0.5
    return k * x


def counter_or_value(x):
    acc = 0
    i = 0
    while i < 3:
        if x[i] > 0.0:
            acc = acc + x[i] * x[i]
        i += 1
    return acc + np.sum(x)


def selected(x, y):
    z = 1 if x < 0.0 else y
    return z * x + y


def mean_positive(x):
    return np.mean(x[x > 0.0]) * np.sum(x)


def masked_scale(w):
    w = w * 1.0
    w[w > 0.5] *= 0.5
    return np.sum(w ** 3)


def picked(x):
    idx = np.nonzero(x > 0.0)[0]
    return np.sum(x[idx] ** 2) / len(idx)


def grown_list(x):
    L = [x]
    y = x
    while y < 3.0:
        y = y * 1.5
        L.append(y)
    return np.mean(np.array(L))


def appends_to_its_argument(x, xs):
    xs.append(x * x)
    return sum(xs) * x


def list_of_int_or_float(x):
    L = [0, 0]
    if x > 1.0:
        L = [x, x * x]
    return L[0] + L[1] + x


def appended_if(x):
    L = []
    for v in x:
        if v > 0.0:
            L.append(v * v)
    return np.mean(np.array(L))


def defaulted(x, scale=2.0):
    return np.sin(x) * scale
"""

CALLS = [
    ("running_max", [(np.array([-1.0, -0.5]),), (np.array([1.5, 1.7]),),
                     (np.array([0.3, -2.0]),)]),
    ("running_min", [(np.array([1.0, 0.5]),), (np.array([-1.5, 1.7]),)]),
    ("int_or_float", [(1.5,), (0.6,), (3.0,)]),
    ("counter_or_value", [(np.array([-1.0, -2.0, -0.5]),), (np.array([1.0, -2.0, 0.5]),)]),
    ("selected", [(-0.5, 2.0), (0.7, 2.0)]),
    # sizes that depend on the data, not on the arguments' shapes
    ("mean_positive", [(np.array([0.5, -0.7, -0.9, -1.0]),), (np.array([0.5, 0.7, 0.9, -1.0]),)]),
    ("masked_scale", [(np.array([0.9, 0.1, 0.2, 0.3]),), (np.array([0.9, 0.8, 0.7, 0.3]),)]),
    ("picked", [(np.array([0.5, -0.7, 0.2]),), (np.array([-0.5, -0.7, 0.2]),)]),
    ("grown_list", [(2.1,), (0.6,), (2.5,)]),  # a list whose length the data decides
    ("list_of_int_or_float", [(0.5,), (1.4,)]),
    ("appended_if", [(np.array([0.5, -0.7, -0.9]),), (np.array([0.5, 0.7, 0.9]),)]),  # ints in a list on the first path only
]


@pytest.mark.parametrize("name, calls", CALLS, ids=[c[0] for c in CALLS])
def test_every_call_is_right_not_only_the_observed_one(tmp_path, name, calls):
    f = getattr(module(tmp_path, SOURCE), name)
    wrt = tuple(range(len(calls[0])))
    g, j = adjoint.grad(f, wrt=wrt), adjoint.jvp(f, wrt=0)
    for args in calls:
        want = [numeric_grad(f, args, wrt=i) for i in wrt]
        got = g(*args)  # wrt is a tuple: a tuple of gradients, a 1-tuple for one
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
        u = np.ones_like(np.asarray(args[0], dtype=float))
        u = float(u) if np.ndim(u) == 0 else u
        np.testing.assert_allclose(j(*args, u)[1], np.sum(np.asarray(want[0]) * u),
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["masked_scale", "mean_positive"])
def test_hessian_vector_products_on_other_data(tmp_path, name):
    f = getattr(module(tmp_path, SOURCE), name)
    h, g = adjoint.hvp(f), adjoint.grad(f)
    for (x,) in dict(CALLS)[name]:
        v = np.linspace(0.5, 1.5, x.size)
        want = (g(x + 1e-6 * v) - g(x - 1e-6 * v)) / 2e-6
        np.testing.assert_allclose(h(x, v), want, rtol=1e-5, atol=1e-7)


def test_a_list_argument_written_in_place_stays_a_list_and_defaults_fill_in(tmp_path):
    m = module(tmp_path, SOURCE)
    xs = [1.0, 2.0]
    assert adjoint.grad(m.appends_to_its_argument)(0.5, xs) == pytest.approx(
        numeric_grad(m.appends_to_its_argument, (0.5, [1.0, 2.0])), rel=1e-6)
    assert xs == [1.0, 2.0]  # the caller's list is not changed
    value, dot = adjoint.jvp(m.defaulted)(0.3, 1.0)  # `scale` from its default
    assert value == m.defaulted(0.3) and dot == pytest.approx(2.0 * np.cos(0.3))


def test_keyword_arguments_at_call_time(tmp_path):
    m = module(tmp_path, """
        import numpy as np


        def f(x, axis=0, scale=1.0):
            return np.sum(np.mean(x * x, axis=axis)) * scale
        """)
    x = np.arange(6.0).reshape(2, 3) / 5.0
    g = adjoint.grad(m.f)
    np.testing.assert_allclose(g(x, axis=1, scale=2.0), 2.0 * 2 * x / 3, rtol=1e-12)
    np.testing.assert_allclose(g(x, scale=3.0), 3.0 * 2 * x / 2, rtol=1e-12)
    value, pullback = adjoint.vjp(m.f, x, axis=1)
    assert value == m.f(x, axis=1)
    np.testing.assert_allclose(pullback(1.0), 2 * x / 3, rtol=1e-12)
    assert adjoint.jvp(m.f)(x, np.ones_like(x), axis=1)[1] == pytest.approx(np.sum(2 * x / 3))


def test_gradients_keep_the_dtype_and_kind_of_their_argument(tmp_path):
    m = module(tmp_path, """
        import numpy as np


        def f(x, ys):
            return np.sum(x * x) * (ys[0] + 2.0 * ys[1])
        """)
    g = adjoint.grad(m.f, wrt=(0, 1))
    gx, gy = g(np.float32(1.5), [0.5, 0.25])
    assert type(gx) is np.float32 and gx == pytest.approx(3.0)
    assert type(gy) is list and gy == pytest.approx([2.25, 4.5])
    gx, _ = g(np.array([1.0, 2.0], dtype=np.float32), (0.5, 0.25))
    assert gx.dtype == np.float32
    gx, _ = g(np.float64(1.5), (0.5, 0.25))
    assert type(gx) is np.float64


def test_a_dict_of_parameters_gets_a_dict_gradient_and_each_structure_its_own_code(tmp_path):
    m = module(tmp_path, """
        import numpy as np


        def mlp(params, x):
            h = np.tanh(x @ params["W1"] + params["b1"])
            return np.sum((h @ params["W2"]) ** 2)


        def layers(ls, x):
            for W, b in ls:
                x = np.tanh(x @ W + b)
            return np.sum(x * x)
        """)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3))
    g = adjoint.grad(m.mlp)
    for hidden in (4, 6, 4):  # other leaf shapes, same keys: each gets its own code
        p = {"W1": rng.normal(size=(3, hidden)), "b1": rng.normal(size=hidden),
             "W2": rng.normal(size=(hidden, 2))}
        got, want = g(p, x), numeric_grad(m.mlp, (p, x))
        assert type(got) is dict and list(got) == ["W1", "b1", "W2"]
        for k in p:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-8)
    g = adjoint.grad(m.layers)
    for hidden in (4, 2):  # a ragged list of (W, b): the leaves' shapes are in the key
        ls = [(rng.normal(size=(3, hidden)), rng.normal(size=hidden)),
              (rng.normal(size=(hidden, 3)), rng.normal(size=3))]
        got, want = g(ls, x), numeric_grad(m.layers, (ls, x))
        for (gw, gb), (ww, wb) in zip(got, want):
            np.testing.assert_allclose(gw, ww, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(gb, wb, rtol=1e-6, atol=1e-8)


def test_a_loop_straight_over_a_dict_walks_its_keys(tmp_path):
    # lowering reads a loop's elements by position: over a dict (a parameter, or one a
    # loop carries) it walks the keys, int keys too, never positions
    m = module(tmp_path, """
        import numpy as np


        def f(params, x):
            s = 0.0
            for k in params:
                s = s + np.sum(np.sin(params[k]) * x)
            return s


        def steps(params, x):
            for step in range(2):
                params = {k: params[k] - 0.5 * np.tanh(params[k] * x) for k in params}
            return sum(np.sum(params[k] ** 2) for k in params)
        """)
    x = np.array([0.5, -1.0, 2.0])
    for params in ({"a": x * 0.3, "b": x - 1.0}, {1: x * 0.3, 0: x - 1.0}):
        (g,) = check_program(m.f, params, x, wrt=0)
        assert all(np.allclose(g[k], np.cos(params[k]) * x) for k in params)
        check_program(m.steps, params, x, wrt=0)


def test_a_default_list_that_the_function_writes_into_is_refused(tmp_path):
    """Python shares one default list between calls; the gradient copies written
    parameters, so it would not follow the list as it grows. Refused where it is made."""
    m = module(tmp_path, """
import numpy as np


def f(x, seen=[]):
    seen.append(x)
    return x * len(seen)
""")
    with pytest.raises(adjoint.UnsupportedError, match="default value") as e:
        adjoint.grad(m.f)(1.0)
    assert "seen = []" in e.value.hint


DICT_PROGRAMS = """
import numpy as np


def over_items(params, x):
    s = 0.0
    for name, w in params.items():
        s = s + np.sum(np.tanh(w) * x) * (2.0 if name == "b" else 1.0)
    return s


def over_values_and_keys(params, x):
    s = 0.0
    for w in params.values():
        s = s + np.sum(w * w * x)
    for k in params.keys():
        s = s + np.sum(np.sin(params[k]))
    return s


def sgd_step(params, x):
    new = {k: w - 0.1 * w * x for k, w in params.items()}
    return np.sum(new["a"] ** 2) + np.sum(new["b"] * new["a"])


def display(w, x):
    p = {"w": w * 2.0, "x": x, 3: w}
    return np.sum(p["w"] * p["x"]) + np.sum(p[3] ** 3)


def nested(p, x):
    (W, b), extra = p
    return np.sum(np.tanh(x @ W + b)) * extra["s"]
"""


def test_dicts_as_values_loops_displays_and_comprehensions(tmp_path):
    """An SGD step builds a new dict of parameters; a loop reads params.items(). Each
    gradient is a dict with the argument's keys (check_program: central differences,
    translation validation, jvp against vjp), and the code reads as written."""
    m = module(tmp_path, DICT_PROGRAMS)
    rng = np.random.default_rng(4)
    p = {"a": rng.normal(size=3), "b": rng.normal(size=3)}
    x = rng.normal(size=3)
    for name, args in [("over_items", (p, x)), ("over_values_and_keys", (p, x)),
                       ("sgd_step", (p, 0.7)), ("display", (x, x[::-1].copy())),
                       ("nested", (((rng.normal(size=(3, 2)), rng.normal(size=2)),
                                    {"s": 1.5}), x))]:
        got = check_program(getattr(m, name), *args)
        if name == "sgd_step":  # by hand: new = 0.93 w
            a, b = p["a"], p["b"]
            np.testing.assert_allclose(got[0]["a"], 2 * 0.93 ** 2 * a + 0.93 ** 2 * b)
            np.testing.assert_allclose(got[0]["b"], 0.93 ** 2 * a)
    text = adjoint.source(m.sgd_step, args=(p, 0.7))
    assert "new = {}" in text and "for _k in _range:" in text and "new[k] = " in text
    assert "p = {'w': " in adjoint.source(m.display, args=(x, x))
    v = {"a": np.ones(3), "b": np.zeros(3)}
    want = (adjoint.grad(m.sgd_step)({k: p[k] + 1e-6 * v[k] for k in p}, 0.7)["b"] -
            adjoint.grad(m.sgd_step)({k: p[k] - 1e-6 * v[k] for k in p}, 0.7)["b"]) / 2e-6
    np.testing.assert_allclose(adjoint.hvp(m.sgd_step)(p, 0.7, v)["b"], want, rtol=1e-6)


@pytest.mark.parametrize("name", ["over_items", "over_values_and_keys", "sgd_step"])
def test_dict_programs_without_example_arguments(tmp_path, name):
    """The generic module (what `adjoint emit` writes without --args) knows no kinds:
    a loop's dict key must still add into `params_bar[k]`, not np.add.at."""
    m = module(tmp_path, DICT_PROGRAMS)
    f = getattr(m, name)
    namespace = dict(vars(m))
    exec(compile(adjoint.source(f), "<generic>", "exec"), namespace)
    rng = np.random.default_rng(5)
    p = {"a": rng.normal(size=3), "b": rng.normal(size=3)}
    x = rng.normal(size=3) if name != "sgd_step" else 0.7
    got, want = namespace[f"{name}_grad"](p, x), numeric_grad(f, (p, x))
    for k in p:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-8)


def test_an_emitted_gradient_keeps_the_literal_defaults_of_f(tmp_path):
    """Generic code (no example arguments) is called as f is: f_grad(x) for f(x, s=2.0)."""
    m = module(tmp_path, SOURCE)
    text = adjoint.source(m.defaulted)
    assert "def defaulted_grad(x, scale=2.0, *, out_bar=1.0):" in text
    namespace = dict(vars(m))
    exec(compile(text, "<generic>", "exec"), namespace)
    assert namespace["defaulted_grad"](0.5) == pytest.approx(2.0 * np.cos(0.5))


def test_an_emitted_gradient_checks_the_leaves_of_its_containers(tmp_path):
    """np.mean(params['W']) folds W's size into the code: the emitted file checks each
    leaf's shape on entry, or it would be wrong for another W with no word said."""
    m = module(tmp_path, """
        import numpy as np


        def f(params, layers):
            return np.mean(params["W"] ** 2) + np.mean(layers[1] ** 2)
        """)
    args = ({"W": np.ones(4)}, [np.ones(2), np.ones(3)])
    namespace = dict(vars(m))
    exec(compile(adjoint.source(m.f, wrt=(0, 1), args=args), "<emitted>", "exec"), namespace)
    gp, gl = namespace["f_grad"](*args)
    np.testing.assert_allclose(gp["W"], 0.5)
    np.testing.assert_allclose(gl[1], 2.0 / 3.0)
    for other in (({"W": np.ones(5)}, args[1]), (args[0], [np.ones(2), np.ones(4)])):
        with pytest.raises(ValueError, match="regenerate"):
            namespace["f_grad"](*other)


RECORDS = """
import numpy as np
from collections import namedtuple
from dataclasses import dataclass

Layer = namedtuple("Layer", ["W", "b"])


@dataclass
class Model:
    W: np.ndarray
    b: np.ndarray
    scale: float
    name: str = "m"


def mixed(layer, x):
    W, b = layer
    return np.sum(np.tanh(x @ layer.W + b) ** 2) + np.sum(W * W)


def model_loss(m, x):
    h = np.tanh(x @ m.W + m.b) * m.scale
    return np.mean(h ** 2)


def layers_loss(layers, x):
    for layer in layers:
        x = np.tanh(x @ layer.W + layer.b)
    return np.sum(x ** 2)
"""


def test_namedtuples_and_dataclasses_come_back_as_themselves(tmp_path):
    """p.W on a namedtuple or a dataclass: the gradient is the same type, field by field
    (a namedtuple's fields read by name and by position add into one entry)."""
    m = module(tmp_path, RECORDS)
    rng = np.random.default_rng(6)
    W, b, x = rng.normal(size=(2, 2)), rng.normal(size=2), rng.normal(size=2)
    for f, args in ((m.mixed, (m.Layer(W, b), x)), (m.model_loss, (m.Model(W, b, 1.5), x)),
                    (m.layers_loss, ([m.Layer(W, b), m.Layer(2 * W, b)], x))):
        g = check_program(f, *args)[0]
        assert type(g) is type(args[0])
        assert type(adjoint.hvp(f)(*args, args[0])) is type(args[0])
    g = adjoint.grad(m.model_loss)(m.Model(W, b, 1.5), x)
    assert g.name is None and isinstance(g.scale, float)


def test_round_four_duplicate_keys_and_an_hvp_reused_across_a_branch(tmp_path):
    """{'a': x, 'a': sin x} keeps the last value (its cotangent reached both); an hvp
    object first called where a branch is not taken had folded the untaken value's
    shape () into the tangent (sum_to(..., ()))."""
    m = module(tmp_path, """
        import numpy as np


        def duplicate(x):
            d = {"a": x, "a": np.sin(x), 1: x, True: 2.0 * x}
            return np.sum(d["a"]) + np.sum(d[1])


        def branch(x):
            s = 0.0
            if np.sum(x) > 0:
                s = np.sum(np.sin(x) ** 2)
            return s
        """)
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(check_program(m.duplicate, x)[0], np.cos(x) + 2.0)
    h, v = adjoint.hvp(m.branch), np.array([1.0, 0.5])
    np.testing.assert_allclose(h(np.array([-0.5, -0.4]), v), 0.0)  # not taken
    xb = np.array([0.5, 0.4])
    np.testing.assert_allclose(h(xb, v), 2 * np.cos(2 * xb) * v)
