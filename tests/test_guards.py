"""Every fact a compiled gradient depends on is in its cache key or checked on each call.

* an int, bool or string argument folded into the code (an axis: np.mean divides by
  x.shape[axis]) is keyed by value, in memory and on disk, for grad and hvp;
* a global the function reads (a float folded in, a helper inlined, an array whose
  shape is in the code) is checked on each call; a changed one compiles anew;
* vjp of a function that returns a global array, or has defaulted parameters.
"""
from __future__ import annotations

import importlib.util
import sys
import textwrap

import numpy as np
import pytest

import adjoint
from adjoint.testing import numeric_grad

_count = [0]


def module(tmp_path, text: str):
    """Import `text` as a fresh module from a real file (the compiler reads its source)."""
    _count[0] += 1
    name = f"guarded_{_count[0]}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


REDUCTIONS = """
import numpy as np


def mean_sq(x, axis):
    return np.sum(np.mean(x, axis=axis) ** 2)


def var_sum(x, axis):
    return np.sum(np.var(x, axis=axis) * np.std(x, axis=axis))


def keep(x, axis, keepdims):
    return np.sum(np.mean(x, axis=axis, keepdims=keepdims) * x)
"""


@pytest.mark.parametrize("name", ["mean_sq", "var_sum"])
def test_an_axis_argument_gets_its_own_specialisation(tmp_path, name):
    f = getattr(module(tmp_path, REDUCTIONS), name)
    x = np.random.default_rng(0).normal(size=(2, 3))
    g = adjoint.grad(f, cache_dir=tmp_path / "cache")
    for axis in (0, 1, 0, -1, np.int64(1)):
        np.testing.assert_allclose(g(x, axis), numeric_grad(f, (x, axis)), rtol=1e-6, atol=1e-8)
    # a second gradient object finds the right file on disk
    fresh = adjoint.grad(f, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(fresh(x, 1), numeric_grad(f, (x, 1)), rtol=1e-6, atol=1e-8)


def test_a_tuple_axis_and_a_bool_are_keyed_by_value(tmp_path):
    f = module(tmp_path, REDUCTIONS).keep
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    g = adjoint.grad(f)
    for axis, keepdims in [((0, 1), True), ((1, 2), True), (1, True), (2, True)]:
        np.testing.assert_allclose(g(x, axis, keepdims), numeric_grad(f, (x, axis, keepdims)),
                                   rtol=1e-6, atol=1e-8)


def test_one_hvp_object_over_two_axes(tmp_path):
    f = module(tmp_path, REDUCTIONS).mean_sq
    x = np.random.default_rng(2).normal(size=(2, 3))
    v = np.random.default_rng(3).normal(size=(2, 3))
    h = adjoint.hvp(f)
    for axis in (0, 1):
        # mean_sq is a quadratic form: H v = d/dt grad(x + t v), exactly
        g = adjoint.grad(f)
        want = (g(x + 1e-3 * v, axis) - g(x - 1e-3 * v, axis)) / 2e-3
        np.testing.assert_allclose(h(x, axis, v), want, rtol=1e-8)


def test_an_int_that_folds_nothing_shares_one_specialisation(tmp_path):
    m = module(tmp_path, """
        import numpy as np


        def pick(x, i):
            return np.sin(x[i]) * x[i + 1]


        def steps(x, n):
            s = 0.0
            for k in range(n):
                s = s + np.sin(x * k)
            return s
        """)
    x = np.linspace(0.1, 1.0, 8)
    g = adjoint.grad(m.pick)
    for i in range(7):
        np.testing.assert_allclose(g(x, i), numeric_grad(m.pick, (x, i)), rtol=1e-6, atol=1e-9)
    assert len({id(c) for c in g.compiled.values()}) == 1  # one compilation for seven indices
    h = adjoint.grad(m.steps)
    for n in (3, 5, 3):  # a trip count is observed: its own code, each right
        assert h(0.7, n) == pytest.approx(numeric_grad(m.steps, (0.7, n)), rel=1e-6)


GLOBALS = """
import numpy as np

scale = 3.0
W = np.array([1.0, 2.0, 3.0])


def helper(z):
    return z * z


def f(x):
    return np.sum(scale * helper(x) * W)


def g(s):
    return scale * s * s
"""

OTHER_HELPER = """
def helper(z):
    return z * z * z
"""


def test_a_changed_float_global_is_seen(tmp_path):
    m = module(tmp_path, GLOBALS)
    x = np.array([1.0, 2.0, 3.0])
    g = adjoint.grad(m.f)
    np.testing.assert_allclose(g(x), 2 * 3.0 * x * m.W)
    m.scale = 5.0
    np.testing.assert_allclose(g(x), 2 * 5.0 * x * m.W)
    h = adjoint.grad(m.g)
    assert h(2.0) == pytest.approx(20.0)
    m.scale = 0.5
    assert h(2.0) == pytest.approx(2.0)


def test_a_redefined_helper_is_seen(tmp_path):
    m = module(tmp_path, GLOBALS)
    x = np.array([1.0, 2.0, 3.0])
    g = adjoint.grad(m.f)
    np.testing.assert_allclose(g(x), 2 * 3.0 * x * m.W)
    m.helper = module(tmp_path, OTHER_HELPER).helper  # as a notebook cell run again does
    np.testing.assert_allclose(g(x), 3 * 3.0 * x * x * m.W)
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)


