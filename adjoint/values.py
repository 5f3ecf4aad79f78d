"""Values between the user and the generated code: a gradient comes back in its
argument's kind (a float for a float, an array of the argument's shape and dtype,
a list or tuple of the same type), and a tangent goes in in its argument's kind."""
from __future__ import annotations

import numpy as np

from adjoint.errors import AdjointError, NonDifferentiableError
from adjoint.runtime import rebuilt


def tangent_like(t, x, name: str):
    """A tangent in its argument's kind: a float for a float, an array of x's shape, and
    a list, tuple or dict of x's length or keys, entry by entry (the generated code reads
    it as it reads x: a stacked array for a list of arrays of two shapes cannot be)."""
    if isinstance(x, np.ndarray):
        if isinstance(t, np.ndarray) and type(t) not in (np.ndarray, np.memmap):
            # np.asarray would drop a MaskedArray's mask, np.matrix's product rules
            raise TypeError(f"the tangent of `{name}` is a {type(t).__name__}: pass a plain "
                            f"array (np.asarray(t), or t.filled(0.0) for a masked one)")
        t = np.asarray(t, dtype=np.result_type(x.dtype, np.float64))
        if t.shape != x.shape:
            raise ValueError(f"the tangent of `{name}` has shape {t.shape}, but `{name}` "
                             f"has shape {x.shape}")
        return t
    if isinstance(x, (float, np.floating)):
        if np.size(t) != 1:
            raise ValueError(f"the tangent of `{name}`, a float, has shape {np.shape(t)}")
        return float(np.asarray(t).reshape(()))
    if isinstance(x, (list, tuple)):
        if isinstance(t, (dict, str)) or not hasattr(t, "__len__") or \
                getattr(t, "ndim", 1) == 0 or len(t) != len(x):
            raise ValueError(f"the tangent of `{name}` must have its {len(x)} entries")
        items = [tangent_like(ti, xi, f"{name}[{k}]") for k, (ti, xi) in enumerate(zip(t, x))]
        return rebuilt(x, items) if hasattr(x, "_fields") else type(x)(items)
    if hasattr(type(x), "__dataclass_fields__") and not isinstance(x, type):
        if type(t) is not type(x):  # the same class, a tangent per field
            raise ValueError(f"the tangent of `{name}` must be a {type(x).__name__}")
        return rebuilt(x, {f: tangent_like(getattr(t, f), getattr(x, f), f"{name}.{f}")
                           for f in type(x).__dataclass_fields__})
    if isinstance(x, dict):
        if not isinstance(t, dict) or set(t) != set(x):
            raise ValueError(f"the tangent of `{name}` must be a dict with its keys "
                             f"{sorted(x, key=repr)}")
        return {k: tangent_like(t[k], v, f"{name}[{k!r}]") for k, v in x.items()}
    if isinstance(x, (int, np.integer, np.bool_)):  # an int in a container: a constant,
        return 0.0  # whatever tangent is given for it (as its gradient is 0)
    return t


def _misshapen(got, want) -> AdjointError:
    return AdjointError(
        f"a gradient of shape {got} came back for an argument of shape {want}: a derivative "
        f"rule returned a cotangent of the wrong shape", None,
        "a @defvjp rule must sum a broadcast cotangent back to its input's shape "
        "(adjoint.runtime.unbroadcast(g * x, b)); if no rule of yours is involved, please "
        "report it")


def turned_complex(loc=None) -> NonDifferentiableError:
    """The refusal of a derivative that is complex for real arguments on a later call of
    code compiled where f's values were real (a first call at the arguments refuses)."""
    return NonDifferentiableError(
        "grad needs a real output; on this call a value of f is complex, where it was real "
        "on the call the gradient was compiled for (a Python float power of a negative "
        "number, as (-2.0) ** p, is complex unless p is whole)", loc,
        "keep the base of a power positive, or return a real value of it: np.abs(z), "
        "np.real(z)")


