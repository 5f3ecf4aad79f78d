"""The same gradient on dask arrays: lazy, nothing computed until asked, and equal to
the NumPy gradient of the same data (itself checked against central differences and,
where there is one, the formula). What a lazy array cannot do without being computed
(a branch on its value, float() of it, a shape that depends on its values) is refused
at its line; a loop over its elements gets a warning; other array libraries are
refused by name."""
import dataclasses
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import adjoint  # noqa: E402
from adjoint.analysis.shapes import LazyLoopWarning  # noqa: E402
from adjoint.testing import numeric_grad  # noqa: E402

R = np.random.default_rng(7)


def refuse_to_compute(dsk, keys, **kwargs):
    raise AssertionError("a dask graph was computed")


def lazily():
    """Within it, any compute fails: differentiating must only build graphs."""
    return dask.config.set(scheduler=refuse_to_compute)


def chunked(a, rows=4):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


# ---------------------------------------------------------------- programs


def tanh_sum(x):
    return np.sum(np.tanh(x))


def logreg(w, b, X, y):
    z = X @ w + b
    return np.mean(np.logaddexp(0.0, z) - y * z)


def mlp(W1, W2, X, Y):
    h = np.tanh(X @ W1)
    return 0.5 * np.sum((h @ W2 - Y) ** 2)


def steps(x, w):
    s = x
    for _ in range(3):
        s = np.sin(s * w) + s
    return np.sum(s * s)


def write_first(x):
    y = x * 2.0
    y[0] += 3.0 * x[1]
    y[2:4] = np.exp(x[2:4])
    return np.sum(y ** 2)


def buffer_of_rows(X):
    out = np.zeros((2, X.shape[1]))  # a NumPy buffer that lazy rows are written into
    out[0] = np.sum(X, axis=0)
    out[1] = np.sum(X * X, axis=0)
    return np.sum(np.tanh(out))


def chunk_loop(X, w):
    total = 0.0
    for k in range(0, 12, 4):  # whole chunks: no warning
        total = total + np.sum(np.tanh(X[k:k + 4] @ w))
    return total


def checkpointed_steps(x):
    s = x
    for _ in adjoint.checkpointed(range(6), snapshots=2):
        s = np.sin(s) * 1.1
    return np.sum(s)


def while_steps(x, n):
    k = 0
    s = x
    while k < n:  # an int test: no lazy value decides it
        s = s * 0.5 + np.tanh(s)
        k += 1
    return np.sum(s)


def int_buffer(x):
    a = np.arange(3)  # ints: the float written in is truncated, as NumPy does
    a[1] = x[0] * 2.0
    return np.sum(a * x)


MASK4, IDX3 = np.array([True, False, True, True]), np.array([0, 2, 2])


def picked_params(w, X):
    # NumPy parameters read through a mask and a repeated index, lazy data: the
    # cotangents are scattered back with lazy_add_at
    return np.sum(np.tanh(X @ w[MASK4])) + np.sum(w[IDX3] * X[0, :3])


def dict_params(p, X):
    return np.sum(np.tanh(X @ p["w"] + p["b"]) ** 2)


def pairs_of_lazy_arrays(y):
    # round 15, C4: observing a list of tuples of dask arrays asked np.shape of it, which
    # computes them (an internal exception escaped); zip(*pairs) unpacks them
    pairs = [(y, y * 2.0), (np.tanh(y), y * 0.5)]
    u, v = zip(*pairs)
    return np.sum(u[0] * v[1] + u[1] * v[0])


X12 = R.normal(size=(12, 3))
CASES = [
    (tanh_sum, (R.normal(size=12),), (0,), 0),
    (logreg, (R.normal(size=3), 0.3, X12, (R.random(12) > 0.5) * 1.0), (2, 3), (0, 1)),
    (mlp, (R.normal(size=(3, 4)), R.normal(size=(4, 2)), X12, R.normal(size=(12, 2))),
     (0, 1, 2, 3), (0, 1)),
    (steps, (R.normal(size=12), 0.7), (0,), (0, 1)),
    (write_first, (R.normal(size=12),), (0,), 0),
    (buffer_of_rows, (X12,), (0,), 0),
    (chunk_loop, (X12, R.normal(size=3)), (0,), (0, 1)),
    (checkpointed_steps, (R.normal(size=12),), (0,), 0),
    (while_steps, (R.normal(size=12), 3), (0,), 0),
    (int_buffer, (np.array([1.3, -0.4, 0.8]),), (0,), 0),
    (picked_params, (R.normal(size=4), X12), (1,), 0),
    (pairs_of_lazy_arrays, (R.normal(size=12),), (0,), 0),
]


