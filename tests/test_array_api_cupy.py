"""The gradient on CuPy arrays (CUDA GPUs), issue 18: the programs and the nets of
tests/test_array_api.py, each gradient a CuPy array equal to NumPy's on the same data,
or a located refusal (a gradient that writes array elements is refused for CuPy, whose
x[i] is a view where NumPy's is a copy).

Skipped, saying why, on a machine without CuPy or without a CUDA GPU (the machine the
project is developed on has none: these tests have not run there)."""
import importlib.util

import numpy as np
import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed: pip install 'adjoint[gpu]' "
                                          "on a machine with a CUDA GPU")
try:
    _GPUS = cupy.cuda.runtime.getDeviceCount()
except Exception:  # the CUDA driver is missing: CuPy imports, but no device answers
    _GPUS = 0
if not _GPUS:
    pytest.skip("no CUDA GPU on this machine: the CuPy tests need one",
                allow_module_level=True)
pytest.importorskip("array_api_compat")

import adjoint  # noqa: E402
from tests import test_array_api as S  # noqa: E402

WRITES = {"prefix_fill", "rows", "rows_written"}  # their gradients write x_bar[i]


def on_host(g):
    """A gradient (an array, a number, or a container of them) as NumPy floats."""
    if isinstance(g, (list, tuple)):
        return [y for x in g for y in on_host(x)]
    if isinstance(g, dict):
        return [y for k in sorted(g) for y in on_host(g[k])]
    return [np.asarray(cupy.asnumpy(g) if isinstance(g, cupy.ndarray) else g, dtype=float)]


@pytest.mark.parametrize("f, args, wrt", S.CASES, ids=[c[0].__name__ for c in S.CASES])
def test_gradient_on_cupy_equals_numpys(f, args, wrt):
    on_gpu = S.converted(args, cupy.asarray)
    if f.__name__ in WRITES:
        with pytest.raises(adjoint.UnsupportedError) as e:
            adjoint.grad(f, wrt)(*on_gpu)
        assert e.value.loc.filename == S.__file__ and e.value.loc.line > 0
        return
    got = adjoint.grad(f, wrt)(*on_gpu)
    want = adjoint.grad(f, wrt)(*args)
    got, want = (got, want) if isinstance(wrt, tuple) else ((got,), (want,))
    for i, g, w in zip(wrt if isinstance(wrt, tuple) else (wrt,), got, want):
        if isinstance(args[i], np.ndarray):  # an array's gradient stays on the device
            assert isinstance(g, cupy.ndarray), type(g)
            assert g.shape == args[i].shape and g.dtype == args[i].dtype
        np.testing.assert_allclose(on_host(g)[0], w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(w, S.central_difference(f, args, i), rtol=1e-6, atol=1e-8)


def test_emitted_file_runs_on_cupy_arrays(tmp_path):
    args = S.CASES[2][1]
    path = tmp_path / "mlp_cupy.py"
    path.write_text(adjoint.source(S.mlp, wrt=(0, 1, 2, 3), args=args, array_api=True))
    spec = importlib.util.spec_from_file_location("mlp_cupy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.mlp_grad(*S.converted(args, cupy.asarray))
    for g, w in zip(got, adjoint.grad(S.mlp, wrt=(0, 1, 2, 3))(*args)):
        assert isinstance(g, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(g), w, rtol=1e-12)


@pytest.mark.parametrize("f, args, wrt", S.net_programs({}))
def test_the_corpus_on_cupy_is_numpy_or_refused(f, args, wrt, tmp_path):
    S.right_or_refused(f, args, wrt, cupy.asarray, tmp_path, flat=on_host)
