"""numpy.fft's derivative rules (adjoint/rules/fft.py).

The transforms take or give complex values, which tests/rules/test_registry.py's real
inner products cannot hold: here each rule is checked on its own with complex
cotangents, in JAX's convention (dL = Re(sum(ct * dz))): for a direction u and a
cotangent v of the output,

    Re <v, J u>  ==  Re <VJP(v), u>  ==  Re <v, JVP(u)>

with J u from central differences in float64, over every `norm`, `n`/`s` that pad
and cut, `axis`/`axes`, and real and complex inputs. The templates are also lowered
as the compiler inlines them. End to end, the shifts (real to real) and the transforms
between real arguments and a real output differentiate (rules/complex.py; more programs
in tests/test_complex.py).
"""
from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.ir.interp import interpret
from adjoint.rules import registry
from adjoint.testing import check_program
from tests.rules import test_registry as reg

F = np.fft
NORMS = [None, "backward", "ortho", "forward"]

# (function, input shape, keyword arguments), each run on a real and a complex input
# (rfft's family takes real inputs only) and with each norm
CASES = [
    (F.fft, (5,), {}), (F.fft, (3, 5), dict(n=7, axis=0)), (F.fft, (3, 6), dict(n=4)),
    (F.ifft, (6,), {}), (F.ifft, (3, 6), dict(n=4)), (F.ifft, (4, 3), dict(n=8, axis=-2)),
    (F.fftn, (3, 4), {}), (F.fftn, (3, 4, 5), dict(s=(2, 6), axes=(0, 2))),
    (F.ifftn, (3, 4, 5), dict(axes=(1,))), (F.ifftn, (3, 4, 5), dict(s=(5, 2), axes=(2, 0))),
    (F.fft2, (3, 4, 5), {}), (F.fft2, (3, 4), dict(s=(5, 3), axes=(1, 0))),
    (F.ifft2, (4, 5), {}), (F.ifft2, (3, 4, 5), dict(s=(2, 7))),
    (F.rfft, (6,), {}), (F.rfft, (7,), {}), (F.rfft, (3, 5), dict(n=8, axis=0)),
    (F.rfft, (9,), dict(n=4)),
    (F.rfftn, (3, 4, 5), {}), (F.rfftn, (3, 4, 5), dict(s=(5, 3), axes=(2, 0))),
    (F.rfft2, (3, 4), dict(s=(6, 3))), (F.rfft2, (2, 3, 5), {}),
    (F.irfft, (5,), {}), (F.irfft, (3, 5), dict(n=7, axis=0)), (F.irfft, (6,), dict(n=4)),
    (F.irfft, (4,), dict(n=11)),
    (F.irfftn, (3, 4, 5), {}), (F.irfftn, (3, 4, 5), dict(s=(5, 6), axes=(2, 0))),
    (F.irfftn, (3, 4, 5), dict(s=(3, 4), axes=(1, 2))),
    (F.irfft2, (3, 4), dict(s=(4, 5))), (F.irfft2, (2, 3, 4), {}),
    (F.fftshift, (5,), {}), (F.fftshift, (3, 4), dict(axes=1)),
    (F.ifftshift, (3, 5), {}), (F.ifftshift, (2, 3, 5), dict(axes=(0, 2))),
]
REAL_ONLY = (F.rfft, F.rfftn, F.rfft2)
SHIFTS = (F.fftshift, F.ifftshift)


def _all_cases():
    out = []
    for fn, shape, kw in CASES:
        for norm in ([None] if fn in SHIFTS else NORMS):
            for complex_input in ((False,) if fn in REAL_ONLY else (False, True)):
                extra = {} if norm is None else {"norm": norm}
                out.append(pytest.param(fn, shape, {**kw, **extra}, complex_input,
                                        id=f"{fn.__name__}-{shape}-{kw}-{norm}-"
                                           f"{'complex' if complex_input else 'real'}"))
    return out


def _draw(rng, shape, complex_value):
    x = rng.normal(size=shape)
    return x + 1j * rng.normal(size=shape) if complex_value else x


def _tangent_name(fn):
    return "x_dot" if fn in SHIFTS else "a_dot"