def _tuple(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.mark.parametrize("f, args, lazy, wrt", CASES, ids=[c[0].__name__ for c in CASES])
def test_gradient_is_lazy_and_equals_numpy(f, args, lazy, wrt):
    want = _tuple(adjoint.grad(f, wrt=wrt)(*args))
    fd = _tuple(numeric_grad(f, args, wrt=wrt))
    for w, n in zip(want, fd):
        np.testing.assert_allclose(w, n, rtol=1e-6, atol=1e-8)
    dargs = tuple(chunked(a) if i in lazy else a for i, a in enumerate(args))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LazyLoopWarning)
        with lazily():
            got = _tuple(adjoint.grad(f, wrt=wrt)(*dargs))
    assert all(isinstance(g, da.Array) for g in got)
    for g, w in zip(dask.compute(*got), want):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_logreg_gradient_is_the_formula():
    w, b, X, y = CASES[1][1]
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    with lazily():
        gw, gb = adjoint.grad(logreg, wrt=(0, 1))(w, b, chunked(X), chunked(y))
    np.testing.assert_allclose(gw.compute(), X.T @ (p - y) / len(y), rtol=1e-12)
    np.testing.assert_allclose(float(gb.compute()), np.mean(p - y), rtol=1e-12)


def test_value_and_grad_vjp_and_jvp_are_lazy():
    w, b, X, y = CASES[1][1]
    Xd, yd = chunked(X), chunked(y)
    want = adjoint.grad(logreg)(w, b, X, y)
    with lazily():
        value, g = adjoint.value_and_grad(logreg)(w, b, Xd, yd)
        _, pullback = adjoint.vjp(logreg, w, b, Xd, yd)
        g2 = pullback(1.0)
        _, slope = adjoint.jvp(logreg)(w, b, Xd, yd, np.ones(3))
    assert all(isinstance(v, da.Array) for v in (value, g, g2, slope))
    np.testing.assert_allclose(value.compute(), logreg(w, b, X, y), rtol=1e-14)
    np.testing.assert_allclose(g.compute(), want, rtol=1e-12)
    np.testing.assert_allclose(g2.compute(), want, rtol=1e-12)
    np.testing.assert_allclose(slope.compute(), np.sum(want), rtol=1e-12)


def test_hvp_is_lazy_and_equals_numpy():
    w, b, X, y = CASES[1][1]
    v = R.normal(size=3)
    want = adjoint.hvp(logreg)(w, b, X, y, v)
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    np.testing.assert_allclose(want, X.T @ (p * (1 - p) * (X @ v)) / len(y), rtol=1e-10)
    with lazily():
        got = adjoint.hvp(logreg)(w, b, chunked(X), chunked(y), v)
    assert isinstance(got, da.Array)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-12)


def test_numpy_and_dask_calls_get_their_own_code():
    x = R.normal(size=8)
    g = adjoint.grad(write_first)
    first = g(x)
    with lazily():
        lazy = g(chunked(x))
    again = g(x)
    assert isinstance(first, np.ndarray) and isinstance(again, np.ndarray)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), first, rtol=1e-14)
    text = adjoint.source(write_first, args=(chunked(x),))
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert "lazy_setitem" in text and not any("+=" in line for line in code)  # no in-place


def test_an_int_buffer_truncates_as_numpy_does():
    x = np.array([1.3, -0.4, 0.8])
    with lazily():
        g = adjoint.grad(int_buffer)(chunked(x, 2))
    np.testing.assert_array_equal(g.compute(), [0.0, 2.0, 2.0])  # a = [0, 2, 2]


def test_a_gradient_no_lazy_value_reaches_is_a_dask_array_too():
    with lazily():
        g = adjoint.grad(ignores_second, wrt=(0, 1))(chunked(X12[:, 0]), chunked(X12[:, 1]))
    assert all(isinstance(v, da.Array) for v in g)
    np.testing.assert_allclose(g[0].compute(), 2 * X12[:, 0], rtol=1e-14)
    np.testing.assert_array_equal(g[1].compute(), np.zeros(12))


def ignores_second(x, unused):
    return np.sum(x * x)


@dataclasses.dataclass
class Affine:
    w: object
    b: float


def affine_loss(p, x):
    return np.sum(np.tanh(x * p.w + p.b))


