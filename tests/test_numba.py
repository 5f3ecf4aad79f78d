"""The numba backend: the same gradients as the NumPy backend, compiled by numba.

Every backend="numba" gradient is compared with central differences in float64 and
with the NumPy backend's gradient; the loop workloads of benchmarks/workloads.py
must compile (no fallback warning), and what numba cannot compile falls back to
NumPy with a warning that says why."""
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import adjoint  # noqa: E402
from adjoint.testing import numeric_grad  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import workloads as W  # noqa: E402


def both(f, args, wrt=0, fallback=False):
    """The numba gradient, checked against the NumPy one and central differences, on
    its first call and its second (a function that fell back runs as Python then:
    round 18's S2); `fallback`: numba must give up on it (with a warning), else it must
    compile (None: either)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = adjoint.grad(f, wrt=wrt, backend="numba")
        got, again = g(*args), g(*args)
    for a, b in zip(got if isinstance(wrt, tuple) else (got,),
                    again if isinstance(wrt, tuple) else (again,)):
        np.testing.assert_array_equal(a, b)
    fell = [w for w in caught if "numba cannot compile" in str(w.message) or
            "numba cannot run" in str(w.message) or "numba does not compile" in str(w.message)]
    assert fallback is None or bool(fell) == fallback, [str(w.message) for w in fell]
    want = adjoint.grad(f, wrt=wrt)(*args)
    indices = wrt if isinstance(wrt, tuple) else (wrt,)
    got_t = got if isinstance(wrt, tuple) else (got,)
    want_t = want if isinstance(wrt, tuple) else (want,)
    for i, g, w in zip(indices, got_t, want_t):
        assert type(g) is type(w) and np.shape(g) == np.shape(w)
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13 * scale)
        fd = numeric_grad(f, args, wrt=i)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7 * scale)
    return got, fell


def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------ the loop workloads

def test_sin_loop():
    (dx, da), _ = both(W.sin_loop, (0.7, 1.1, 40), wrt=(0, 1))
    # by hand: x_{k+1} = a sin(x_k); d/dx0 is the product of a cos(x_k)
    x, slope = 0.7, 1.0
    for _ in range(40):
        slope *= 1.1 * math.cos(x)
        x = 1.1 * math.sin(x)
    assert dx == pytest.approx(slope, rel=1e-12)


def test_product_loop():
    x = 1.0 + 0.1 * rng().standard_normal(30)
    g, _ = both(W.product, (x,))
    np.testing.assert_allclose(g, np.prod(x) / x, rtol=1e-12)  # the formula


def test_rosenbrock_loop():
    x = 1.0 + 0.1 * rng().standard_normal(30)
    g, _ = both(W.rosenbrock, (x,))
    np.testing.assert_allclose(g, W.rosenbrock_grad(x), rtol=1e-12, atol=1e-12)


def test_rnn():
    r = rng()
    W_, x, h = r.standard_normal((6, 6)) * 0.4, 0.5 * r.standard_normal((5, 6)), np.zeros(6)
    g, _ = both(W.rnn, (W_, x, h))
    np.testing.assert_allclose(g, W.rnn_grad(W_, x, h), rtol=1e-12, atol=1e-13)


def test_hmm():
    r = rng()
    K, T = 4, 5
    args = (np.log(r.dirichlet(np.ones(K))), np.log(r.dirichlet(np.ones(K), size=K)),
            r.standard_normal((T, K)))
    g, _ = both(W.hmm, args, wrt=2)  # np.max(s, axis=0) is max_axis0(s), in the module
    np.testing.assert_allclose(g, W.hmm_grad(*args), rtol=1e-12, atol=1e-13)


# numba's np.max takes no keepdims: the gradient falls back to NumPy, and says why
def max_keepdims(X):
    s = 0.0
    for t in range(3):
        m = np.max(X * t, axis=0, keepdims=True)
        s = s + np.sum(np.exp(X - m))
    return s


# the gradient falls back (numba's np.sum takes no keepdims), and then calls the module's
# njit helpers (max_axis0, min_axis0) from Python
def min_max_rows(X):
    s = 0.0
    for t in range(X.shape[0] - 1):
        Y = X[t:t + 2] * X[t + 1]
        s = s + np.sum(np.min(Y, axis=1) ** 2) + np.sum(np.sin(np.max(Y, axis=0)))
    return s


def test_fallback_says_why():
    X = np.random.default_rng(1).standard_normal((5, 3))
    _, fell = both(max_keepdims, (X,), fallback=True)
    message = str(fell[0].message)
    assert "max_keepdims_grad" in message and "line" in message and "\n" not in message
    _, fell = both(min_max_rows, (X,), fallback=True)
    assert len(fell) == 1 and "min_max_rows_grad" in str(fell[0].message)
    # once fallen back, it stays so, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adjoint.grad(min_max_rows, backend="numba")(X)


# numba's own typing crashes on np.asarray(a, 'f8') (an AttributeError, not a NumbaError)
def as_floats(x):
    k = np.arange(3).astype('f8')
    s = 0.0
    for i in range(3):
        s = s + x[i] * k[i] ** 2
    return s


def test_a_crash_of_numba_falls_back():
    got, fell = both(as_floats, (np.array([0.5, -1.0, 0.7]),), fallback=True)
    np.testing.assert_allclose(got, [0.0, 1.0, 4.0], rtol=0)
    assert "as_floats_grad" in str(fell[0].message)
    # (numba 0.68 typing np.asarray(a, 'f8') raised AttributeError; a lowering of astype
    # as np.array(a, dtype=) is refused with its TypingError): a crash is said as such
    from adjoint.codegen.numba_backend import why
    assert why(AttributeError("'NoneType' object has no attribute 'dtype'")) == \
        "numba raised AttributeError: 'NoneType' object has no attribute 'dtype'"


# ------------------------------------------------------------------ control flow in loops

def while_grow(x, a):
    k = 0
    while x < 10.0 and k < 50:
        x = x * a + math.sin(x)
        k += 1
    return x


def for_break(x):
    s = 0.0
    for i in range(len(x)):
        if s > 2.0:
            break
        s = s + x[i] * x[i] + math.cos(s)
    return s


def if_in_loop(x, y):
    s = 0.0
    for i in range(len(x)):
        if x[i] > 0:
            s = s + x[i] * y
        else:
            s = s * math.exp(x[i])
    return s


def nested(x):
    s = 1.0
    for i in range(3):
        for j in range(len(x)):
            s = s * (1.0 + 0.1 * math.tanh(x[j] * s))
    return s


def while_continue(x, n):
    i = 0
    s = 0.0
    while i < n:
        i += 1
        if i % 3 == 0:
            continue
        s = s + math.sin(x[i % len(x)] * s + 0.5)
    return s


def tuple_tape(x, v):
    h = v
    for t in range(x.shape[0]):
        z = x[t] * h
        h = np.sin(z) + 0.5 * h
    return np.sum(h * h)


def accumulated_from_int(x):  # a list begun with the int 0, stacked (round 16's S12)
    L = [0]
    for v in x:
        L.append(L[-1] * 0.5 + v ** 2)
    return np.sum(np.array(L) ** 2)


def sorted_keys(p):  # keys of two lengths, stacked as strs (round 16's S12)
    total = 0.0
    for name in sorted(p):
        total = total + np.sum(p[name] ** 2)
    return total


def logistic_loss(w, X):  # -z's buffer negated in place (round 16's C5 crashed emitting it)
    z = X @ w
    return np.sum(np.log1p(np.exp(-z)))


@pytest.mark.parametrize("f, args, wrt", [
    (while_grow, (1.1, 1.3), (0, 1)),
    (logistic_loss, (np.array([0.3, -0.4]), np.array([[0.5, -1.0], [2.0, 0.3], [0.1, 0.2]])),
     (0, 1)),

    (for_break, (np.array([0.3, -0.8, 1.2, 0.4, 0.9, 0.1]),), 0),
    (if_in_loop, (np.array([0.3, -0.8, 1.2, -0.4, 0.9]), 0.7), (0, 1)),
    (nested, (np.array([0.3, -0.8, 1.2, 0.4]),), 0),
    (while_continue, (np.array([0.3, -0.8, 1.2, 0.4, 0.5]), 11), 0),
    (tuple_tape, (np.array([[0.3, -0.8], [1.2, 0.4], [0.9, 0.1]]), np.array([0.5, 1.5])),
     (0, 1)),
], ids=lambda p: getattr(p, "__name__", ""))
def test_control_flow(f, args, wrt):
    both(f, args, wrt)


def three_way_contraction(a, b, c):  # subscripts with commas (round 16's C14: np.dtype
    return np.einsum("ij,jk,kl->", a, b, c)  # of them raised SyntaxError)


def test_an_einsum_of_three_operands():
    r = rng()
    both(three_way_contraction, (r.standard_normal((2, 3)), r.standard_normal((3, 4)),
                                 r.standard_normal((4, 2))), (0, 1, 2), fallback=None)


def test_a_list_numba_refuses_is_stacked_as_numpy_would():
    """A list numba cannot type (an int then floats, strs of two lengths) runs as Python,
    where the pasted `stack` gave every element the first one's dtype (round 16's S12:
    value 35 for 47.1, the key 'wb' read as 'w'); it runs as np.array there."""
    both(accumulated_from_int, (np.array([0.7, -1.3, 2.2, 0.4]),), 0, fallback=None)
    p = {"w": np.array([0.5, -1.0]), "wb": np.array([2.0, 1.0]), "a": np.array([3.0])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = adjoint.grad(sorted_keys, backend="numba")
        calls = [g(p), g(p)]  # the second runs the fallen-back `stack` (round 18's S2)
    for got in calls:
        for k in p:
            np.testing.assert_allclose(got[k], 2 * p[k])


def long_while(x, n):
    k = 0
    while k < n:
        x = 0.9 * x + 0.1 * math.sin(x) * x
        k += 1
    return x


def two_floats_a_step(x, y, n):
    for i in range(n):
        s = math.sin(x * y)
        x, y = y + 0.1 * s, math.cos(x) * s
    return x + y * y


def test_array_tapes_grow_and_hold_rows():
    # 40 trips of a while loop: its tape starts at 16 rows and doubles twice
    text = adjoint.source(long_while, args=(0.8, 40), backend="numba")
    assert "np.empty(16)  # doubled when full" in text and "grow(_tape)" in text
    both(long_while, (0.8, 40))
    text = adjoint.source(two_floats_a_step, wrt=(0, 1), args=(0.3, 0.7, 9), backend="numba")
    assert "np.empty((len(_range), " in text
    both(two_floats_a_step, (0.3, 0.7, 9), wrt=(0, 1))


def test_a_sequence_the_loop_binds_again():
    """The inside algorithm's reverse loop walks the outer tape while its body binds the
    inner tape, named _tape too: `reversed(_tape)` held the outer list, `_tape[_k]` read
    the inner one (an IndexError here, and wrong where the lengths allow)."""
    from tests import programs as P
    text = adjoint.source(P.inside, args=(np.ones(5),), backend="numba")
    assert "_k_seq1 = _tape\n" in text
    both(P.inside, (np.linspace(0.5, 1.5, 5),), fallback=None)


def test_zero_trips():
    # n == 0 is folded in: that code reads no tape, and may fall back
    both(W.sin_loop, (0.7, 1.1, 0), wrt=(0, 1), fallback=None)
    both(while_grow, (11.0, 1.3), fallback=None)
    both(W.product, (np.ones(0),), fallback=None)


# ------------------------------------------------------------------ the API and the CLI

def test_value_and_grad_and_decorator():
    x = 1.0 + 0.1 * rng().standard_normal(12)
    value, g = adjoint.value_and_grad(W.product, backend="numba")(x)
    assert value == pytest.approx(np.prod(x), rel=1e-12)
    np.testing.assert_allclose(g, np.prod(x) / x, rtol=1e-12)

    @adjoint.adjoint(backend="numba")
    def rosen(x):
        return W.rosenbrock(x)

    assert rosen(x) == W.rosenbrock(x)
    np.testing.assert_allclose(rosen.grad()(x), W.rosenbrock_grad(x), rtol=1e-12)
    assert "@numba.njit" in rosen.source(args=(x,))
    assert "@numba.njit" not in adjoint.adjoint(W.rosenbrock).source(args=(x,))


def test_wrong_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        adjoint.grad(W.product, backend="jax")
    with pytest.raises(ValueError, match="grad and value_and_grad"):
        adjoint.source(W.product, mode="forward", backend="numba")


def _import(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(path.stem + "_" + path.parent.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_is_numba_code(tmp_path):
    text = adjoint.source(W.product, args=(np.ones(5),), backend="numba")
    assert "@numba.njit" in text and "import numba" in text and "reversed(" not in text
    # a tape of floats is an array with a count, one row a step of the range
    assert "_tape = np.empty(len(_range))  # one row a step" in text
    assert "for _k in range(_tape_n - 1, -1, -1):" in text
    # the entry check, which numba cannot compile, runs in Python first
    assert "def product_grad_compiled(x, out_bar=1.0):" in text
    # a file: numba caches its machine code beside it
    path = tmp_path / "product_numba.py"
    path.write_text(text)
    ns = vars(_import(path))  # as a user imports it (numba's cache pickles its globals)
    x = np.linspace(0.5, 1.5, 5)
    np.testing.assert_allclose(ns["product_grad"](x), np.prod(x) / x, rtol=1e-12)
    with pytest.raises(ValueError, match="generated for x.shape == \\(5,\\)"):
        ns["product_grad"](np.ones(6))


def test_cli_emit_backend_numba(tmp_path):
    out = tmp_path / "sin_grad.py"
    cmd = [sys.executable, "-m", "adjoint", "emit", f"{ROOT}/benchmarks/workloads.py:sin_loop",
           "--wrt", "x,a", "--args", "0.5, 1.2, 7", "--backend", "numba", "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    ns = vars(_import(out))
    got = ns["sin_loop_grad"](0.5, 1.2, 7)
    want = adjoint.grad(W.sin_loop, wrt=(0, 1))(0.5, 1.2, 7)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    bad = subprocess.run(cmd[:-2] + ["--mode", "vjp"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "--backend numba" in bad.stderr
    # a runtime helper numba cannot compile (det's _nonsingular): the file runs that
    # function with NumPy, with a warning (round 18's C3: numba's TypingError)
    det_file = tmp_path / "det_loss.py"
    det_file.write_text("import numpy as np\n\ndef det_loss(A):\n"
                        "    return np.log(np.linalg.det(A @ A.T + np.eye(2)))\n")
    subprocess.run([sys.executable, "-m", "adjoint", "emit", f"{det_file}:det_loss", "--args",
                    "np.array([[0.7, -1.3], [0.4, 1.1]])", "--backend", "numba", "-o",
                    str(tmp_path / "det_grad.py")], check=True, capture_output=True, cwd=tmp_path)
    a = np.array([[0.7, -1.3], [0.4, 1.1]])
    with pytest.warns(RuntimeWarning, match="numba cannot compile"):
        got = vars(_import(tmp_path / "det_grad.py"))["det_loss_grad"](a)
    want = 2 * np.linalg.inv(a @ a.T + np.eye(2)) @ a  # d log det(A A^T + I) / dA
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # generic code (no --args) calls runtime helpers numba cannot compile: it says so, and
    # the file runs them with NumPy (round 19's C3: numba's TypingError when called)
    generic = subprocess.run([sys.executable, "-m", "adjoint", "emit", f"{det_file}:det_loss",
                              "--backend", "numba", "-o", str(tmp_path / "det_generic.py")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert generic.returncode == 0 and "runs such functions with NumPy" in generic.stderr
    with pytest.warns(RuntimeWarning, match="numba cannot compile"):
        got = vars(_import(tmp_path / "det_generic.py"))["det_loss_grad"](a)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_checkpointed_loops_fall_back_per_function():
    """The plan of a checkpointed loop is runtime Python: the gradient falls back, its
    step functions stay numba's where numba compiles them (product's do, the RNN's
    step gradient calls outer_add and falls back on its own)."""
    r = rng()
    x = 1.0 + 0.1 * r.standard_normal(20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = adjoint.grad(W.product, checkpoint=3, backend="numba")(x)
    assert [str(w.message).split(":")[1] for w in caught] == [
        " numba cannot compile product_grad, running it with NumPy"]
    np.testing.assert_allclose(g, W.product_grad(x), rtol=1e-12)
    args = (r.standard_normal((6, 6)) * 0.4, 0.5 * r.standard_normal((9, 6)), np.zeros(6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = adjoint.grad(W.rnn, checkpoint=3, backend="numba")(*args)
    assert len(caught) == 2
    np.testing.assert_allclose(g, W.rnn_grad(*args), rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------ where numba's answer differs

# 3 ** 45 passes int64: numba's k wraps around (its gradient was 147.0, Python's 158.0)
def carried_int(x):
    k = 1
    s = 0.0
    for i in range(45):
        k = k * 3
        s = s + x * (k % 7)
    return s


# 2 ** 70 is 0 in int64: numba divided by zero where Python gives 2.0
def int_power(x):
    s = 0.0
    for i in range(80):
        s = s + x / 2 ** i
    return s


def test_int_arithmetic_that_may_overflow_runs_as_python():
    for f, want in ((carried_int, sum(3 ** k % 7 for k in range(1, 46))),
                    (int_power, sum(1.0 / 2 ** i for i in range(80)))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = adjoint.grad(f, backend="numba")(1.5)
        assert got == pytest.approx(want, rel=1e-14)
        assert any("may pass int64" in str(w.message) for w in caught)
    assert "# not compiled by numba: k * 3 (line" in adjoint.source(
        carried_int, args=(1.5,), backend="numba")


def logs(x):
    s = 0.0
    for i in range(3):
        s = s + math.log(x - i)
    return s


def nested_exp(x):
    s = 0.0
    for i in range(3):
        s = s + math.exp(-math.exp(x * i))
    return s


def test_math_raises_as_in_python():
    """numba's math.log(-0.5) is nan, and the derivative never reads it: the gradient was
    0.67 where Python raises. The second call (no observing) must raise too."""
    for f, good, bad, error in ((logs, 2.5, 1.5, ValueError),
                                (nested_exp, 1.0, 400.0, OverflowError)):
        g = adjoint.grad(f, backend="numba")
        both(f, (good,))
        with pytest.raises(error, match="math"):
            g(bad)


def gather(x, j):
    s = 0.0
    for k in range(len(j)):
        s = s + x[j[k]] * x[k]
    return s


def test_an_index_out_of_bounds_raises():
    """numba reads past an array's end unless asked to check (boundscheck=True): an
    index from the data (j) was garbage where Python raises IndexError."""
    x = np.linspace(0.5, 1.5, 4)
    both(gather, (x, np.array([0, 3, 1, 2])))
    g = adjoint.grad(gather, backend="numba")
    g(x, np.array([0, 3, 1, 2]))
    with pytest.raises(IndexError):
        g(x, np.array([0, 9, 1, 2]))


# numba keeps a global array as a constant of the machine code (in its disk cache too):
# the gradient read WEIGHTS, a closure's cell or self.w as they were on the first call
WEIGHTS = np.array([1.0, 2.0, 3.0])


def weighted(x):
    s = 0.0
    for i in range(len(x)):
        s = s + WEIGHTS[i] * x[i] ** 2
    return s


class Model:
    def __init__(self, w):
        self.w = w

    def loss(self, x):
        s = 0.0
        for i in range(len(x)):
            s = s + self.w[i] * math.sin(x[i])
        return s


def closure(c):
    def f(x):
        s = 0.0
        for i in range(len(x)):
            s = s + c[i] * x[i] ** 3
        return s
    return f


def test_global_arrays_are_read_on_each_call(monkeypatch):
    x = np.array([0.5, -1.0, 0.7])
    g = adjoint.grad(weighted, backend="numba")
    both(weighted, (x,))
    WEIGHTS[0] = 10.0  # in place (WEIGHTS is put back below)
    try:
        np.testing.assert_allclose(g(x), 2 * WEIGHTS * x, rtol=1e-14)
        both(weighted, (x,))
    finally:
        WEIGHTS[0] = 1.0
    # rebound: the module (and numba's cache of it) is the same file
    monkeypatch.setattr(sys.modules[__name__], "WEIGHTS", np.array([0.0, 0.0, 1.0]))
    got, _ = both(weighted, (x,))
    np.testing.assert_allclose(got, [0.0, 0.0, 1.4], rtol=1e-14)
    # a training loop that updates self.w in place: each step's gradient is the NumPy one
    model, twin = Model(np.array([1.0, 2.0, 3.0])), Model(np.array([1.0, 2.0, 3.0]))
    step, twin_step = adjoint.grad(model.loss, backend="numba"), adjoint.grad(twin.loss)
    for _ in range(3):
        gx, want = step(x), twin_step(x)
        np.testing.assert_allclose(gx, want, rtol=1e-14)
        np.testing.assert_allclose(gx, model.w * np.cos(x), rtol=1e-14)  # by hand
        model.w -= 0.1 * gx
        twin.w -= 0.1 * want
    c = np.array([1.0, -1.0, 2.0])
    f = closure(c)
    h = adjoint.grad(f, backend="numba")
    both(f, (x,))
    c *= 3.0
    np.testing.assert_allclose(h(x), 3 * c * x ** 2, rtol=1e-14)


def test_a_file_passes_its_global_arrays(tmp_path):
    x = np.array([0.5, -1.0, 0.7])
    text = adjoint.source(weighted, args=(x,), backend="numba")
    assert "def weighted_grad_compiled(x, out_bar, WEIGHTS):" in text
    assert "    return weighted_grad_compiled(x, out_bar, WEIGHTS)" in text
    path = tmp_path / "weighted_numba.py"
    path.write_text(text)
    ns = vars(_import(path))
    w = ns["WEIGHTS"]  # the array the file imported
    np.testing.assert_allclose(ns["weighted_grad"](x), 2 * w * x, rtol=1e-14)
    old = w.copy()
    try:
        w[0] = 10.0
        np.testing.assert_allclose(ns["weighted_grad"](x), [10.0, -4.0, 4.2], rtol=1e-14)
    finally:
        w[:] = old


def test_a_numba_function_calling_one_that_reads_a_global_runs_as_python(tmp_path):
    """outer's machine code would call inner's, with W as it was when it compiled: no
    wrapper can pass W to it, so outer runs as Python (and inner compiled, W passed)."""
    from adjoint.codegen import numba_backend
    path = tmp_path / "calls_a_reader.py"
    path.write_text("import numba\nimport numpy as np\nW = np.array([1.0, 2.0])\n\n\n"
                    "@numba.njit\ndef inner(x, i):\n    return W[i] * x[i]\n\n\n"
                    "@numba.njit\ndef outer(x):\n    s = 0.0\n    for i in range(len(x)):\n"
                    "        s += inner(x, i)\n    return s\n")
    module = _import(path)
    outer = numba_backend.compiled(module, "outer")
    with pytest.warns(RuntimeWarning, match="it calls inner, which numba would compile"):
        assert outer(np.ones(2)) == 3.0
    module.W[0] = 10.0
    assert outer(np.ones(2)) == 12.0 and module.inner(np.ones(2), 0) == 10.0


def test_a_module_attribute_is_read_on_each_call(tmp_path):
    """`cfg.W`, an array of the user's module cfg, is passed as `W` is."""
    import types
    from adjoint.codegen import numba_backend
    path = tmp_path / "reads_cfg.py"
    path.write_text("import numba\nimport numpy as np\n\n\n@numba.njit\ndef f(x):\n"
                    "    return np.sum(cfg.W * x) * np.pi\n")
    module = _import(path)
    module.cfg = types.ModuleType("cfg")
    module.cfg.W = np.array([1.0, 2.0])
    f = numba_backend.compiled(module, "f")
    assert f(np.ones(2)) == pytest.approx(3 * np.pi, rel=1e-15)
    module.cfg.W[0] = 10.0
    assert f(np.ones(2)) == pytest.approx(12 * np.pi, rel=1e-15)
    module.cfg.W = np.array([0.0, 1.0])
    assert f(np.ones(2)) == pytest.approx(np.pi, rel=1e-15)