@pytest.mark.parametrize("fn, shape, kw, complex_input", _all_cases())
def test_inner_product_identity_against_central_differences(fn, shape, kw, complex_input):
    rng = np.random.default_rng(zlib.crc32(f"{fn.__name__}{shape}{kw}{complex_input}".encode()))
    e = registry.lookup(fn)
    a = _draw(rng, shape, complex_input)
    ans = fn(a, **kw)
    v = _draw(rng, ans.shape, np.iscomplexobj(ans))
    u = _draw(rng, shape, complex_input)
    eps = 1e-6
    ju = (fn(a + eps * u, **kw) - fn(a - eps * u, **kw)) / (2 * eps)
    fd = np.real(np.sum(v * ju))

    cot = e.vjp(v, ans, a, **kw)
    assert cot.shape == a.shape
    if not complex_input:
        assert not np.iscomplexobj(cot), "a real input's cotangent is real"
    tangent = e.jvp(ans, a, **kw, **{_tangent_name(fn): u})
    assert tangent.shape == ans.shape
    tol = 1e-7 * (1.0 + np.linalg.norm(v) * np.linalg.norm(ju))
    assert abs(np.real(np.sum(cot * u)) - fd) <= tol
    assert abs(np.real(np.sum(v * tangent)) - fd) <= tol


def test_the_cotangent_of_the_ignored_imaginary_parts_is_zero():
    """irfft reads entry 0 and (n even) entry n/2 of the half spectrum as real: their
    imaginary parts do not move the output, and get a zero cotangent."""
    a = np.array([1.0 + 2.0j, 0.5 - 1.0j, 2.0 + 0.3j, -1.0 + 4.0j])
    for n in (6, 7):
        g = np.random.default_rng(n).normal(size=n)
        cot = registry.lookup(F.irfft).vjp(g, F.irfft(a, n), a, n)
        assert np.imag(cot[0]) == 0.0
        assert (np.imag(cot[3]) == 0.0) == (n == 6)


def test_hand_formulas():
    x = np.array([0.3, -1.2, 2.0, 0.7, -0.4])
    rule = registry.lookup(F.fft).vjp
    # Parseval: sum |fft(x)|^2 = n sum x^2, whose gradient is 2 n x. In JAX's convention
    # the cotangent of z = fft(x) for sum |z|^2 is 2 conj(z)
    z = F.fft(x)
    np.testing.assert_allclose(rule(2.0 * np.conj(z), z, x), 2 * 5 * x, atol=1e-12)
    # sum(real(fft(x))) = sum_j x_j sum_k cos(2 pi jk / n) = n x_0
    np.testing.assert_allclose(rule(np.ones(5), z, x), [5.0, 0, 0, 0, 0], atol=1e-12)
    # ortho: unitary, so the gradient of sum |z|^2 is 2 x
    zo = F.fft(x, norm="ortho")
    np.testing.assert_allclose(rule(2.0 * np.conj(zo), zo, x, norm="ortho"), 2 * x,
                               atol=1e-12)


def test_the_convention_is_jaxs():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(3)
    for fn, jfn, a, kw in [
            (F.fft, jnp.fft.fft, _draw(rng, (3, 5), True), dict(n=7, norm="ortho")),
            (F.rfftn, jnp.fft.rfftn, _draw(rng, (3, 4), False), dict(s=(5, 3), axes=(1, 0))),
            (F.irfft, jnp.fft.irfft, _draw(rng, (5,), True), dict(n=8, norm="forward")),
            (F.irfft2, jnp.fft.irfft2, _draw(rng, (3, 4), True), {})]:
        ans, pullback = jax.vjp(lambda z, jfn=jfn, kw=kw: jfn(z, **kw), jnp.asarray(a))
        v = _draw(rng, ans.shape, np.iscomplexobj(ans))
        np.testing.assert_allclose(registry.lookup(fn).vjp(v, fn(a, **kw), a, **kw),
                                   np.asarray(pullback(jnp.asarray(v))[0]), atol=1e-12)


@pytest.mark.parametrize("fn, shape, kw", [(F.fft, (4,), {}), (F.fftn, (3, 4), dict(s=(5, 2), axes=(0, 1))),
                                           (F.rfft, (6,), dict(n=5, norm="ortho")),
                                           (F.irfftn, (3, 4), dict(axes=(0, 1))),
                                           (F.irfft2, (3, 4), {}), (F.ifft2, (3, 4), {})])
