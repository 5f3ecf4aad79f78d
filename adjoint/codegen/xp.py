"""The array API names of NumPy's functions: the table the emitter reads in array-API mode.

The generated gradient is the same IR printed twice over: as NumPy (`np.exp(x)`) for
the teaching source, or against the namespace of its arguments (`xp.exp(x)`, with
`xp = array_namespace(...)` from array-api-compat) for array_api_strict, torch, JAX,
CuPy. Only the spelling of calls changes, so the two forms cannot drift apart.

A NumPy function with no standard equivalent that this table knows is refused at
its line: a guess at a translation could compute something else.
"""
from __future__ import annotations

import math

from adjoint.runtime import CotangentDict, Cotangents, FieldCotangents

# functions whose standard name and positional arguments are NumPy's
_SAME = """abs exp expm1 log log1p log2 log10 logaddexp sqrt square sin cos tan sinh cosh
    tanh sign floor ceil trunc round negative positive add subtract multiply divide
    maximum minimum hypot copysign isnan isinf isfinite where matmul equal not_equal less
    greater less_equal greater_equal logical_and logical_or logical_not floor_divide
    remainder conj real imag zeros_like ones_like empty_like full_like zeros ones full
    empty eye arange linspace broadcast_to stack clip""".split()

_RENAMED = {"concatenate": "concat", "power": "pow", "arcsin": "asin", "arccos": "acos",
            "arctan": "atan", "arctan2": "atan2", "arcsinh": "asinh", "arccosh": "acosh",
            "arctanh": "atanh", "true_divide": "divide", "mod": "remainder",
            "absolute": "abs", "conjugate": "conj", "amax": "max", "amin": "min"}

# reductions: keyword-only axis and keepdims in the standard (NumPy's out=, where=,
# initial=, ddof= have no standard spelling: refused when given)
REDUCTIONS = _REDUCTIONS = {"sum": "sum", "prod": "prod", "mean": "mean", "max": "max", "min": "min",
               "amax": "max", "amin": "min", "std": "std", "var": "var",
               "argmax": "argmax", "argmin": "argmin", "all": "all", "any": "any"}

# positional arguments the standard takes by keyword only: (function, position) -> name
_KEYWORD_ONLY = {"expand_dims": (None, "axis"), "sort": (None, "axis"),
                 "flip": (None, "axis"), "cumsum": (None, "axis"), "roll": (None, None, "axis")}
_RENAMED.update({"expand_dims": "expand_dims", "sort": "sort", "flip": "flip",
                 "cumsum": "cumulative_sum", "roll": "roll", "reshape": "reshape",
                 "squeeze": "squeeze"})

_LINALG = {"linalg.inv": "linalg.inv", "linalg.det": "linalg.det",
           "linalg.cholesky": "linalg.cholesky"}

# kwargs NumPy and the standard share, per function (others are refused)
_KWARGS = {"sum": {"axis", "keepdims", "dtype"}, "prod": {"axis", "keepdims", "dtype"},
           "mean": {"axis", "keepdims"}, "max": {"axis", "keepdims"},
           "min": {"axis", "keepdims"}, "std": {"axis", "keepdims", "correction"},
           "var": {"axis", "keepdims", "correction"}, "argmax": {"axis", "keepdims"},
           "argmin": {"axis", "keepdims"}, "all": {"axis", "keepdims"},
           "any": {"axis", "keepdims"}, "concat": {"axis"}, "stack": {"axis"},
           "expand_dims": {"axis"}, "sort": {"axis"}, "flip": {"axis"},
           "cumulative_sum": {"axis"}, "roll": {"axis"}, "squeeze": {"axis"},
           "zeros_like": {"dtype"}, "ones_like": {"dtype"}, "full_like": {"dtype"},
           "empty_like": {"dtype"}, "zeros": {"dtype"}, "ones": {"dtype"},
           "full": {"dtype"}, "empty": {"dtype"}, "eye": {"dtype", "k"},
           "arange": {"dtype"}, "linspace": {"dtype", "endpoint"}, "clip": set(),
           "round": set(), "reshape": {"shape"}}