# 2 ** -i is 0 in numba (an int power of ints), 0.5 in Python
def halves(x):
    s = 0.0
    for i in range(1, len(x)):
        s = s + x[i] * 2 ** -i
    return s


def halves_pow(x):
    s = 0.0
    for i in range(1, len(x)):
        s = s + x[i] * pow(2, -i)
    return s


def reciprocals(x):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] ** -1
    return s


def test_an_int_to_a_negative_int_power_runs_as_python():
    x = np.array([0.5, -1.0, 0.7, 2.5])
    got, fell = both(halves, (x,), fallback=True)
    np.testing.assert_allclose(got, [0.0, 0.5, 0.25, 0.125], rtol=1e-15)
    assert "int ** int" in str(fell[0].message) and "line" in str(fell[0].message)
    assert fell[0].filename == __file__  # the warning points at the call
    got, _ = both(halves_pow, (x,), fallback=True)
    np.testing.assert_allclose(got, [0.0, 0.5, 0.25, 0.125], rtol=1e-15)
    # the file numba would compile says so too, and runs as Python (2 ** -1 is 0 there)
    text = adjoint.source(halves, args=(x,), backend="numba")
    assert "# not compiled by numba: 2 ** -i" in text and "int ** int" in text
    # a float to a negative power compiles (its gradient reads x ** -2)
    got, _ = both(reciprocals, (x,))
    np.testing.assert_allclose(got, -1.0 / x ** 2, rtol=1e-14)