def test_templates_lower(fn, shape, kw):
    """Lowered as the compiler inlines them, the templates call only primitives with
    rules, and compute what the templates do (so a gradient can be differentiated
    again)."""
    rng = np.random.default_rng(7)
    e = registry.lookup(fn)
    a = _draw(rng, shape, fn not in REAL_ONLY and shape != (4,))
    ans = fn(a, **kw)
    v = _draw(rng, ans.shape, np.iscomplexobj(ans))
    primal = {"a": a, **kw}
    for with_facts in (True, False):
        for template, bound in ((e.vjp, {"g": v, "ans": ans, **primal}),
                                (e.jvp, {"ans": ans, **primal, "a_dot": _draw(
                                    rng, shape, np.iscomplexobj(a))})):
            lowered, values = reg._lower(template, bound, "ans", with_facts)
            reg._check_calls(lowered, template.__qualname__)
            np.testing.assert_allclose(interpret(lowered)(*values), template(**bound),
                                       atol=1e-12)


def test_repeated_axes_are_refused_by_name():
    x = np.ones((3, 4))
    with pytest.raises(NonDifferentiableError, match="np.fft.fftn with an axis repeated"):
        registry.lookup(F.fftn).vjp(np.ones((3, 4)), F.fftn(x, axes=(0, 0)), x, axes=(0, 0))


# ---------------------------------------------------------------- end to end

WEIGHTS = np.arange(12.0).reshape(3, 4) ** 2


def shifted(x):
    return np.sum(np.fft.fftshift(x, axes=1) * WEIGHTS)


def unshifted(x):
    y = np.fft.ifftshift(x * x)
    return np.sum(np.fft.fftshift(np.sin(y)) * WEIGHTS) + np.sum(np.fft.ifftshift(y, axes=0)[0])


def shifted_square(x):
    return np.sum(np.fft.fftshift(x, axes=1) * x)


def power(x):
    return np.sum(np.abs(np.fft.fft(x)) ** 2)


def real_part(x):
    return np.sum(np.real(np.fft.rfft(x, 8, norm="ortho")))


def round_trip(x):
    return np.sum(np.fft.irfft(np.fft.rfft(x)) ** 2)


X34 = np.random.default_rng(15).normal(size=(3, 4))


@pytest.mark.parametrize("f", [shifted, unshifted, shifted_square])
def test_shift_programs(f):
    check_program(f, X34)  # FD, forward values, value_and_grad, vjp, jvp against vjp


def test_the_emitted_gradient_of_a_shift():
    src = adjoint.source(shifted, args=(X34,))
    body = src[src.index("    # --- forward ---"):]
    assert body == """\
    # --- forward ---
    # --- backward ---
    # line 222: return np.sum(np.fft.fftshift(x, axes=1) * WEIGHTS)
    x_bar = np.fft.ifftshift(out_bar * WEIGHTS, 1)
    return x_bar
""".replace("222", str(shifted.__code__.co_firstlineno + 1))


def test_a_shift_through_numba_falls_back_to_numpy_with_its_warning():
    pytest.importorskip("numba")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = adjoint.grad(shifted, backend="numba")(X34)
    np.testing.assert_allclose(got, adjoint.grad(shifted)(X34))
    assert any("numba cannot compile" in str(w.message) for w in caught)


def test_on_array_api_arrays_a_shift_is_refused_at_its_line():
    xp = pytest.importorskip("array_api_strict")
    with pytest.raises(adjoint.UnsupportedError, match=r"np\.fft\.fftshift\(\) with axes=") as info:
        adjoint.grad(shifted_square)(xp.asarray(X34))
    assert "test_fft.py" in str(info.value)


@pytest.mark.parametrize("f", [power, real_part, round_trip], ids=lambda f: f.__name__)
def test_a_transform_of_a_differentiated_value_is_differentiated(f):
    """The transforms between a real argument and a real output, end to end (they were
    refused at their line before rules/complex.py)."""
    check_program(f, np.array([0.3, -1.2, 2.0, 0.7]))


def twice_along_one_axis(x):
    return np.sum(np.abs(np.fft.fftn(x, axes=(0, 0))) ** 2)


def test_a_rule_that_refuses_on_constants_refuses_when_compiled_with_its_hint():
    """The refusal is made at compile time (its condition folds on constants), at the
    user's line, and keeps the rule's hint (reverse.refuse_now dropped it)."""
    with pytest.raises(NonDifferentiableError, match="axis repeated") as e:
        adjoint.grad(twice_along_one_axis)(np.ones((3, 4)) * np.arange(4.0))
    assert e.value.loc.line == twice_along_one_axis.__code__.co_firstlineno + 1
    assert "call the transform twice" in str(e.value)