# functions whose positional arguments are not all arrays: how many lead ones are
_LEADING_ARRAYS = {"broadcast_to": 1, "reshape": 1, "expand_dims": 1, "squeeze": 1,
                   "sort": 1, "flip": 1, "cumulative_sum": 1, "roll": 1, "clip": 1,
                   "full_like": 1, "zeros_like": 1, "ones_like": 1, "empty_like": 1,
                   "zeros": 0, "ones": 0, "full": 0, "empty": 0, "eye": 0, "arange": 0,
                   "linspace": 0, "concat": 0, "stack": 0, "round": 1}
_LEADING_ARRAYS.update({r: 1 for r in _REDUCTIONS.values()})

# NumPy names a generated file may read as values (np.pi, a dtype)
CONSTANTS = {"np.pi": "xp.pi", "np.e": "xp.e", "np.inf": "xp.inf", "np.nan": "xp.nan",
             "np.newaxis": "None", "np.float64": "xp.float64", "np.float32": "xp.float32",
             "np.int64": "xp.int64", "np.int32": "xp.int32", "np.bool_": "xp.bool",
             "np.complex128": "xp.complex128", "np.complex64": "xp.complex64"}

# adjoint.runtime helpers that touch no NumPy function on an array (plain Python on
# lists, dicts and `+`): the rest compute with NumPy, and are refused
HELPERS = {"element", "alias", "index_tuple", "snapshots_new", "snap_store", "snap_load",
           "snap_free", "append", "checkpoint_plan", "plan_stores", "plan_actions",
           "stop_gradient", "tie_weights"}


def standard_name(name: str) -> str | None:
    """`np.exp` -> `exp`, `np.concatenate` -> `concat`: the standard's function for a
    NumPy one that takes the same arguments (up to keywords), or None."""
    if not name.startswith("np."):
        return None
    short = name[3:]
    if short in _LINALG:
        return _LINALG[short]
    if short in _REDUCTIONS:
        return _REDUCTIONS[short]
    if short in _RENAMED:
        return _RENAMED[short]
    return short if short in _SAME else None


