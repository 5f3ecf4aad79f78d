"""`numpy.fft`: the discrete Fourier transforms and their shifts.

Covered: `fft`, `ifft`, `fft2`, `ifft2`, `fftn`, `ifftn`, `rfft`, `irfft`, `rfft2`,
`irfft2`, `rfftn`, `irfftn` with `n`/`s`, `axis`/`axes` and every `norm`
("backward", "ortho", "forward", None), and `fftshift`, `ifftshift` with `axes`.
Each transform is linear, so its JVP is the transform of the tangent.

Complex cotangents follow JAX's convention: the cotangent `ct` of a complex value
`z` on the way to a real loss L is dL/dRe(z) - i dL/dIm(z), so that
dL = Re(sum(ct * dz)). The transpose of a complex-linear map is then its plain
transpose, with no conjugate; that of the DFT matrix, which is symmetric, is the
same transform with the same `norm`. Where the input is real, its cotangent is
the real part (`real_like`): a real input moves along the real axis only.

- `fft`, `ifft`, `fftn`, ...: the transform of the cotangent, cut or padded back to
  the input's length where `n`/`s` padded or cut it (`cut_or_pad`).
- `rfft`, `rfftn`, `rfft2`: the half spectrum's cotangent padded with zeros to the
  full length, transformed with the complex transform, real part.
- `irfft`, `irfftn`, `irfft2`: the inverse transform of the (real) cotangent over
  the half spectrum, doubled where an entry stands for itself and its mirror
  image (`irfft_weights`); the imaginary parts of entry 0 and, for an even
  length, entry n/2, which the inverse ignores, get a zero cotangent.
- Repeated `axes` (`np.fft.fftn(x, axes=(0, 0))`) are refused when the gradient
  runs, at the line of the call.

Generated code that runs on other array namespaces has no `fft` to call: the
array-API form refuses these at their line.
"""
from __future__ import annotations

import numpy as np

from adjoint.rules.located import unsupported
from adjoint.rules.registry import deflinear, defnondiff, primitive

for _name in ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
              "irfft2", "rfftn", "irfftn", "fftshift", "ifftshift"]:
    primitive(getattr(np.fft, _name), "np.fft." + _name)


# ------------------------------------------------------------------ helpers

def fft_axes(ndim, s, axes):
    """The axes an n-d transform runs along, as NumPy picks them: `axes` (made
    non-negative), else the last len(s), else all of them."""
    if axes is None:
        return tuple(range(ndim - (ndim if s is None else len(s)), ndim))
    return tuple(int(k) % ndim for k in axes)


def fft_shape(shape, s, axes):
    """`shape` with the transform lengths `s` along `axes` (an int each for the 1-d
    transforms' n and axis): the input's shape once NumPy has cut or padded it."""
    if s is None:
        return tuple(shape)
    if np.ndim(s) == 0:
        s, axes = (s,), (axes,)
    out = list(shape)
    for length, k in zip(s, axes):
        out[k] = length
    return tuple(out)


def repeated_axes(axes):
    """Whether an axis is named twice (fftn then transforms along it twice)."""
    return len(set(axes)) != len(axes)


def irfft_weights(shape, axis):
    """Along `axis` of an inverse real transform's output shape (length n): 1 at entry
    0 and, for an even n, at n/2 (each stands for itself), 2 at the entries in between
    (each stands for itself and its mirror image n - k), 0 past n // 2, which the half
    spectrum has no entry for; shaped to broadcast against the output."""
    if np.ndim(axis) != 0:
        axis = axis[-1]  # the n-d inverses take the real transform along the last axis
    n = shape[axis]
    k = np.arange(n)
    w = np.where(k == 0, 1.0, np.where(2 * k == n, 1.0, np.where(2 * k < n, 2.0, 0.0)))
    return np.reshape(w, [n if j == axis % len(shape) else 1 for j in range(len(shape))])


for _helper in (fft_axes, fft_shape, repeated_axes, irfft_weights):
    primitive(_helper, _helper.__name__, nondiff=True)
    defnondiff(_helper)


def cut_or_pad(x, shape):
    """`x` cut, or padded with zeros at the end, along each axis to `shape` (what NumPy
    does to a transform's input for `n=` and `s=`): a new array."""
    x = np.asarray(x)
    cut = x[tuple(slice(0, k) for k in shape)]
    return np.pad(cut, [(0, k - m) for k, m in zip(shape, np.shape(cut))])


primitive(cut_or_pad, "cut_or_pad")


@deflinear(cut_or_pad)
def cut_or_pad_vjp(g, ans, x, shape):
    # cutting and padding with zeros are each other's transposes
    return cut_or_pad(g, np.shape(x))


def real_like(z, a):
    """`z`, or its real part where `a` is real: the cotangent of a transform's real input,
    which moves along the real axis only (see the module's docstring). A new array (the
    registry's VIEWS does not list it)."""
    return np.array(z if np.iscomplexobj(a) else np.real(z))


primitive(real_like, "real_like")


@deflinear(real_like, "z")
def real_like_vjp(g, ans, z, a):
    # Re(z) is dL = g Re(dz) = Re(g dz): its cotangent is g itself, in the convention above
    return g