def offset(x, k):
    return np.sum(x * (k - 5))


def doubled(x, k):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * (k + k)
    return s


def made_small(x):
    k = np.arange(3, dtype=np.uint8)
    s = 0.0
    for i in range(3):
        s = s + x[i] * (k[i] - 5)
    return s


def test_small_ints_wrap_as_in_numpy():
    """numba computes int8 ... uint64 in int64 (or float64): a uint8 k - 5 is -3 there,
    253 in NumPy; np.int8(100) + np.int8(100) is 200 there, -56 in NumPy."""
    x = np.array([0.5, -1.0, 0.7])
    k = np.array([2, 100, 3], np.uint8)
    got, fell = both(offset, (x, k), fallback=True)
    np.testing.assert_allclose(got, [253.0, 95.0, 254.0], rtol=0)
    assert "uint8" in str(fell[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warning
        got, _ = both(doubled, (x, np.int8(100)), fallback=True)
    np.testing.assert_allclose(got, [-56.0] * 3, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got, fell = both(made_small, (x,), fallback=True)  # made in the function
    np.testing.assert_allclose(got, [251.0, 252.0, 253.0], rtol=0)
    assert "it makes uint8 values (line" in str(fell[0].message)
    got, _ = both(offset, (x, k.astype(np.int64)))  # int64 wraps as NumPy's: compiled
    np.testing.assert_allclose(got, [-3.0, 95.0, -2.0], rtol=0)


def test_without_numba_installed(monkeypatch):
    from adjoint.codegen import numba_backend
    monkeypatch.setattr(numba_backend, "available", lambda: False)
    with pytest.raises(ImportError, match="pip install 'adjoint\\[numba\\]'"):
        adjoint.grad(W.product, backend="numba")
    # the text needs no numba
    assert "@numba.njit" in adjoint.source(W.product, args=(np.ones(3),), backend="numba")


def symmetrised(A):
    B = A * 1.0
    B += B.T
    return np.sum(B ** 2 * A)


def mirrored(x):
    y = x * 1.0
    y += y[::-1]
    return np.sum(y ** 2 * x)


def test_an_add_into_an_overlapping_view_copies_the_operand_first():
    # round 7, N7: NumPy buffers `B_bar += B_bar.T`; numba adds element by element and
    # read entries it had already changed
    A = np.arange(9.0).reshape(3, 3) / 7 - 0.5
    both(symmetrised, (A,))
    both(mirrored, (np.array([0.3, -0.7, 1.2, 0.9, -1.1, 0.4]),))
    assert ").copy()" in adjoint.source(symmetrised, args=(A,), backend="numba")


def zero_d_made(x):
    s = np.array(2.0)
    return np.sum(x * s)


def zero_d_loop(x):
    s = 0.0
    for i in range(3):
        s = s + x * i
    return s


def test_zero_d_arrays_made_or_passed():
    # round 7, K7j: np.array(2.0) was printed as stack(2.0), which indexes its argument
    got, _ = both(zero_d_made, (np.array([0.3, -0.7, 1.2]),), fallback=None)
    np.testing.assert_allclose(got, [2.0, 2.0, 2.0])
    got, fell = both(zero_d_loop, (np.array(2.0),), fallback=True)
    assert "0-d array" in str(fell[0].message)


# ------------------------------------------------------------------ layouts and run-time errors

def reshape_T(x):
    return np.sum(x.reshape(2, 6).T @ np.arange(2.0))


def strided_reshapes(x):
    y = x[:, ::2].reshape(6)  # a slice's layout: numba did not compile the reshape
    z = np.swapaxes(x, 0, 1).reshape(3, 4)
    return np.sum(y * y) + np.sum(z * np.ravel(x.T).reshape(3, 4))


def test_a_reshape_of_a_transpose_is_made_contiguous_first():
    # issue 16's corpus: numba raised NotImplementedError when the gradient ran, after
    # compiling (reshape of the transpose of an outer product, a Fortran-ordered array)
    x = rng().standard_normal((3, 4))
    got, _ = both(reshape_T, (x,))
    np.testing.assert_allclose(got, np.repeat(np.arange(2.0), 6).reshape(3, 4), rtol=0)
    assert "np.reshape(np.ascontiguousarray(np.transpose(" in \
        adjoint.source(reshape_T, args=(x,), backend="numba")
    for y in (x, np.asfortranarray(x), x[:, ::-1].copy()[:, ::-1]):  # each layout numba types
        both(strided_reshapes, (y,), fallback=None)
    # the NumPy backend's text is unchanged
    assert "ascontiguousarray" not in adjoint.source(reshape_T, args=(x,))


def reciprocals(x):
    s = 0.0
    for i in range(len(x)):
        s = s + 1.0 / x[i]
    return s


def refuses_large(x):
    if x[0] > 1.0:
        raise NotImplementedError("x[0] > 1 is not done")
    return np.sum(x.reshape(3, 2).T @ np.arange(3.0))


def test_an_error_numba_raises_when_it_runs_falls_back_once():
    # a float divided by 0.0 is inf in NumPy, ZeroDivisionError in numba's machine code
    g = adjoint.grad(reciprocals, backend="numba")
    x = np.array([1.0, 0.5, 2.0])
    np.testing.assert_allclose(g(x), -1.0 / x ** 2, rtol=1e-15)  # compiled, no warning
    zero = np.array([1.0, 0.0, 2.0])
    with warnings.catch_warnings(record=True) as caught, np.errstate(divide="ignore"):
        warnings.simplefilter("always")
        got = g(zero)
        np.testing.assert_array_equal(got, adjoint.grad(reciprocals)(zero))  # -inf at 0.0
    fell = [str(w.message) for w in caught if "numba" in str(w.message)]
    assert fell == ["adjoint: numba cannot run reciprocals_grad, running it with NumPy: "
                    "numba raised ZeroDivisionError: division by zero, where NumPy raises "
                    "nothing"], fell
    with warnings.catch_warnings():  # NumPy's from now on, silently
        warnings.simplefilter("error")
        np.testing.assert_allclose(g(x), -1.0 / x ** 2, rtol=1e-15)


def test_f_s_own_errors_propagate_and_numba_stays():
    g = adjoint.grad(refuses_large, backend="numba")
    small = np.arange(6.0) / 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback: neither the error nor its rerun
        np.testing.assert_allclose(g(small), np.repeat(np.arange(3.0), 2), rtol=0)
        with pytest.raises(NotImplementedError, match="x\\[0\\] > 1 is not done"):
            g(small + 2.0)
        np.testing.assert_allclose(g(small), np.repeat(np.arange(3.0), 2), rtol=0)


def test_a_reshape_numba_raises_on_falls_back_when_it_runs(monkeypatch, tmp_path):
    # the emitter as it was (no np.ascontiguousarray): the fallback catches numba's
    # NotImplementedError when the gradient runs, not only numba's compile errors
    from adjoint.codegen.emit import Emitter
    monkeypatch.setattr(Emitter, "_c_order", lambda self, o, depth=0: True)
    x = rng().standard_normal((3, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = adjoint.grad(reshape_T, backend="numba", cache_dir=tmp_path)
        got = g(x)
        assert "ascontiguousarray" not in adjoint.source(reshape_T, args=(x,), backend="numba")
        np.testing.assert_allclose(g(x), got, rtol=0)
    np.testing.assert_allclose(got, np.repeat(np.arange(2.0), 6).reshape(3, 4), rtol=0)
    fell = [str(w.message) for w in caught if "numba" in str(w.message)]
    assert len(fell) == 1 and "numba cannot run reshape_T_grad" in fell[0] and \
        "NotImplementedError: incompatible shape for array" in fell[0], fell


@pytest.mark.parametrize("seed", [3, 7, 12, 25])
def test_generated_shape_programs(seed, tmp_path):
    """benchmarks/numba_shapes.py's programs (reshape, transpose, steps, ravel, swapaxes,
    broadcasting, fancy indexing, writes in loops): numba's gradient is NumPy's."""
    import numba_shapes as S
    f = S.load(S.program(seed), tmp_path, f"shape_{seed}")
    outcome, detail = S.check(f, S.argument(seed))
    assert outcome in ("ok", "fallback"), (outcome, detail, S.program(seed))


def test_the_helpers_numba_compiles_are_numpy_s():
    """save, written (at a basic index) and unbroadcast, as numba compiles them
    (numba_backend._overload_helpers), against adjoint.runtime's own."""
    from adjoint import runtime
    from adjoint.codegen.numba_backend import _overload_helpers
    _overload_helpers()
    save = numba.njit(lambda x, i: runtime.save(x, i))
    written = numba.njit(lambda g, i: runtime.written(g, i))
    unbroadcast = numba.njit(lambda g, x: runtime.unbroadcast(g, x))
    a = rng().standard_normal((3, 4))
    for i in (1, (1, 2), (slice(None), 2), (Ellipsis, 3), (2, slice(None, None, -2))):
        for fn in (save, written):
            got = fn(a, i)
            np.testing.assert_array_equal(got, runtime.save(a, i))
            assert np.ndim(got) == 0 or not np.shares_memory(got, a)  # a copy
    g3 = rng().standard_normal((2, 3, 4))
    for g, x in ((a, np.ones((1, 4))), (a, np.ones((3, 1))), (a, np.ones((1, 1))),
                 (g3, np.ones((3, 4))), (g3, np.ones((1, 4))), (g3, np.ones((2, 1, 4))),
                 (a.T, np.ones((4, 1))), (a[:, ::2], np.ones((3, 2)))):
        got = unbroadcast(g, x)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, runtime.unbroadcast(g, x), rtol=1e-14)
    assert unbroadcast(a, 1.5) == pytest.approx(runtime.unbroadcast(a, 1.5), rel=1e-14)
    assert unbroadcast(a[:, ::2], a[:, ::2]) is not None  # the same shape: g as it is
    with pytest.raises(numba.core.errors.TypingError):  # a fancy index: NumPy's only
        save(a, np.array([0, 0]))


def centred(x):
    v = x * 1.0
    v[:, :1] = 0.0
    return np.sum(np.cos(v) * (x + x[:, :1])) + np.sum((x - np.mean(x, axis=0, keepdims=True)) ** 2)


def loop_writes(x):
    v0 = np.zeros((3, 4))
    for i in range(1, 3):
        v0[i] = v0[i - 1] * 0.5 + np.sin(x[i])
    v1 = x.copy()
    for i in range(3):
        v1[i] *= v1[i]
    z = np.zeros((4, 3))
    for i in range(3):
        z[..., i] = x[i].T
    return np.sum(v0 * v1) + np.sum(np.cos(z) * z) + np.mean(np.mean(z, axis=1))


def test_saves_sums_with_keepdims_and_means_compile():
    # these fell back to NumPy: save() and written() of a row, unbroadcast(), np.sum's
    # keepdims (a broadcast's gradient), np.mean's axis
    x = rng().standard_normal((3, 4))
    for f in (centred, loop_writes):
        both(f, (x,), fallback=False)
    both(centred, (np.asfortranarray(x),), fallback=False)
    # numba's fused elementwise code allocates no 'A'-layout result (a loop rebinding v1
    # from a Fortran-ordered copy to a C-ordered one): it may fall back, rightly
    both(loop_writes, (np.asfortranarray(x),), fallback=None)
    text = adjoint.source(centred, args=(x,), backend="numba")
    assert "np.expand_dims(np.sum(x, axis=0) / x.shape[0], 0)" in text