def call_text(name: str, args: list[str], kwargs: list[tuple[str, str]], scalar: list[bool],
              ndims: list[int | None], floats: list[bool] | None = None) -> str | None:
    """The standard call for NumPy's `name` applied to printed `args` and `kwargs`, or
    None when there is none. `scalar[i]`: argument i is a Python number (wrapped in
    xp.asarray where the standard wants an array); `ndims[i]`: its number of dimensions
    if known (np.transpose's axes are written out)."""
    short = name[3:] if name.startswith("np.") else name
    if short == "transpose":
        if len(args) == 2:
            return f"xp.permute_dims({args[0]}, {args[1]})"
        if len(args) != 1 or kwargs:
            return None
        n = ndims[0]
        if n is None:  # not observed (a value popped off a tape): its axes, reversed
            if not args[0].isidentifier():
                return None
            return f"xp.permute_dims({args[0]}, tuple(range({args[0]}.ndim - 1, -1, -1)))"
        if n < 2:
            return args[0]
        if n == 2:
            return f"xp.matrix_transpose({args[0]})"
        return f"xp.permute_dims({args[0]}, {tuple(range(n - 1, -1, -1))!r})"
    if short == "swapaxes":
        n = ndims[0]
        try:
            i, j = int(args[1]), int(args[2])
        except (ValueError, IndexError):
            return None
        if n is None or kwargs:
            return None
        order = list(range(n))
        order[i], order[j] = order[j], order[i]
        return f"xp.permute_dims({args[0]}, {tuple(order)!r})"
    if short == "outer" and len(args) == 2 and not kwargs:  # np.outer flattens both
        return f"xp.reshape({args[0]}, (-1, 1)) * xp.reshape({args[1]}, (1, -1))"
    if short == "dot" and len(args) == 2 and not kwargs and all(
            n in (1, 2) for n in ndims[:2]):
        return f"{args[0]} @ {args[1]}"  # np.dot is matmul for vectors and matrices
    if short == "dot" and len(args) == 2 and not kwargs:  # not observed: told at run time
        return f"xp_dot(xp, {args[0]}, {args[1]})"
    if short in ("array", "asarray", "copy") and len(args) == 1:
        copy = ", copy=True" if short in ("array", "copy") else ""
        if kwargs:
            return None
        if scalar[0] and short != "copy":  # a list (a tape of arrays, or of numbers)
            return f"xp_stack(xp, {args[0]})"
        return f"xp.asarray({args[0]}{copy})"
    if short == "ravel" and len(args) == 1 and not kwargs:
        return f"xp.reshape({args[0]}, (-1,))"
    if short == "ndim" and len(args) == 1:
        return f"xp.asarray({args[0]}).ndim"
    if short == "shape" and len(args) == 1:
        return f"tuple(xp.asarray({args[0]}).shape)"
    if short == "size" and len(args) == 1:
        return f"math.prod(xp.asarray({args[0]}).shape)"
    std = standard_name(name)
    if std is None:
        return None
    if std in ("std", "var"):  # NumPy's ddof is the standard's correction
        kwargs = [("correction" if k == "ddof" else k, v) for k, v in kwargs]
    allowed = _KWARGS.get(std, set())
    if any(k not in allowed for k, _ in kwargs):
        return None
    if std == "cumulative_sum" and not kwargs and len(args) == 1 and ndims[0] != 1:
        return None  # np.cumsum flattens an n-d array first
    if std == "round" and len(args) > 1:
        return None  # no decimals in the standard
    if std == "squeeze" and len(args) == 1 and not kwargs:
        return None  # the standard needs the axes
    lead = _LEADING_ARRAYS.get(std, len(args))
    # a binary function (and where) takes a Python number beside an array since the
    # 2024.12 standard, and keeps the array's dtype (float32 stays float32)
    beside = lead >= 2 and not all(scalar[:lead])
    # a float number made an array takes the arguments' float dtype (xp_float): float32
    # data keeps a float32 gradient
    floats = floats or [False] * len(args)
    printed = [(f"xp.asarray({a}, dtype=xp_float)" if floats[i] else f"xp.asarray({a})")
               if i < lead and scalar[i] and not beside else a for i, a in enumerate(args)]
    keyword_only = _KEYWORD_ONLY.get(short, ())
    if std in _REDUCTIONS.values():
        keyword_only = (None, "axis")
    out = []
    for i, a in enumerate(printed):
        key = keyword_only[i] if i < len(keyword_only) else None
        if key is None and len(out) > i - 1 >= 0 and i - 1 < len(keyword_only) and \
                keyword_only[i - 1]:
            return None  # a positional argument past one the standard takes by keyword
        out.append(f"{key}={a}" if key else a)
    out += [f"{k}={v}" for k, v in kwargs]
    return f"xp.{std}({', '.join(out)})"


def xp_dot(xp, a, b):
    """np.dot(a, b) where the numbers of dimensions were not observed: matmul for
    vectors and matrices, a product for a number; other ranks are refused (np.dot
    sums over a's last and b's second-to-last axis, which matmul does not)."""
    na, nb = len(_shape(a)), len(_shape(b))
    if na == 0 or nb == 0:
        return a * b
    if na <= 2 and nb <= 2:
        return xp.matmul(a, b)
    raise TypeError(f"np.dot of {na}-d and {nb}-d arrays has no array-API form here; "
                    "use xp.matmul or xp.tensordot in the function")


def xp_stack(xp, xs):
    """np.array(xs) in a namespace: a list of arrays is stacked (the standard's asarray
    takes no nested arrays); numbers or nested lists of numbers are made an array."""
    if isinstance(xs, (list, tuple)) and any(hasattr(e, "__array_namespace__") or
                                             isinstance(e, (list, tuple)) for e in xs):
        return xp.stack([xp_stack(xp, e) for e in xs])
    return xp.asarray(xs)


# ------------------------------------------------------------------ helpers
# The array-API forms of adjoint.runtime's (and the rules') helpers that specialised
# code calls: the same contract as the NumPy ones, written with the standard only. The
# generated module imports them from here under the same names.


def _is_array(x) -> bool:
    from array_api_compat import is_array_api_obj
    return is_array_api_obj(x)


