"""Complex intermediate values between real arguments and a real output (rules/complex.py):
gradients, JVPs and Hessian-vector products against central differences in float64 and
hand formulas; the functions with no rule for complex values refused at their line."""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.testing import check_program

W = np.exp(0.3j * np.arange(8.0))
M = np.array([[1.0 + 2j, 0.5], [0.3j, -1.0]])
X = np.array([0.3, -1.2, 2.0, 0.7, 0.1, -0.4, 1.1, 0.9])


def power(x):  # Parseval: 8 * sum(x ** 2)
    return np.sum(np.abs(np.fft.fft(x)) ** 2)


def real_part(x):
    return np.sum(np.real(np.fft.rfft(x, 8, norm="ortho")))


def round_trip(x):
    return np.sum(np.fft.irfft(np.fft.rfft(x)) ** 2)


def imag_part(x):
    return np.sum(np.imag(np.fft.fft(x)) * np.arange(8.0))


def conj_product(x):
    z = np.fft.fft(x)
    return np.sum(np.real(z * np.conj(z)) * np.arange(8.0))


def filtered(x):
    return np.sum(np.fft.irfft(np.fft.rfft(x) * np.exp(-np.arange(5.0))) ** 2)


def with_complex_constant(x):
    return np.sum(np.abs(np.fft.fft(x) * W))


def mixed_real_complex(x):
    return np.sum(np.real(np.fft.fft(x) * x))


def phases(x):
    return np.sum(np.angle(np.fft.fft(x) + 3.0))


def two_d(x):
    return np.sum(np.abs(np.fft.fft2(np.reshape(x, (2, 4)), s=(3, 5), norm="forward")) ** 2)


def nd_inverse(x):
    spectrum = np.fft.rfftn(np.reshape(x, (2, 4)))
    return np.sum(np.fft.irfftn(spectrum * spectrum, s=(2, 4), axes=(0, 1)) * np.arange(8.0).reshape(2, 4))


def spectral_loss(x):
    y = np.fft.fftshift(np.fft.fft(x, norm="ortho"))
    return np.sum(np.abs(y[:4]) ** 2) + np.real(y[5])


def squared_spectrum(x):
    return np.sum(np.real(np.fft.ifft(np.fft.fft(x) ** 2)))


# a real value's cotangent is real: these were Im(W) where the answer is 0
def imag_of_real(x):
    return np.sum(np.real(np.imag(x) * W))


def angle_of_real(x):
    return np.sum(np.real(np.angle(x) * W))


def real_times_complex(x):
    return np.sum(np.real(np.real(np.fft.fft(x)) * W))


def abs_times_complex(x):
    return np.sum(np.real(np.abs(np.fft.fft(x)) * W))


def matmul_complex(x):
    z = M @ (x[:2] + 1j * x[2:4])
    return np.sum(np.abs(z) ** 2)


def angle_in_degrees(x):
    return np.sum(np.angle(x + 1j * x[::-1], deg=True) * x)


def rotated_in_a_loop(x):
    z = x + 0j
    for k in range(3):
        z = z * W[k] + np.conj(z) * 0.1
    return np.sum(np.real(z) * x + np.imag(z))


def builtin_abs(x):
    return abs(np.sum(x * W)) + np.sum(np.abs(np.exp(1j * x) * x))


def concatenated_and_contracted(x):  # (their rules' helpers in hvp: round 17's refusals)
    z = np.exp(1j * x)
    z = np.concatenate([z[:3], z[3:] * 2.0])
    z = np.einsum("i,i->i", z, np.stack([x, x]).sum(axis=0))
    return np.sum(np.abs(z) ** 2 * np.arange(8.0))


PROGRAMS = [concatenated_and_contracted, power, real_part, round_trip, imag_part, conj_product, filtered,
            with_complex_constant, mixed_real_complex, phases, two_d, nd_inverse,
            spectral_loss, squared_spectrum, imag_of_real, angle_of_real, real_times_complex,
            abs_times_complex, matmul_complex, angle_in_degrees, rotated_in_a_loop,
            builtin_abs]


@pytest.mark.parametrize("f", PROGRAMS, ids=lambda f: f.__name__)
def test_complex_intermediates(f):
    (g,) = check_program(f, X)  # finite differences, JVP against VJP, f's value
    assert g.dtype == np.float64
    v = np.linspace(-0.7, 0.5, 8)
    step = 1e-5
    grad = adjoint.grad(f)
    want = (grad(X + step * v) - grad(X - step * v)) / (2 * step)
    np.testing.assert_allclose(adjoint.hvp(f)(X, v), want, rtol=1e-5, atol=1e-6)