def test_a_global_array_replaced_or_reshaped_is_seen(tmp_path):
    m = module(tmp_path, GLOBALS)
    x = np.array([1.0, 2.0, 3.0])
    g = adjoint.grad(m.f)
    g(x)
    m.W = np.array([[1.0], [2.0]])  # a new shape: the gradient broadcasts differently
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)
    m.W.shape = (1, 2, 1)  # the same object, reshaped in place
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)
    m.W[...] = 7.0  # a mutated array is read live: no recompilation needed, still right
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)


def test_a_global_list_or_dict_whose_arrays_change_shape_is_seen(tmp_path):
    # round 11: the guard checked that L and P were the same objects, and the code was
    # specialised on the shapes they held (the sum's broadcast to (6, 3)): after L[0] and
    # P['w'] took another shape, grad, hvp and an emitted file were silently wrong
    m = module(tmp_path, """
        import numpy as np

        L = [np.ones(3)]
        P = {"w": np.ones(3)}


        def f(x):
            return np.sum(x[:, None] * L[0]) + np.mean(x[:, None] ** 2 * P["w"])
        """)
    x = np.arange(1.0, 7.0)

    def want(x):  # d/dx_i of sum_ij(x_i a_j) + mean_ij(x_i^2 b_j)
        a, b = m.L[0], m.P["w"]
        return np.sum(a) + 2 * x * np.sum(b) / (6 * b.size)

    g, h = adjoint.grad(m.f), adjoint.hvp(m.f)
    files = [adjoint.source(m.f, args=(x,))]
    np.testing.assert_allclose(g(x), want(x))
    np.testing.assert_allclose(h(x, np.ones(6)), 2 * np.sum(m.P["w"]) / (6 * 3))
    m.L[0], m.P["w"] = np.full(1, 2.0), np.full(1, 3.0)  # broadcasts as (3,) did
    np.testing.assert_allclose(g(x), want(x))
    np.testing.assert_allclose(h(x, np.ones(6)), 2 * 3.0 / 6)
    for text in files:
        namespace = {}
        exec(text, namespace)
        with pytest.raises(RuntimeError, match=r"L, .*P\); regenerate it"):
            namespace["f_grad"](x)


def test_a_changed_global_seen_by_hvp(tmp_path):
    m = module(tmp_path, GLOBALS)
    h = adjoint.hvp(m.g)
    assert h(2.0, 1.0) == pytest.approx(6.0)
    m.scale = 4.0
    assert h(2.0, 1.0) == pytest.approx(8.0)