def _shape(x) -> tuple:
    if _is_array(x):
        return tuple(x.shape)
    if isinstance(x, (bool, int, float, complex)):
        return ()
    raise TypeError(f"no array-API shape for a {type(x).__name__}")


def sum_to(g, shape):
    """`g` summed down to `shape`: the reverse of broadcasting (runtime.sum_to)."""
    shape = tuple(shape)
    if not _is_array(g) or tuple(g.shape) == shape:
        return g
    from array_api_compat import array_namespace
    xp = array_namespace(g)
    gshape = tuple(g.shape)
    lead = len(gshape) - len(shape)
    if lead < 0:  # the target has leading 1s that a write dropped (`H[t] = h`, h (1, d))
        gshape = (1,) * -lead + gshape
        g, lead = xp.reshape(g, gshape), 0
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and gshape[i + lead] != 1)
    total = xp.sum(g, axis=axes, keepdims=True) if axes else g
    return xp.reshape(total, shape)


def unbroadcast(g, x):
    """`g` summed down to the shape of `x` (runtime.unbroadcast)."""
    return sum_to(g, _shape(x))


def expand_to(g, x, axis=None, keepdims=False):
    """The cotangent of a reduction of `x` broadcast back to `x`'s shape."""
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    g = xp.asarray(g)
    if axis is not None and not keepdims:
        n = len(x.shape)
        for a in sorted(a % n for a in (axis if isinstance(axis, tuple) else (axis,))):
            g = xp.expand_dims(g, axis=a)
    return xp.broadcast_to(g, tuple(x.shape))


def _every_axis(x, index):
    """The standard wants an index of ints and slices to name every axis: `B[i]` of a
    matrix is `B[i, ...]`."""
    parts = index if isinstance(index, tuple) else (index,)
    if not _is_array(x) or len(parts) >= len(x.shape) or not all(
            isinstance(p, (int, slice)) and not isinstance(p, bool) for p in parts):
        return index
    return parts + (Ellipsis,)


def save(x, index):
    """`x[index]` as an independent value: a slice of an array is copied, not viewed
    (runtime.save), so that a later write into `x` cannot change it."""
    if isinstance(x, dict) and index not in x:
        return None
    v = x[_every_axis(x, index)]
    if _is_array(v):
        from array_api_compat import array_namespace
        return array_namespace(v).asarray(v, copy=True)
    return v


def split_like(x, seq, axis=0):
    """`x` split along `axis` into pieces shaped like the elements of `seq`: the
    cotangent of xp.concat(seq, axis) (the rules' split_like)."""
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    if axis is None:
        x, axis = xp.reshape(x, (-1,)), 0
    axis %= len(x.shape)
    extent = x.shape[axis]
    other = math.prod(x.shape) // extent if extent else 0
    out, start = [], 0
    for s in seq:
        n = math.prod(_shape(s)) // other if other else 0
        where = (slice(None),) * axis + (slice(start, start + n),)
        out.append(xp.reshape(x[where], _shape(s)))
        start += n
    return out


def ones_at_zeros(x):
    """`x` with each exact zero replaced by one (runtime.ones_at_zeros: a rule divides by
    it where 0 / 0 would be 0)."""
    if not _is_array(x):
        return 1.0 if x == 0.0 else x
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    return xp.where(x == 0.0, xp.ones_like(x), x)