def test_hand_formulas():
    np.testing.assert_allclose(adjoint.grad(power)(X), 16 * X)  # Parseval
    x = 0.7
    np.testing.assert_allclose(adjoint.grad(lambda_imag_exp)(x), np.cos(x))
    np.testing.assert_allclose(adjoint.grad(abs_of_square)(X[:2]), 2 * X[:2])
    np.testing.assert_allclose(adjoint.jvp(abs_of_square)(X[:2], np.array([1.0, 0.0]))[1],
                               2 * X[0])


def lambda_imag_exp(x):
    return np.imag(np.exp(1j * x))  # sin(x)


def abs_of_square(x):
    z = x[0] + 1j * x[1]
    return np.abs(z * z)  # |z|^2 = x0^2 + x1^2


def a_complex_output(x):
    return np.sum(np.fft.fft(x))  # <- refused


def sorted_complex(x):
    return np.sum(np.abs(np.sort(x * W)))


def test_a_complex_output_and_a_function_without_a_complex_rule_are_refused():
    with pytest.raises(NonDifferentiableError, match="complex") as e:
        adjoint.grad(a_complex_output)(X)
    assert e.value.loc.line == a_complex_output.__code__.co_firstlineno
    with pytest.raises(NonDifferentiableError, match="np.sort") as e:
        adjoint.grad(sorted_complex)(X)
    assert e.value.loc.line == sorted_complex.__code__.co_firstlineno + 1


# round 17's silent classes: a complex value the rule cannot see as one
C4 = np.array([1 + 2j, 0.5 - 1j, -1 + 0.3j, 2j])


def norm_of_a_complex_argument(x, c):
    return np.linalg.norm(x * c)  # a real result, of a complex operand: no complex rule


def var_of_a_complex_global(x):
    return np.var(x * C4)


def imag_over_a_mixed_list(x):
    s = 0.0
    for v in [x, x * 1j]:  # real, then complex: one observed kind
        s = s + np.sum(np.imag(v))
    return s


def imag_of_a_branch(x, flag):
    z = x * 1j if flag else x
    return np.sum(np.imag(z))


def stacked_real_and_complex(x):
    v = np.imag(np.exp(1j * x))
    return np.sum(np.abs(np.stack([v * 1j, v])) ** 2)


def transform_of_real_times_complex(x):
    return np.sum(np.imag(np.fft.fft(x * W[:4])) + np.real(np.fft.fft(x)) * 0.5)


@pytest.mark.parametrize("f, args", [
    (norm_of_a_complex_argument, (X[:4], 1 + 2j)), (var_of_a_complex_global, (X[:4],)),
    (imag_over_a_mixed_list, (X[:4],)), (imag_of_a_branch, (X[:4], True)),
], ids=lambda p: getattr(p, "__name__", ""))
def test_a_complex_value_no_rule_can_see_is_refused_at_its_line(f, args):
    with pytest.raises(NonDifferentiableError) as e:
        adjoint.grad(f)(*args)
    assert e.value.loc is not None and e.value.loc.filename == __file__


def stacked_with_the_argument(x):  # [z, x]: x's part of the list's cotangent (round 17)
    z = (x + 0.5j) ** 2
    z = np.stack([z, x]).sum(axis=0)
    return np.sum(np.abs(np.conj(z ** 2)))


def a_list_of_complex_and_real(x):  # its cotangent stacked: complex zeros (round 17's C1)
    L = [x * 1j, x]
    return np.sum(np.imag(L[0])) + np.sum(L[1] ** 2)


@pytest.mark.parametrize("f", [stacked_real_and_complex, transform_of_real_times_complex,
                               stacked_with_the_argument, a_list_of_complex_and_real],
                         ids=lambda f: f.__name__)
def test_a_real_operand_beside_a_complex_one_gets_a_real_cotangent(f):
    check_program(f, X[:4])


def angle_of_a_real_array(x):
    return np.sum(np.angle(x) * x)  # angle is 0 or pi: its derivatives are 0


def test_hvp_of_the_angle_of_a_real_array():
    """Round 17's C4: np.imag of a real array is NumPy's read-only zeros, which the
    second sweep added into in place."""
    x = X[:3]
    np.testing.assert_array_equal(adjoint.hvp(angle_of_a_real_array)(x, np.ones(3)), 0.0)


