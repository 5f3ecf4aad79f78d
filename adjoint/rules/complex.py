"""Complex intermediate values between real inputs and a real output.

The convention is JAX's: a complex value z's cotangent `ct` is such that a change dz
changes the (real) output by Re(sum(ct * dz)). Under it the rule of a function that is
differentiable in the complex sense (`*`, `/`, np.exp, np.sum, `@`, a transform) is its
real rule unchanged, `g * f'(z)`, with transposes and no conjugates. So a complex value
may pass only through the functions of COMPLEX_SAFE (analysis/activity.py refuses the
rest at their line), and the four functions that are not so differentiable, which make
a real value of a complex one, have the rules below, used when their operand is complex:

    np.abs(z)     ct = g * conj(z) / |z|         np.real(z)    ct = g
    np.imag(z)    ct = -1j * g                   np.angle(z)   ct = -1j * g / z

A real value's cotangent is the real part of what reaches it: the reverse sweep takes
np.real where an op that meets a complex value gives a real operand its contribution
(ad/reverse.py), so the gradient of a real argument stays real.
"""
from __future__ import annotations

import operator

import numpy as np

from adjoint import runtime
from adjoint.errors import NonDifferentiableError
from adjoint.rules.arith import unsum
from adjoint.rules.fft import cut_or_pad, real_like
from adjoint.rules.linalg import einsum_expand
from adjoint.rules.registry import defjvp, defvjp, lookup, primitive
from adjoint.rules.shape import (join_like, split_like, unarray, unrepeat_array, unstack_like,
                                 untile)
from adjoint.rules.structure import dict_of, list_of, tuple_of
from adjoint.rules.tape import iadd, iadd_at

if lookup(np.angle) is None:
    primitive(np.angle, "np.angle")


def abs_vjp(g, ans, x):  # (conj(x) / |x|, not np.sign: a second derivative flows through it)
    return g * np.conj(x) / np.where(ans == 0.0, 1.0, ans)


def abs_jvp(ans, x, x_dot):
    return np.real(x_dot * np.conj(x)) / np.where(ans == 0.0, 1.0, ans)


def real_vjp(g, ans, val):
    return g + 0j  # a complex cotangent: sums with the other parts' without a cast


def real_jvp(ans, val, val_dot):
    return np.real(val_dot)


def imag_vjp(g, ans, val):
    return -1j * g


def imag_jvp(ans, val, val_dot):
    return np.imag(val_dot)


@defvjp(np.angle)  # (of a real z too: the real part of -1j * g / z is 0)
def angle_vjp(g, ans, z, deg=False):
    return -1j * g / z * (180.0 / np.pi if deg else 1.0)


@defjvp(np.angle)
def angle_jvp(ans, z, deg=False, z_dot=None):
    return np.imag(z_dot / z) * (180.0 / np.pi if deg else 1.0)


# primitive -> (vjp, jvp) for a complex operand
COMPLEX_RULES = {np.abs: (abs_vjp, abs_jvp), abs: (abs_vjp, abs_jvp),
                 np.real: (real_vjp, real_jvp), np.imag: (imag_vjp, imag_jvp)}

# functions whose real rules are right for complex values in the convention above
COMPLEX_SAFE = frozenset({
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pos,
    operator.pow, operator.matmul, operator.getitem, runtime.element, runtime.private,
    runtime.save, tuple_of, list_of, dict_of,
    # the reverse sweep's own, which a second derivative differentiates
    runtime.accum, runtime.alias, runtime.setitem, runtime.add_at, runtime.written,
    runtime.entry_cotangents,
    runtime.unbroadcast, runtime.sum_to, runtime.expand_to, iadd, iadd_at, split_like,
    join_like, unstack_like, unarray, untile, unrepeat_array, einsum_expand, unsum,
    np.add, np.subtract, np.multiply, np.divide, np.negative, np.positive, np.power,
    np.exp, np.log, np.sin, np.cos, np.tan, np.sinh, np.cosh, np.tanh, np.sqrt, np.square,
    np.reciprocal, np.conj, np.conjugate, np.real, np.imag, np.abs, abs, np.angle,
    np.sum, np.mean, np.dot, np.matmul, np.outer, np.einsum, np.tensordot, np.trace,
    np.cumsum, np.reshape, np.ravel, np.transpose, np.swapaxes, np.moveaxis,
    np.expand_dims, np.squeeze, np.broadcast_to, np.concatenate, np.stack, np.hstack,
    np.vstack, np.flip, np.roll, np.where, np.array, np.asarray, np.copy,
    np.fft.fft, np.fft.ifft, np.fft.fft2, np.fft.ifft2, np.fft.fftn, np.fft.ifftn,
    np.fft.rfft, np.fft.irfft, np.fft.rfft2, np.fft.irfft2, np.fft.rfftn, np.fft.irfftn,
    np.fft.fftshift, np.fft.ifftshift, cut_or_pad, real_like,
})


# functions whose result is complex for a real argument: without a call observed
# (generic code), their results are known complex by this alone
COMPLEX_MAKERS = frozenset({np.fft.fft, np.fft.ifft, np.fft.fft2, np.fft.ifft2, np.fft.fftn,
                            np.fft.ifftn, np.fft.rfft, np.fft.rfft2, np.fft.rfftn})


def meets_complex(op, facts, results: bool = True) -> bool:
    """Whether a complex value goes into `op` (or, with `results`, comes out of it), as
    the observed kinds say: its rule is then this module's, if it has one here. In a
    function where complex values were seen, an operand of np.abs, np.real or np.imag
    (or any operand of an op that meets one) whose kind no run observed is refused:
    the rule cannot be chosen."""
    values = list(op.operands) + ([op.result] if results else [])
    kinds = [facts.kind(o) for o in values]
    if any(k is not None and (k.type == "complex" or k.dtype == "c") for k in kinds) or \
            op.prim.fn is np.angle:
        return True
    if getattr(facts, "complex_seen", None) and op.prim.fn in COMPLEX_RULES and any(
            k is None for o, k in zip(values, kinds) if hasattr(o, "id")):
        raise NonDifferentiableError(
            f"`{op.prim.name}` of a value whose kind (real or complex) no run observed, in a "
            f"function with complex values", op.loc,
            "make the value complex on every path (x + 0j), or call with arguments that "
            "reach this line")
    return False