def test_a_dataclass_parameter_holding_a_dask_array():
    # round 15, C6: its cotangent had None for the dask field (zeros_like knew NumPy
    # arrays and numbers only), and lazy_setitem added into None
    w, x = R.normal(size=4), R.normal(size=4)
    want = adjoint.grad(affine_loss)(Affine(w, 0.2), x)
    with lazily():
        got = adjoint.grad(affine_loss)(Affine(chunked(w), 0.2), chunked(x))
    assert type(got) is Affine and isinstance(got.w, da.Array)
    np.testing.assert_allclose(got.w.compute(), want.w, rtol=1e-12)
    np.testing.assert_allclose(float(got.b), want.b, rtol=1e-12)
    np.testing.assert_allclose(want.w, numeric_grad(lambda v: affine_loss(Affine(v, 0.2), x),
                                                    (w,)), rtol=1e-6)


def test_dict_parameters_with_dask_data():
    p, X = {"w": R.normal(size=3), "b": 0.2}, X12
    want = adjoint.grad(dict_params)(p, X)
    fd = numeric_grad(dict_params, (p, X))
    np.testing.assert_allclose(want["w"], fd["w"], rtol=1e-6)
    with lazily():
        got = adjoint.grad(dict_params)(p, chunked(X))
    assert set(got) == {"w", "b"} and all(isinstance(v, da.Array) for v in got.values())
    np.testing.assert_allclose(got["w"].compute(), want["w"], rtol=1e-12)
    np.testing.assert_allclose(float(got["b"].compute()), want["b"], rtol=1e-12)


# ---------------------------------------------------------------- refusals


def branch_on_value(x):
    s = np.sum(x)
    if s > 0:
        return s * s
    return -s


def float_of_value(x):
    return float(np.sum(x)) * np.sum(x)


def masked(x):
    return np.sum(x[x > 0.0] ** 2)


@pytest.mark.parametrize("f, line, words", [
    (branch_on_value, 2, "an `if` tests `s > 0`, a lazy dask value"),
    (float_of_value, 1, "float() of"),
    (masked, 1, "depends on the values"),
], ids=["if", "float", "mask"])
def test_what_would_compute_is_refused_at_its_line(f, line, words):
    import inspect
    first = inspect.getsourcelines(f)[1]
    with lazily(), pytest.raises(adjoint.UnsupportedError) as e:
        adjoint.grad(f)(chunked(R.normal(size=8)))
    assert words in str(e.value)
    assert e.value.loc.line == first + line
    assert "compute" in e.value.hint


def gather(x, idx):
    v = x[idx]
    return np.sum(v * v)


def test_a_dask_index_array_is_refused_where_it_indexes():
    # round 22's F5: the gradient's scatter compared the lazy index with a slice (its
    # truth would compute it): a ValueError, now refused at the read
    import inspect
    with lazily(), pytest.raises(adjoint.UnsupportedError, match="indexes an array") as e:
        adjoint.grad(gather)(chunked(R.normal(size=8)), da.from_array(np.array([0, 0, 5])))
    assert e.value.loc.line == inspect.getsourcelines(gather)[1] + 1
    assert "compute" in e.value.hint
    x = chunked(R.normal(size=8))  # a NumPy index: lazy, and np.add.at's sums
    got = adjoint.grad(gather)(x, np.array([0, 0, 5]))
    want = np.zeros(8)
    np.add.at(want, [0, 0, 5], 2 * x.compute()[[0, 0, 5]])
    np.testing.assert_allclose(got.compute(), want, rtol=1e-12)


def test_a_dask_array_read_from_outside_is_refused_where_it_is_read():
    import inspect
    X = chunked(X12)

    def closure(w):
        return np.sum(np.tanh(X @ w))

    with lazily(), pytest.raises(adjoint.UnsupportedError, match="reads from outside") as e:
        adjoint.grad(closure)(np.ones(3))
    assert e.value.loc.line == inspect.getsourcelines(closure)[1] + 1
    assert "pass `X` as an argument" in e.value.hint


def reshape_f(x):
    return np.sum(np.reshape(x, (3, 4), "F") * np.arange(12.0).reshape(3, 4))


def det_of(A):
    return np.linalg.det(A)  # dask has no det: NumPy's would compute A


def inverse_of(A):
    return np.sum(np.linalg.inv(A))  # dask's needs square chunks