def test_a_global_that_hides_a_builtin_is_seen(tmp_path):
    m = module(tmp_path, """
        def f(x):
            return abs(x) * 2.0
        """)
    g = adjoint.grad(m.f)
    assert g(-3.0) == pytest.approx(-2.0)
    m.abs = module(tmp_path, "def abs(v):\n    return v * v\n").abs
    assert g(-3.0) == pytest.approx(-12.0)


def test_a_changed_attribute_of_a_user_module_or_class_is_seen(tmp_path):
    config = module(tmp_path, "scale = 2.0\n\n\nclass Consts:\n    power = 3.0\n")
    m = module(tmp_path, f"""
        import numpy as np
        import {config.__name__} as config
        from {config.__name__} import Consts


        def f(x):
            return config.scale * x ** Consts.power
        """)
    g = adjoint.grad(m.f)
    assert g(2.0) == pytest.approx(2.0 * 3 * 4.0)
    config.scale = 5.0
    assert g(2.0) == pytest.approx(5.0 * 3 * 4.0)
    config.Consts.power = 2.0
    assert g(2.0) == pytest.approx(5.0 * 2 * 2.0)



def test_a_changed_attribute_along_a_chain_is_seen(tmp_path):
    """`pkg.sub.scale` and `config.Inner.power`: each link of the chain is guarded (only
    `name.attr` was: a changed pkg.sub.scale kept its old number in the gradient)."""
    config = module(tmp_path, "class Inner:\n    power = 3.0\n")
    config.sub = module(tmp_path, "scale = 2.0\n")
    m = module(tmp_path, f"""
        import {config.__name__} as config


        def f(x):
            return config.sub.scale * x ** config.Inner.power
        """)
    g = adjoint.grad(m.f)
    assert g(2.0) == pytest.approx(2.0 * 3 * 4.0)
    config.sub.scale = 5.0
    assert g(2.0) == pytest.approx(5.0 * 3 * 4.0)
    config.Inner.power = 2.0
    assert g(2.0) == pytest.approx(5.0 * 2 * 2.0)


VJP = """
import numpy as np

W = np.array([1.0, 2.0, 3.0])


def returns_global(x):
    return W


def with_defaults(x, a=2.0, b=3.0):
    return a * x * x + b * x
"""


def test_vjp_of_a_function_returning_a_global_array(tmp_path):
    m = module(tmp_path, VJP)
    out, pullback = adjoint.vjp(m.returns_global, np.ones(3))
    np.testing.assert_array_equal(out, m.W)
    np.testing.assert_array_equal(pullback(np.ones(3)), np.zeros(3))


def test_vjp_with_defaulted_parameters(tmp_path):
    m = module(tmp_path, VJP)
    x = np.array([1.0, 2.0, 3.0])
    out, pullback = adjoint.vjp(m.with_defaults, x)
    np.testing.assert_allclose(out, 2 * x * x + 3 * x)
    u = np.array([1.0, -1.0, 0.5])
    np.testing.assert_allclose(pullback(u), u * (4 * x + 3))
    out, pullback = adjoint.vjp(m.with_defaults, x, 1.0, wrt=(0, 2))
    gx, gb = pullback(u)
    np.testing.assert_allclose(out, x * x + 3 * x)
    np.testing.assert_allclose(gx, u * (2 * x + 3))
    assert gb == pytest.approx(float(np.sum(u * x)))