def _distinct(axes, name):
    """`axes`, refused where one is named twice."""
    if repeated_axes(axes):
        return unsupported(f"{name} with an axis repeated in axes= has no derivative rule",
                           "transform along each axis once, or call the transform twice")
    return axes


# (the templates pass their operands' shapes to these: they are folded to constants in a
# template's own body, with the shapes the gradient is specialised on)

def _fitted(y, a, shape, resize):
    """The transformed cotangent `y` as that of `a`: cut or padded back to a's `shape`
    where `n=` or `s=` (`resize`) padded or cut `a`, real where `a` is."""
    if resize is None:
        return real_like(y, a)
    return real_like(cut_or_pad(y, shape), a)


def _rfftn_transpose(g, shape, s, along, norm):
    y = np.fft.fftn(cut_or_pad(g, fft_shape(shape, s, along)), None, along, norm)
    if s is None:
        return np.real(y)
    return np.real(cut_or_pad(y, shape))


def _irfftn_transpose(g, a, shape, out_shape, along, norm):
    half = np.fft.ifftn(g, None, along, norm) * irfft_weights(out_shape, along)
    return real_like(cut_or_pad(half, shape), a)


# ------------------------------------------------------------------ complex transforms
# the DFT matrix is symmetric: its transpose is itself

@deflinear(np.fft.fft)
def fft_vjp(g, ans, a, n=None, axis=-1, norm=None, out=None):
    return _fitted(np.fft.fft(g, None, axis, norm), a, np.shape(a), n)


@deflinear(np.fft.ifft)
def ifft_vjp(g, ans, a, n=None, axis=-1, norm=None, out=None):
    return _fitted(np.fft.ifft(g, None, axis, norm), a, np.shape(a), n)


@deflinear(np.fft.fftn)
def fftn_vjp(g, ans, a, s=None, axes=None, norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.fftn")
    return _fitted(np.fft.fftn(g, None, along, norm), a, np.shape(a), s)


@deflinear(np.fft.ifftn)
def ifftn_vjp(g, ans, a, s=None, axes=None, norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.ifftn")
    return _fitted(np.fft.ifftn(g, None, along, norm), a, np.shape(a), s)


@deflinear(np.fft.fft2)
def fft2_vjp(g, ans, a, s=None, axes=(-2, -1), norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.fft2")
    return _fitted(np.fft.fftn(g, None, along, norm), a, np.shape(a), s)


@deflinear(np.fft.ifft2)
def ifft2_vjp(g, ans, a, s=None, axes=(-2, -1), norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.ifft2")
    return _fitted(np.fft.ifftn(g, None, along, norm), a, np.shape(a), s)


# ------------------------------------------------------------------ real transforms
# rfft keeps the first n // 2 + 1 entries of the complex transform of a real input:
# its transpose pads the cotangent with zeros back to n, transforms, takes the real part

@deflinear(np.fft.rfft)
def rfft_vjp(g, ans, a, n=None, axis=-1, norm=None, out=None):
    y = np.fft.fft(cut_or_pad(g, fft_shape(np.shape(a), n, axis)), None, axis, norm)
    if n is None:
        return np.real(y)
    return np.real(cut_or_pad(y, np.shape(a)))


@deflinear(np.fft.rfftn)
def rfftn_vjp(g, ans, a, s=None, axes=None, norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.rfftn")
    return _rfftn_transpose(g, np.shape(a), s, along, norm)


@deflinear(np.fft.rfft2)
def rfft2_vjp(g, ans, a, s=None, axes=(-2, -1), norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.rfft2")
    return _rfftn_transpose(g, np.shape(a), s, along, norm)


# irfft reads the half spectrum as a Hermitian one: out = Re(sum_k w_k a_k e^{+2 pi i jk/n})
# (scaled by norm), real-linear in a; its transpose is w_k times the inverse transform of
# the real cotangent, with the same norm

@deflinear(np.fft.irfft)
def irfft_vjp(g, ans, a, n=None, axis=-1, norm=None, out=None):
    half = np.fft.ifft(g, None, axis, norm) * irfft_weights(np.shape(ans), axis)
    return real_like(cut_or_pad(half, np.shape(a)), a)


@deflinear(np.fft.irfftn)
def irfftn_vjp(g, ans, a, s=None, axes=None, norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.irfftn")
    return _irfftn_transpose(g, a, np.shape(a), np.shape(ans), along, norm)


@deflinear(np.fft.irfft2)
def irfft2_vjp(g, ans, a, s=None, axes=(-2, -1), norm=None, out=None):
    along = _distinct(fft_axes(np.ndim(a), s, axes), "np.fft.irfft2")
    return _irfftn_transpose(g, a, np.shape(a), np.shape(ans), along, norm)


# ------------------------------------------------------------------ shifts
# a roll by half the length along each axis: the transpose rolls back

@deflinear(np.fft.fftshift)
def fftshift_vjp(g, ans, x, axes=None):
    return np.fft.ifftshift(g, axes)


@deflinear(np.fft.ifftshift)
def ifftshift_vjp(g, ans, x, axes=None):
    return np.fft.fftshift(g, axes)

