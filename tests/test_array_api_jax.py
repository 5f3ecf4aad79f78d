"""The array-API form of a gradient on JAX CPU arrays, issue 18's third array library
(torch's CPU build is not on PyPI, and its CUDA build costs 5 GB a Python: helper F's
report). The same programs as tests/test_array_api.py, and its nets: each gradient is
NumPy's on the same data, in float64 (x64 on), or a located refusal.

JAX's arrays cannot be written: the generated code writes x[i] with at(x)[i].set(v), the
functional update, where the emitter knows the library for one (codegen/emit.py
FUNCTIONAL_WRITES); until then such a gradient is refused at its line."""
import importlib.util
import inspect

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install 'jax[cpu]' "
                                        "(it is in the test extra)")
pytest.importorskip("array_api_compat")
jax.config.update("jax_enable_x64", True)  # float64, as NumPy's numbers are
import jax.numpy as jnp  # noqa: E402

import adjoint  # noqa: E402
from adjoint.codegen import emit  # noqa: E402
from adjoint.codegen.xp import at, zeros_like  # noqa: E402
from tests import test_array_api as S  # noqa: E402

ARRAY = jax.Array
LIBRARY = type(jnp.zeros(1)).__module__.split(".")[0]  # "jaxlib": the emitter's name for it
FUNCTIONAL = LIBRARY in getattr(emit, "FUNCTIONAL_WRITES", ())
WRITES = {"prefix_fill", "rows", "rows_written"}  # their gradients write x_bar[i]
R = np.random.default_rng(3)


def jx(a):
    return jnp.asarray(a) if isinstance(a, np.ndarray) else a


@pytest.mark.parametrize("f, args, wrt", S.CASES, ids=[c[0].__name__ for c in S.CASES])
def test_gradient_on_jax_equals_numpys(f, args, wrt):
    if f.__name__ in WRITES and not FUNCTIONAL:
        with pytest.raises(adjoint.UnsupportedError, match="element by element") as e:
            adjoint.grad(f, wrt)(*map(jx, args))
        assert e.value.loc.filename == S.__file__ and e.value.loc.line > 0
        return
    S.equals_numpys(f, args, wrt, jnp.asarray, ARRAY)  # float64: x64 is on


def test_value_and_grad_and_float32():
    x = R.normal(size=5)
    value, g = adjoint.value_and_grad(S.tanh_sum)(jnp.asarray(x))
    assert float(value) == pytest.approx(S.tanh_sum(x))
    np.testing.assert_allclose(np.asarray(g), 1 - np.tanh(x) ** 2, rtol=1e-13)
    # JAX's default dtype: a float32 array keeps a float32 gradient
    X = R.normal(size=(3, 4))
    g = adjoint.grad(S.peaks)(jnp.asarray(X, dtype=jnp.float32))
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(g), adjoint.grad(S.peaks)(X), rtol=1e-4, atol=1e-5)


def test_a_function_outside_the_standard_is_refused_by_name_at_its_line():
    with pytest.raises(adjoint.UnsupportedError, match=r"np\.cbrt\(\)") as e:
        adjoint.grad(S.cube_root)(jnp.asarray(R.normal(size=4)))
    assert e.value.loc.filename == S.__file__
    assert e.value.loc.line == inspect.getsourcelines(S.cube_root)[1] + 2
    assert "np.asarray" in e.value.hint
    w, b, X, y = S.CASES[1][1]  # NumPy and JAX arrays in one call
    with pytest.raises(adjoint.UnsupportedError, match="NumPy array"):
        adjoint.grad(S.logreg)(w, b, jnp.asarray(X), y)


def pick(x, k):
    return x[k] * 2.0


def test_an_index_out_of_bounds_raises_as_numpys_does():
    # JAX clamps x[5] of a 3-vector; the call is observed on NumPy, which raises
    with pytest.raises(IndexError):
        adjoint.grad(pick)(jnp.asarray(R.normal(size=3)), 5)


def test_emitted_file_runs_on_jax_arrays(tmp_path):
    args = S.CASES[2][1]
    path = tmp_path / "mlp_jax.py"
    path.write_text(adjoint.source(S.mlp, wrt=(0, 1, 2, 3), args=args, array_api=True))
    spec = importlib.util.spec_from_file_location("mlp_jax", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.mlp_grad(*map(jx, args))
    for g, w in zip(got, adjoint.grad(S.mlp, wrt=(0, 1, 2, 3))(*args)):
        assert isinstance(g, ARRAY)
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12)


def test_at_writes_as_numpy_does():
    x = jnp.arange(6.0).reshape(2, 3)
    y = at(x)[1, 2].set(-1.0)
    assert float(x[1, 2]) == 5.0 and float(y[1, 2]) == -1.0  # a new array
    z = at(y)[0].add(jnp.ones((1, 3)))  # NumPy drops a value's leading 1s
    np.testing.assert_array_equal(np.asarray(z), [[1, 2, 3], [3, 4, -1]])
    np.testing.assert_array_equal(np.asarray(at(x)[jnp.asarray([1, 0])].set(0.0)), 0 * x)
    with pytest.raises(ValueError, match="repeated"):  # JAX does not say which one wins
        at(x)[jnp.asarray([1, 1])].set(jnp.zeros((2, 3)))
    with pytest.raises(IndexError):  # JAX drops it
        at(x)[2].set(0.0)
    n, d = np.zeros(3), {"a": 1.0}  # writable: in place, as the NumPy code does
    assert at(n)[1].add(2.0) is n and n[1] == 2.0
    assert at(d)["a"].add(2.0) is d and d["a"] == 3.0


def test_zeros_like_keeps_the_namespace():
    assert zeros_like(0.5) == 0.0 and zeros_like(None) is None
    z = zeros_like(jnp.ones((2, 3), dtype=jnp.float32))
    assert isinstance(z, ARRAY) and z.shape == (2, 3) and z.dtype == jnp.float32
    assert zeros_like(jnp.ones(3, dtype=jnp.int32)).dtype == jnp.float64  # x64 is on
    stacked = zeros_like([jnp.asarray(1.0), jnp.asarray(2.0)])
    assert isinstance(stacked, ARRAY) and stacked.shape == (2,)
    rows = zeros_like([jnp.ones(3), jnp.ones(3)])  # one zero per row: x_bar[k] stays one
    assert len(rows) == 2 and rows[0].shape == (3,) and len(rows[:1] + rows[1:]) == 1
    assert set(zeros_like({"W": jnp.ones(2), "s": "tanh"})) == {"W", "s"}
    numbers = zeros_like([1.0, 2.0])  # Python's zeros: a NumPy array would meet JAX's
    assert list(numbers) == [0.0, 0.0] and all(type(z) is float for z in numbers)


# programs that fail on JAX today, with the functional writes (smallest in the report)
KNOWN = {"list_extend-by_array": S.STRICT_KNOWN["list_extend-by_array"]}
if FUNCTIONAL:
    KNOWN["inplace_state-if_slot_then_write"] = S.STRICT_KNOWN[
        "inplace_state-if_slot_then_write"]


@pytest.mark.parametrize("f, args, wrt", S.net_programs(KNOWN))
def test_the_corpus_on_jax_is_numpy_or_refused(f, args, wrt, tmp_path):
    S.right_or_refused(f, args, wrt, jnp.asarray, tmp_path)