@pytest.mark.parametrize("f, x, words", [
    (reshape_f, R.normal(size=12), "C order only"),
    (det_of, R.normal(size=(4, 4)), "would compute it"),
    (inverse_of, R.normal(size=(4, 4)) + 4 * np.eye(4), "failed in dask"),
], ids=["reshape-F", "det", "inv-chunks"])
def test_what_dask_cannot_do_as_numpy_does_is_refused(f, x, words):
    # np.reshape(x, s, "F") on dask reads "F" as another argument and reshapes in C
    # order: silently another array
    with lazily(), pytest.raises(adjoint.UnsupportedError, match=words) as e:
        adjoint.grad(f)(chunked(x, 2) if x.ndim == 1 else da.from_array(x, chunks=(2, 3)))
    assert e.value.loc is not None and e.value.loc.func == f.__name__


def element_loop(x):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * x[i]
    return s


def test_a_loop_over_elements_warns_and_stays_right():
    x = R.normal(size=6)
    import inspect
    with lazily(), pytest.warns(LazyLoopWarning, match="element by element") as caught:
        g = adjoint.grad(element_loop)(chunked(x, 3))
    assert len(caught) == 1  # once for the line, shown at the user's line
    assert caught[0].filename == __file__
    assert caught[0].lineno == inspect.getsourcelines(element_loop)[1] + 3
    np.testing.assert_allclose(g.compute(), 2 * x, rtol=1e-14)


def test_unknown_chunks_and_other_libraries_are_refused_by_name():
    x = chunked(R.normal(size=8))
    with pytest.raises(adjoint.UnsupportedError, match="unknown chunk sizes") as e:
        adjoint.grad(tanh_sum)(x[x > 0])
    assert "compute_chunk_sizes" in e.value.hint
    xp = pytest.importorskip("array_api_strict")
    with pytest.raises(adjoint.UnsupportedError, match="array of array_api_strict") as e:
        adjoint.grad(logreg)(np.ones(3), 0.0, xp.asarray(X12), np.ones(12))
    assert "array API" in str(e.value) and "np.asarray(X)" in e.value.hint


# ---------------------------------------------------------------- a cluster