def test_hvp_after_a_branch_that_writes_into_a_copy(tmp_path):
    """It raised KeyError: %w (the reverse of the branch read the array before the write
    that restores it was defined; fixed in ad/reverse.py)."""
    m = module(tmp_path, """
        import numpy as np


        def f(x, y):
            w = x.copy()
            if y <= 1:
                w[1] += y
            return np.max(w * w)
        """)
    x, y = np.array([1.0, 5.0, 2.0]), 0.5
    # f = (x[1] + y) ** 2 here: d2f/dy2 = 2, and the Hessian in x is 2 at [1, 1]
    assert adjoint.hvp(m.f, wrt=1)(x, y, 1.0) == pytest.approx(2.0)
    v = np.array([0.3, -0.7, 1.1])
    np.testing.assert_allclose(adjoint.hvp(m.f)(x, y, v), [0.0, 2 * -0.7, 0.0], atol=1e-12)
    g = adjoint.grad(m.f)
    want = (g(x + 1e-4 * v, y) - g(x - 1e-4 * v, y)) / 2e-4
    np.testing.assert_allclose(adjoint.hvp(m.f)(x, y, v), want, rtol=1e-6, atol=1e-9)


def test_a_rebound_closure_variable_is_seen(tmp_path):
    m = module(tmp_path, """
        def make():
            k = 2.0

            def f(x):
                return k * x * x

            def set_k(v):
                nonlocal k
                k = v
            return f, set_k
        """)
    f, set_k = m.make()
    g = adjoint.grad(f)
    assert g(3.0) == pytest.approx(12.0)
    set_k(5.0)
    assert g(3.0) == pytest.approx(30.0)


def test_one_array_for_two_parameters_one_written_is_refused(tmp_path):
    # Python's f(y, y) writes through `a` into `b`; the gradient copies `a` on entry, so
    # it would differentiate another function: refused, and fine with a copy
    m = module(tmp_path, """
        import numpy as np


        def f(a, b):
            a[0] = 0.0
            return np.sum(a * b)
        """)
    y = np.array([1.0, 2.0, 3.0])
    g = adjoint.grad(m.f, wrt=(0, 1))
    with pytest.raises(adjoint.AdjointError, match="share memory") as e:
        g(y, y)
    assert "y.copy()" not in str(e.value) and "a.copy()" in str(e.value)
    ga, gb = g(y.copy(), y)
    np.testing.assert_allclose(ga, [0.0, 2.0, 3.0])
    np.testing.assert_allclose(gb, [0.0, 2.0, 3.0])
    # a file emitted for arrays checks it too (it copies `a` on entry as well)
    namespace = dict(vars(m))
    exec(adjoint.source(m.f, wrt=(0, 1), args=(y.copy(), y)), namespace)
    with pytest.raises(ValueError, match="f writes into a in place"):
        namespace["f_grad"](y, y)
    np.testing.assert_allclose(namespace["f_grad"](y.copy(), y)[0], [0.0, 2.0, 3.0])


def test_a_written_leaf_shared_with_another_leaf_or_a_global_is_refused(tmp_path):
    # `x *= y` on a parameter, or `p['W'] *= y` on a dict parameter's array, is an
    # update of the caller's array: if a global f reads, or another leaf, is that array,
    # Python's f sees the change and the gradient (which copies x on entry) would not
    m = module(tmp_path, """
        import numpy as np

        G = np.array([1.0, 2.0, 3.0])


        def f(y, x):
            x *= y
            return np.sum(G * y) + np.sum(x)


        def tied(y, p):
            p['W'] *= y
            return np.sum(p['W_dec'] ** 2) + np.sum(p['W'])
        """)
    y = np.array([0.5, -1.0, 0.7])
    with pytest.raises(adjoint.AdjointError, match="`x` and `G` share memory") as e:
        adjoint.grad(m.f)(y, m.G)
    assert e.value.loc is not None and "x.copy()" in str(e.value)
    g = adjoint.grad(m.f)(y, m.G.copy())  # a copy: G is a constant, the hand formula
    np.testing.assert_allclose(g, m.G + m.G * 1.0)
    W = np.array([1.0, 2.0, 3.0])
    with pytest.raises(adjoint.AdjointError, match=r"`p\['W'\]` and `p\['W_dec'\]`"):
        adjoint.grad(m.tied)(y, {"W": W, "W_dec": W})
    W2 = np.arange(6.0)  # two views of one buffer that do not overlap are fine
    p = {"W": W2[:3], "W_dec": W2[3:]}
    got = adjoint.grad(m.tied)(y, p)
    np.testing.assert_allclose(got, numeric_grad(m.tied, (y, {"W": W2[:3].copy(),
                                                               "W_dec": W2[3:].copy()})))