def zeros_like(x):
    """A zero of `x`'s shape and kind (runtime.zeros_like): 0.0 for a number, float zeros
    of the namespace for an array, a zero per entry for a container (a pure-Python one, so
    that no NumPy array meets the namespace's)."""
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return 0.0
    if x is None or isinstance(x, (str, bytes)):  # a setting: no gradient
        return None
    if isinstance(x, dict):
        return CotangentDict((k, zeros_like(v)) for k, v in x.items())
    if hasattr(x, "_fields"):  # a namedtuple
        return FieldCotangents(x._fields, [zeros_like(v) for v in x])
    if isinstance(x, (list, tuple)):
        zeros = [zeros_like(e) for e in x]
        arrays = [z for z in zeros if _is_array(z)]
        if any(isinstance(z, (dict, list)) for z in zeros) or \
                len({tuple(z.shape) for z in arrays} | ({()} if len(arrays) < len(zeros)
                                                        else set())) > 1:
            return Cotangents(zeros)  # ragged: one zero per element, as NumPy's
        if not arrays or arrays[0].shape:
            # NumPy's stacks them, and its code reads xs_bar[k], which the standard
            # leaves unspecified for an array of more than one axis: one zero per element
            # (of numbers, Python's: NumPy's array cannot meet the namespace's)
            return Cotangents(zeros)
        from array_api_compat import array_namespace
        xp = array_namespace(arrays[0])
        dtype = xp.result_type(*arrays)
        return xp.zeros((len(zeros),) + tuple(arrays[0].shape), dtype=dtype)
    if not _is_array(x):
        raise TypeError(f"no array-API zero for a {type(x).__name__}")
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    if xp.isdtype(x.dtype, ("real floating", "complex floating")):
        return xp.zeros(x.shape, dtype=x.dtype)
    # an int or bool array's cotangent: the namespace's default float (float32 in JAX
    # unless x64 is on), as NumPy's is float64
    info = getattr(xp, "__array_namespace_info__", None)
    dtype = info().default_dtypes()["real floating"] if info else xp.float64
    return xp.zeros(x.shape, dtype=dtype)


def _basic(part) -> bool:
    return part is None or part is Ellipsis or isinstance(part, slice) or (
        isinstance(part, int) and not isinstance(part, bool))


class at:
    """`x[index] = value` and `x[index] += value` as values, for namespaces whose arrays
    cannot be written (JAX): `x = at(x)[i, ...].set(v)` is JAX's x.at[i, ...].set(v), a
    new array, x left as it was. On an array that can be written, in place, as NumPy's
    code does. The index is basic (ints, slices, ..., None) or an array without repeated
    positions: JAX applies one of repeated updates, which one it does not say, where
    NumPy applies the last."""

    def __init__(self, x, index=None):
        self.x, self.index = x, index

    def __getitem__(self, index):
        return at(self.x, index)

    def _checked(self):
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        shape = tuple(self.x.shape)
        for axis, p in enumerate(q for q in parts if q is not None):
            if p is Ellipsis:
                break
            if isinstance(p, int) and not isinstance(p, bool) and axis < len(shape) and \
                    not -shape[axis] <= p < shape[axis]:
                # JAX drops an update out of bounds; NumPy raises
                raise IndexError(f"index {p} is out of bounds for axis {axis} with size "
                                 f"{shape[axis]}")
        if not all(_basic(p) for p in parts):
            from array_api_compat import array_namespace
            for p in parts:
                if _basic(p) or not _is_array(p):
                    continue
                xp = array_namespace(p)
                if xp.isdtype(p.dtype, "integral") and \
                        xp.unique_values(p).shape[0] != math.prod(p.shape):
                    raise ValueError("a write at repeated positions: NumPy keeps the last "
                                     "value written, and this namespace does not say which")
        return self.index

    def _fitted(self, value):
        """`value` without the leading 1s that NumPy's write drops (H[t] = h, h of
        shape (1, d)) and JAX's does not."""
        if not _is_array(value):
            return value
        slot = tuple(self.x[self.index].shape)
        extra = len(value.shape) - len(slot)
        if extra > 0 and all(n == 1 for n in value.shape[:extra]):
            from array_api_compat import array_namespace
            return array_namespace(value).reshape(value, tuple(value.shape[extra:]))
        return value

    def set(self, value):
        from array_api_compat import is_jax_array
        if not is_jax_array(self.x):  # a dict, a list, a writable array: in place
            self.x[self.index] = value
            return self.x
        return self.x.at[self._checked()].set(self._fitted(value))

    def add(self, value):
        from array_api_compat import is_jax_array
        if not is_jax_array(self.x):
            self.x[self.index] += value
            return self.x
        return self.x.at[self._checked()].add(self._fitted(value))


FORMS = {"sum_to": sum_to, "unbroadcast": unbroadcast, "expand_to": expand_to,
         "save": save, "split_like": split_like, "zeros_like": zeros_like,
         "ones_at_zeros": ones_at_zeros}