def test_logreg_gradient_on_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    w, b, X, y = CASES[1][1]
    want = adjoint.grad(logreg, wrt=(0, 1))(w, b, X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        gw, gb = adjoint.grad(logreg, wrt=(0, 1))(w, b, chunked(X, 3), chunked(y, 3))
        assert isinstance(gw, da.Array)
        gw, gb = client.compute([gw, gb], sync=True)
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_allclose(gw, want[0], rtol=1e-12)
    np.testing.assert_allclose(gb, want[1], rtol=1e-12)


def test_the_graph_holds_no_data_sized_constant():
    # the cotangent of a mean is a number broadcast to the data's shape: as a NumPy
    # array it would be sent to the workers whole (8 bytes a row)
    cloudpickle = pytest.importorskip("cloudpickle")
    n = 200_000
    X = da.random.default_rng(0).normal(size=(n, 3), chunks=(50_000, 3))
    y = da.random.default_rng(1).random(n, chunks=50_000)
    with lazily():
        gw, gb = adjoint.grad(logreg, wrt=(0, 1))(np.ones(3), 0.1, X, y)
    graph = dict(gw.__dask_graph__()) | dict(gb.__dask_graph__())
    assert len(cloudpickle.dumps(graph)) < n  # well under 8 bytes a row


# ---------------------------------------------------------------- the corpus on dask


def _corpus():
    """tests/test_gradients' programs with an array argument: on dask arrays each is the
    NumPy gradient, lazily, or a located refusal (a branch on a lazy value, a mask)."""
    from tests import test_gradients as T
    out = []
    for k, (f, args, wrt) in enumerate(T.CASES):
        if not any(isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim for a in args):
            continue
        out.append(pytest.param(f, args, wrt, id=f"{f.__name__}-{k}"))
    return out


@pytest.mark.parametrize("f, args, wrt", _corpus())
def test_the_corpus_on_dask_is_numpy_or_refused(f, args, wrt):
    want = _tuple(adjoint.grad(f, wrt=wrt)(*args))
    dargs = tuple(da.from_array(a, chunks=tuple(max(1, (n + 1) // 2) for n in a.shape))
                  if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim else a
                  for a in args)
    try:
        with warnings.catch_warnings(), lazily():
            warnings.simplefilter("ignore", LazyLoopWarning)
            got = _tuple(adjoint.grad(f, wrt=wrt)(*dargs))
    except adjoint.UnsupportedError as e:
        assert e.loc is not None and e.loc.line > 0 and "compute" in e.hint, str(e)
        return
    assert all(isinstance(g, da.Array) or isinstance(g, (list, tuple)) for g in got)
    for g, w in zip(dask.compute(*got), want):
        np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, index, vshape", [
    ((6,), np.array([0, 2, 2, 5]), (4,)), ((3, 4), (slice(None), np.array([1, 1, 3])), (3, 3)),
    ((5, 2), np.array([4, 0, 4]), (3, 2)), ((6,), np.array([1, 0, 1, 0, 0, 1], bool), (3,)),
    ((3, 4), 1, (4,)), ((6,), [1, 1, -1], (3,)), ((6,), np.array([0, 2, 2, 5]), ()),
])
def test_lazy_add_at_is_np_add_at(shape, index, vshape):
    # the scatter of a fancy read's cotangent: repeated positions add up
    from adjoint.runtime import lazy_add_at
    x, v = R.normal(size=shape), R.normal(size=vshape)
    want = x.copy()
    np.add.at(want, index, v)
    with lazily():
        got = lazy_add_at(chunked(x, 2), index, da.from_array(v) if v.ndim else v)
        also = lazy_add_at(x, index, da.from_array(v) if v.ndim else v)
    assert isinstance(got, da.Array)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(also.compute() if hasattr(also, "compute")
                                          else also), want, rtol=1e-14)


def _enumerated():
    """tests/enumerate_programs' array programs (CI subset) that must differentiate."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    import enumerate_programs as E
    known = {"fancy-repeat_set": "the cotangent of np.array([...]) (rules/shape.py unarray "
                                 "and _like) takes np.shape of a list of dask values and "
                                 "float() of a 0-d one, which compute them"}
    out = []
    for p in E.ci_subset(E.all_programs()):
        if p.expect_error is not None or not any(
                isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in p.args):
            continue
        marks = [pytest.mark.xfail(strict=True, reason=known[p.name])] if p.name in known \
            else []
        out.append(pytest.param(p, id=p.name, marks=marks))
    return out


@pytest.mark.parametrize("program", _enumerated())
def test_enumerated_programs_on_dask_are_numpy_or_refused(program, tmp_path):
    import importlib.util
    path = tmp_path / f"dask_{program.name.replace('-', '_')}.py"
    path.write_text(program.source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wrt = program.wrt if program.wrt is not None else tuple(
        i for i, a in enumerate(program.args)
        if isinstance(a, float) or isinstance(a, np.ndarray) and a.dtype.kind == "f")
    dargs = tuple(da.from_array(a, chunks=tuple(max(1, (n + 1) // 2) for n in a.shape))
                  if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                  for a in program.args)
    try:
        want = _tuple(adjoint.grad(module.f, wrt=wrt)(*program.args))
    except adjoint.AdjointError:  # refused on NumPy (tests/test_enumerated's known ones)
        with warnings.catch_warnings(), lazily(), pytest.raises(adjoint.AdjointError):
            warnings.simplefilter("ignore", LazyLoopWarning)
            adjoint.grad(module.f, wrt=wrt)(*dargs)
        return
    try:
        with warnings.catch_warnings(), lazily():
            warnings.simplefilter("ignore", LazyLoopWarning)
            got = _tuple(adjoint.grad(module.f, wrt=wrt)(*dargs))
    except adjoint.UnsupportedError as e:
        assert e.loc is not None and e.loc.line > 0 and "compute" in e.hint, str(e)
        return
    for g, w in zip(dask.compute(*got), want):
        np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float),
                                   rtol=1e-10, atol=1e-12)


def half_logdet(a):
    factor = np.linalg.cholesky(a)
    return np.sum(np.log(np.diagonal(factor)))


def test_a_cholesky_that_dask_answers_with_the_upper_factor_is_refused():
    # round 23's F8: np.linalg.cholesky of a dask array is da.linalg.cholesky, the upper
    # factor; the rule read it as the lower one (a wrong gradient, the value the same)
    a = np.array([[2.0, 0.3], [0.3, 1.0]])
    with pytest.raises(adjoint.AdjointError, match="returns the upper factor") as e:
        adjoint.grad(half_logdet)(da.from_array(a, chunks=1))
    assert e.value.loc.line == half_logdet.__code__.co_firstlineno + 1
    inverse = np.linalg.inv(a)  # NumPy's: the lower triangle read, the diagonal halved
    np.testing.assert_allclose(adjoint.grad(half_logdet)(a),
                               np.tril(inverse) - 0.5 * np.diag(np.diag(inverse)), rtol=1e-12)