UNROLLED = """
import functools
import operator

import numpy as np

TABLE = {"a": 0.5, "b": 2.0}
COEF = [0.5, 2.0]
PAIR = (0.5, 2.0)
OPTS = {"s": 1.5}


def _scaled(x, s=1.0):
    return x * s


def by_sorted_items(x):
    s = 0.0
    for k, v in sorted(TABLE.items()):
        s = s + v * np.sum(x * x)
    return s


def by_reduce(x):
    return functools.reduce(operator.mul, COEF) * np.sum(x * x)


def by_argmin(x):
    return TABLE[min(TABLE, key=TABLE.get)] * np.sum(x * x)


def by_keywords(x):
    return np.sum(_scaled(x, **OPTS) * x)


def by_tuple(x):
    a, b = PAIR
    return a * b * np.sum(x * x)
"""

# each function's factor c in c * sum(x^2), from the module's globals now
FACTORS = {
    "by_sorted_items": lambda m: sum(m.TABLE.values()),
    "by_reduce": lambda m: m.COEF[0] * m.COEF[1],
    "by_argmin": lambda m: min(m.TABLE.values()),
    "by_keywords": lambda m: m.OPTS["s"],
    "by_tuple": lambda m: m.PAIR[0] * m.PAIR[1],
}


@pytest.mark.parametrize("name", sorted(FACTORS))
def test_a_global_container_whose_numbers_lowering_unrolled_is_guarded(tmp_path, name):
    # round 15, S1: sorted(TABLE.items()), reduce(mul, COEF), min(D, key=D.get) and
    # f(x, **OPTS) unroll a global container when the function is lowered, folding its
    # floats into the code; the guard keyed it on the kinds it held, so a float changed
    # in place gave the old gradient (grad, hvp) and an emitted file ran on (no check)
    m = module(tmp_path, UNROLLED)
    f, x = getattr(m, name), np.array([1.0, 2.0])
    g, h = adjoint.grad(f), adjoint.hvp(f)
    text = adjoint.source(f, args=(x,))
    np.testing.assert_allclose(g(x), 2 * FACTORS[name](m) * x)
    m.TABLE["a"], m.COEF[0], m.OPTS["s"], m.PAIR = 3.0, -4.0, -0.5, (3.0, 2.0)
    np.testing.assert_allclose(g(x), 2 * FACTORS[name](m) * x)  # by hand: 2 c x
    np.testing.assert_allclose(h(x, np.ones(2)), 2 * FACTORS[name](m) * np.ones(2))
    namespace = {}
    exec(text, namespace)
    with pytest.raises(RuntimeError, match="has changed"):
        namespace[f"{name}_grad"](x)


def test_a_helpers_defaults_and_a_class_dict_changed_in_place_are_seen(tmp_path):
    # round 15, S2: a helper's defaults are folded into the caller's code, and the guard
    # checked its code alone: `helper.__defaults__ = (5.0,)` or `__kwdefaults__['a'] = 5.0`
    # gave the old gradient; so did a class's dict unrolled by sorted(self.cfg.items())
    m = module(tmp_path, """
        import numpy as np


        def helper(x, a=2.0):
            return a * x


        def keyword(x, *, a=2.0):
            return a * x


        class Model:
            cfg = {"a": 2.0}

            def loss(self, x):
                s = 0.0
                for k, v in sorted(self.cfg.items()):
                    s = s + v * np.sum(x * x)
                return s


        def by_default(x):
            return np.sum(helper(x) * x)


        def by_keyword_default(x):
            return np.sum(keyword(x) * x)
        """)
    x = np.array([1.0, 2.0])
    model = m.Model()
    fns = [m.by_default, m.by_keyword_default, model.loss]
    grads, hvps = [adjoint.grad(f) for f in fns], [adjoint.hvp(f) for f in fns]
    for g, h in zip(grads, hvps):
        np.testing.assert_allclose(g(x), 4.0 * x)  # by hand: 2 a x with a = 2
        np.testing.assert_allclose(h(x, np.ones(2)), [4.0, 4.0])
    m.helper.__defaults__ = (5.0,)
    m.keyword.__kwdefaults__["a"] = 5.0
    m.Model.cfg["a"] = 5.0
    for g, h in zip(grads, hvps):
        np.testing.assert_allclose(g(x), 10.0 * x)
        np.testing.assert_allclose(h(x, np.ones(2)), [10.0, 10.0])