# ---------------------------------------------------------------- random chains
# (round 17's generator: a complex value made from real ones, carried through a few
# operations, and made real at the end; each chain against central differences)
MAKERS = ["x * (0.7 - 1.3j)", "np.exp(1j * x)", "np.fft.fft(x)", "x + 1j * x ** 2",
          "(x + 0.5j) ** 2", "np.fft.fft(x * y)", "y * np.exp(0.5j * x)"]
STEPS = ["z * z", "z + x", "z / (1.5 + x ** 2)", "np.exp(0.3 * z)", "np.sin(0.5 * z)",
         "np.sqrt(z + 3.0)", "np.log(z + 3.0 + 1j)", "np.conj(z) * x", "np.cumsum(z)",
         "np.roll(z, 1)", "np.where(x > 0, z, np.conj(z))", "z[::-1]", "np.fft.ifft(z)",
         "z - np.mean(z)", "z @ np.outer(x, y)", "np.concatenate([z[:2], z[2:] * 2])",
         "np.stack([z, x]).sum(axis=0)", "np.einsum('i,i->i', z, y)", "1.0 / (z + 2.5 - 1j)"]
ENDS = ["np.sum(np.abs(z) ** 2)", "np.sum(np.abs(z))", "np.sum(np.real(z) * x)",
        "np.sum(np.imag(z) ** 2)", "np.sum(np.angle(z + 5.0))", "np.abs(np.sum(z))",
        "np.sum(z.real) + np.sum(z.imag * y)"]


def _chain(seed: int) -> str:
    import random
    pick = random.Random(seed)
    lines = [f"z = {pick.choice(MAKERS)}"] + [f"z = {pick.choice(STEPS)}"
                                            for _ in range(pick.randint(1, 3))]
    return "import numpy as np\n\n\ndef f(x, y):\n" + "".join(
        f"    {line}\n" for line in lines) + f"    return {pick.choice(ENDS)}\n"


@pytest.mark.parametrize("seed", range(24))
def test_random_complex_chains(tmp_path, seed):
    import importlib.util
    path = tmp_path / f"chain{seed}.py"
    path.write_text(_chain(seed))
    spec = importlib.util.spec_from_file_location(f"complex_chain_{seed}", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 1.2, 4) * rng.choice([-1.0, 1.0], 4)
    y = rng.standard_normal(4)
    gx, gy = check_program(m.f, x, y, wrt=(0, 1))  # FD, JVP against VJP, f's value
    assert gx.dtype == gy.dtype == np.float64
    v, step = np.linspace(-0.7, 0.5, 4), 1e-5
    grad = adjoint.grad(m.f)
    want = (grad(x + step * v, y) - grad(x - step * v, y)) / (2 * step)
    np.testing.assert_allclose(adjoint.hvp(m.f)(x, y, v), want, rtol=1e-5, atol=1e-6)


def imag_of_a_product(x, c):
    return np.sum(np.imag(x * c))


def norm_of_a_product(x, c):
    return np.linalg.norm(x * c)


def in_a_dict(x, p):
    return np.sum(np.real(p["c"] * x) ** 2)


@pytest.mark.parametrize("f,c", [(imag_of_a_product, np.array([1 + 2j, 0.5 - 1j, 2j])),
                                 (norm_of_a_product, np.array([1 + 2j, 0.5 - 1j, 2j])),
                                 (in_a_dict, {"c": [np.array([1.0, 2.0, 3.0]), 1j]})])
def test_generic_code_refuses_complex_arguments(tmp_path, f, c):
    """Code written without example arguments chose its rules for real values (np.imag
    of a real value is 0): called with a complex argument it raises, where it used to
    return wrong numbers (round 17's S7); with real ones it is right."""
    from adjoint.testing import numeric_grad
    for standalone in (False, True):
        namespace: dict = {}
        exec(adjoint.source(f, wrt=0, standalone=standalone), namespace)
        grad = namespace[f"{f.__name__}_grad"]
        x = np.array([0.3, -1.2, 0.7])
        with pytest.raises(ValueError, match="for complex arguments generate it"):
            grad(x, c)
        real = {"c": np.array([0.5, 2.0, -1.0])} if isinstance(c, dict) else np.real(c) + 0.5
        np.testing.assert_allclose(grad(x, real), numeric_grad(f, (x, real), 0),
                                   rtol=1e-6, atol=1e-8)