def like(g, x):
    """The gradient in its argument's kind: a float for a float, a NumPy scalar of its
    type for a NumPy scalar, an array of x's shape and dtype (writeable), a list or tuple
    of the same type."""
    if type(g) is type(x) and (type(g) is float or type(g) is np.ndarray and
                               g.dtype == x.dtype and g.shape == x.shape and
                               g.flags.writeable):
        return g  # already so (the usual case): checked first, it costs a call in a loop
    if _lazy(g) and not isinstance(x, (list, tuple, dict)):
        return lazy_like(g, x)
    if _lazy(x) and not isinstance(g, (list, tuple, dict)):
        # no lazy value reached it (a zero, a constant): a dask array all the same, of
        # x's chunks, as the gradient of a dask argument is
        g = np.asarray(g)
        if g.size == int(np.prod(x.shape)):
            g = g.reshape(x.shape)
        return lazy_like(np.zeros_like(x, dtype=np.result_type(x.dtype, np.float64)) + g, x)
    if isinstance(x, (int, np.integer, np.bool_)) or \
            isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        # an int in a container (a count, an exponent): never differentiated, as an int
        # argument is refused; a rule's derivative in it (x ** k's) is of its float
        # extension, no gradient of the int
        return 0.0 if np.ndim(x) == 0 else np.zeros(np.shape(x))
    if (isinstance(g, (complex, np.complexfloating)) or isinstance(g, np.ndarray) and
            g.dtype.kind == "c") and (isinstance(x, (float, np.floating)) or isinstance(
                x, np.ndarray) and x.dtype.kind != "c") and (
                    np.ndim(g) == 0 or np.any(np.imag(g) != 0)):
        # a real argument's gradient is real by construction (rules/complex.py) where f's
        # values are real as they were when it was compiled: a complex one means a value
        # turned complex on this call (a Python float power (-2.0) ** p, p not whole),
        # which a first call at these arguments refuses too. Never drop its imaginary part
        raise turned_complex()
    if isinstance(x, (float, np.floating)) and np.size(g) != 1:
        raise _misshapen(np.shape(g), ())
    if isinstance(x, np.floating):  # np.float32 in, np.float32 out
        return type(x)(np.asarray(g).reshape(()))
    if isinstance(x, float):
        return float(np.asarray(g).reshape(()))
    if isinstance(x, np.ndarray):
        g = np.asarray(g, dtype=np.result_type(x.dtype, np.float64) if x.dtype.kind == "c"
                       else np.float64 if x.dtype.kind != "f" else x.dtype)
        if g.shape != x.shape:
            if g.size != x.size:
                raise _misshapen(g.shape, x.shape)
            g = g.reshape(x.shape)
        # a sum's cotangent may be np.broadcast_to(out_bar, shape), a read-only view: the
        # caller's own array, which `g *= 0.5` (clipping) may write, is a copy of it
        return g if g.flags.writeable else g.copy()
    if isinstance(x, (list, tuple)) and (isinstance(g, (list, tuple)) or np.ndim(g)) \
            and len(g) == len(x):
        items = [like(gi, xi) for gi, xi in zip(g, x)]  # a stacked cotangent unstacks
        return rebuilt(x, items) if hasattr(x, "_fields") else type(x)(items)
    if isinstance(x, dict) and isinstance(g, dict) and set(g) >= set(x):
        # a key f wrote into its dict argument (p['c'] = ...) was not an input: its
        # entry in the cotangent (the zero the write left) is no gradient of x's
        return {k: like(g[k], v) for k, v in x.items()}
    if hasattr(x, "_fields") and isinstance(g, dict) and set(g) == set(x._fields):
        return rebuilt(x, [like(g[f], v) for f, v in zip(x._fields, x)])  # by field
    if hasattr(type(x), "__dataclass_fields__") and isinstance(g, dict) and \
            set(g) == set(type(x).__dataclass_fields__):
        return rebuilt(x, {f: like(g[f], getattr(x, f)) for f in g})  # a gradient per field
    return g


def _lazy(g) -> bool:
    """A dask array (or another array NumPy dispatches to): never converted here, since
    np.asarray or float() would compute it."""
    return hasattr(g, "__array_function__") and not isinstance(g, (np.ndarray, np.generic))


def lazy_like(g, x):
    """A lazy gradient stays lazy: a float's is a 0-d lazy array (its .compute() is the
    number), an array's has the argument's shape and float dtype, reshaped or cast
    lazily. Nothing here computes it."""
    shape = () if isinstance(x, (float, np.floating)) else tuple(np.shape(x))
    if tuple(g.shape) != tuple(shape):
        if int(np.prod(g.shape)) != int(np.prod(shape)):
            raise AdjointError(f"internal error: gradient of shape {g.shape} for an argument "
                               f"of shape {shape}; please report this")
        g = g.reshape(shape)
    dtype = getattr(x, "dtype", None)
    want = np.dtype(np.float64) if dtype is None or np.dtype(dtype).kind not in "fc" \
        else np.dtype(dtype)
    return g if g.dtype == want else g.astype(want)