def test_an_emitted_file_refuses_globals_that_changed_since_it_was_written(tmp_path):
    # round 6, N6: the file prints a folded float global as a number and imports an
    # array global by name; rebinding either after importing the file gave the old
    # gradient. Each entry function now checks them first
    m = module(tmp_path, """
        import numpy as np

        W = np.array([1.0, 2.0, 3.0])
        S = 2.0


        def f(x):
            return np.sum(S * W * x ** 2)
        """)
    x = np.array([0.5, -1.0, 2.0])
    for text in (adjoint.source(m.f), adjoint.source(m.f, args=(x,))):
        namespace = {}
        exec(text, namespace)
        np.testing.assert_allclose(namespace["f_grad"](x), 2 * 2.0 * m.W * x)
        m.W[0] = 5.0  # in place: the same object, seen by the file
        np.testing.assert_allclose(namespace["f_grad"](x), 2 * 2.0 * m.W * x)
        m.W = np.array([1.0, 1.0, 1.0])
        with pytest.raises(RuntimeError, match=r"W\); regenerate it"):
            namespace["f_grad"](x)
        m.W, m.S = namespace["W"], 3.0
        with pytest.raises(RuntimeError, match="has changed"):
            namespace["f_grad"](x)
        m.W, m.S = np.array([1.0, 2.0, 3.0]), 2.0


def test_a_file_specialised_on_numpy_scalars_runs_on_them_and_only_them(tmp_path):
    # np.int8(100) + np.int8(100) wraps to -56 in NumPy, 200 in Python: the file's entry
    # check asked for a Python int and refused the very arguments it was made for
    m = module(tmp_path, """
        import numpy as np


        def f(x, k):
            return np.sum(x * (k + k))
        """)
    x = np.ones(3)
    with np.errstate(over="ignore"):
        for k, want in ((np.int8(100), -56.0), (np.float32(1.5), 3.0), (3, 6.0)):
            namespace = {}
            exec(adjoint.source(m.f, args=(x, k)), namespace)
            np.testing.assert_allclose(namespace["f_grad"](x, k), want)
            other = 100 if isinstance(k, np.integer) else np.float64(1.5)
            if not isinstance(k, int):
                with pytest.raises(ValueError, match="generated for"):
                    namespace["f_grad"](x, other)


def test_code_swapped_in_place_or_a_method_replaced_or_shadowed_recompiles(tmp_path):
    # round 7, S1b-S1e: IPython's autoreload rewrites the file and swaps f.__code__ (or
    # a helper's) in place, keeping the function object; a method replaced on the
    # class, or an instance attribute that shadows it, changes what self.act means. A
    # gradient made before kept the old derivative
    import linecache
    text = """
        import numpy as np


        def helper(x):
            return x * x


        def f(x):
            return np.sum(helper(x) * x)


        class Model:
            def act(self, x):
                return np.sin(x)

            def loss(self, x):
                return np.sum(self.act(x))
        """
    m = module(tmp_path, text)
    x = np.array([0.3, -0.7, 1.2])
    gf = adjoint.grad(m.f)
    np.testing.assert_allclose(gf(x), 3 * x ** 2)
    hf, hv = adjoint.hessian(m.f), adjoint.hvp(m.f)  # second derivatives guard too
    np.testing.assert_allclose(hf(x), np.diag(6 * x))
    np.testing.assert_allclose(hv(x, np.ones(3)), 6 * x)
    path = tmp_path / f"{m.__name__}.py"
    path.write_text(textwrap.dedent(text).replace("return x * x\n", "return x * x * x\n")
                    .replace("helper(x) * x)", "helper(x) * 2.0)"))
    linecache.checkcache(str(path))
    fresh = {}
    exec(compile(path.read_text(), str(path), "exec"), fresh)
    m.helper.__code__, m.f.__code__ = fresh["helper"].__code__, fresh["f"].__code__
    np.testing.assert_allclose(gf(x), 6 * x ** 2)
    np.testing.assert_allclose(hf(x), np.diag(12 * x))
    np.testing.assert_allclose(hv(x, np.ones(3)), 12 * x)
    model = m.Model()
    gl = adjoint.grad(model.loss)
    np.testing.assert_allclose(gl(x), np.cos(x))
    m.Model.act = lambda self, x: np.exp(x)  # a method replaced on the class
    np.testing.assert_allclose(gl(x), np.exp(x))
    model.act = np.tanh  # an instance attribute now shadows the method
    np.testing.assert_allclose(gl(x), 1 - np.tanh(x) ** 2)


RULE_MODULE = """
    import numpy as np
    import adjoint

    SCALE = 1.0


    def ste(x):
        return np.round(x)


    @adjoint.defvjp(ste)
    def ste_vjp(g, ans, x):  # a straight-through estimator, scaled
        return g * SCALE


    def loss(x):
        return np.sum(ste(x) * x)
    """


def test_a_users_rule_is_guarded_and_in_the_cache_key(tmp_path):
    """The IR names a primitive, not what its rule says (adversarial round 8, R2): a
    number the rule reads, the rule registered again, and the rule's file edited
    (another process, the same cache) each give the new rule's gradient."""
    m = module(tmp_path, RULE_MODULE)
    x = np.array([0.4, 1.6])
    g = adjoint.grad(m.loss, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(g(x), np.round(x) + x * 1.0)
    m.SCALE = 3.0
    np.testing.assert_allclose(g(x), np.round(x) + x * 3.0)

    @adjoint.defvjp(m.ste)
    def ste_vjp(g, ans, x):  # a notebook cell run again, with another rule
        return g * 5.0

    np.testing.assert_allclose(g(x), np.round(x) + x * 5.0)
    fresh = adjoint.grad(m.loss, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(fresh(x), np.round(x) + x * 5.0)
    # the rule's file edited, read by a new process from the same cache
    import subprocess
    edited = tmp_path / "edited"
    edited.mkdir()
    run = ("import sys, numpy as np, adjoint; sys.path.insert(0, sys.argv[1]); import rules; "
           "print(adjoint.grad(rules.loss, cache_dir=sys.argv[2])(np.array([0.4, 1.6]))[1])")
    for scale in ("1.0", "2.0"):
        (edited / "rules.py").write_text(textwrap.dedent(RULE_MODULE).replace(
            "SCALE = 1.0", f"SCALE = {scale}"))
        out = subprocess.run([sys.executable, "-B", "-c", run, str(edited),
                              str(tmp_path / "cache")],
                             capture_output=True, text=True, check=True).stdout
        assert float(out) == pytest.approx(2.0 + 1.6 * float(scale))


def test_a_rule_that_reads_through_a_helper_or_an_attribute_is_guarded(tmp_path):
    """What a rule reaches is part of it (round 9, R3): a number read by a helper it
    calls, or by a module's or a class's attribute."""
    m = module(tmp_path, """
        import numpy as np
        import adjoint

        K = 1.0


        class Settings:
            k = 1.0


        def _scale(g):
            return g * K


        def clip(x):
            return np.clip(x, -1.0, 1.0)


        @adjoint.defvjp(clip)
        def clip_vjp(g, ans, x):
            return _scale(g) * Settings.k


        def loss(x):
            return np.sum(clip(x))
        """)
    x = np.array([0.3, -0.2, 0.5])
    g = adjoint.grad(m.loss, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(g(x), np.ones(3))
    m.K = 2.0
    np.testing.assert_allclose(g(x), 2.0 * np.ones(3))
    m.Settings.k = 3.0
    np.testing.assert_allclose(g(x), 6.0 * np.ones(3))
    np.testing.assert_allclose(adjoint.grad(m.loss, cache_dir=tmp_path / "cache")(x),
                               6.0 * np.ones(3))


LAYERED = """
import numpy as np


class Dense:
    def __init__(self, W):
        self.W = W

    def __call__(self, h):
        return np.tanh(h @ self.W)


LAYERS = [Dense(np.eye(2) * 0.5), Dense(np.ones((2, 2)))]
ACTS = (np.tanh, np.sin)


def f(x):
    h = x
    for layer in LAYERS:
        h = layer(h)
    for act in ACTS:
        h = act(h)
    return np.sum(h)
"""


def test_a_layer_or_a_function_of_a_global_list_replaced_is_seen(tmp_path):
    """A loop over a module's list of layers is unrolled over its objects: one replaced
    after compiling (round 17's S5: the gradient stayed the old layer's) is another key."""
    m = module(tmp_path, LAYERED)
    x = np.array([0.3, -0.7])
    g = adjoint.grad(m.f)
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)
    m.LAYERS[0] = m.Dense(np.array([[1.0, 0.2], [0.3, -1.0]]))
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)
    m.ACTS = (np.tanh, np.cos)
    np.testing.assert_allclose(g(x), numeric_grad(m.f, (x,)), rtol=1e-6)


FOLDED_ATTRIBUTES = """
import numpy as np

act = np.tanh


class Cfg:
    coef = 1.5


class Model:
    def __init__(self):
        self.scale = 2.0
        self.power = 2


model = Model()
ACTS = [np.tanh, np.sin]


def by_attributes(x):
    return np.sum(Cfg.coef * act(x) * x) + model.scale * np.sum(x ** model.power)


def by_functions(x):
    h = x
    for a in ACTS:
        h = a(h)
    return np.sum(h)
"""


@pytest.mark.parametrize("name, change", [
    ("by_attributes", lambda m: setattr(m.Cfg, "coef", -1.0)),
    ("by_attributes", lambda m: setattr(m.model, "scale", -1.0)),
    ("by_attributes", lambda m: setattr(m.model, "power", 3)),
    ("by_attributes", lambda m: setattr(m, "act", np.sin)),
    ("by_functions", lambda m: m.ACTS.__setitem__(0, np.cos)),
    ("by_functions", lambda m: m.ACTS.append(np.exp)),
])
def test_an_emitted_file_checks_the_attributes_and_functions_it_folded_in(tmp_path, name,
                                                                         change):
    # round 22's S5: a class's or an object's numbers and a global naming a NumPy
    # function were folded into the emitted file with no check on entry: after a
    # change, the file gave the old gradient (the in-process gradient compiles again)
    m = module(tmp_path, FOLDED_ATTRIBUTES)
    f, x = getattr(m, name), np.array([0.4, -0.9])
    namespace = {}
    exec(adjoint.source(f, args=(x,)), namespace)
    g = namespace[f"{name}_grad"]
    np.testing.assert_allclose(g(x), adjoint.grad(f)(x), rtol=1e-12)
    change(m)
    with pytest.raises(RuntimeError, match="has changed"):
        g(x)
    np.testing.assert_allclose(adjoint.grad(f)(x), numeric_grad(f, (x,)), rtol=1e-6)
