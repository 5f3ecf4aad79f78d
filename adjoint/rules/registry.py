"""The primitive table: every callable adjoint knows, with its derivative rules.

A rule is a runnable template function written next to its primitive:

    @defvjp(np.exp)
    def exp(g, ans, x):
        return g * ans

    @defjvp(np.exp)
    def exp(ans, x, x_dot):
        return x_dot * ans

A VJP template takes the output's cotangent `g`, the output `ans`, then the
primal inputs (named and defaulted as the primitive names them); it returns one
cotangent per positional input, as a tuple (or a single expression for the
first input; inputs past the end of the tuple, and those given as None, are
not differentiable). A JVP template takes `ans`, the inputs, then a `<name>_dot`
tangent for each differentiable input, and returns the output's tangent.

Two common cases need only the VJP; the JVP is written from it:

    @deflinear(np.reshape)            # linear: the JVP is np.reshape(a_dot, shape, ...)
    def reshape_vjp(g, ans, a, shape, order="C"):
        return np.reshape(g, np.shape(a), order=order)

    @defunary(np.exp)                 # elementwise in one input: the JVP is the VJP
    def exp_vjp(g, ans, x):           # with g read as x_dot (the Jacobian is diagonal)
        return g * ans

and `@defbilinear(np.dot, "a", "b")` gives `np.dot(a_dot, b) + np.dot(a, b_dot)`.

The JVP written for them is ordinary source (registered with `linecache`, so
it is lowered, inlined and printed in docs/rules.md like a hand-written one).

Templates are lowered by the same front end as user code and inlined, so the
generated gradient reads like hand-written NumPy and can be differentiated again.
The set of supported primitives is one grep: `@defvjp(`.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import linecache
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable

import numpy as np

from adjoint.ir.core import Prim


@dataclass
class Entry:
    prim: Prim
    vjp: Callable | None = None
    jvp: Callable | None = None
    nondiff: bool = False  # piecewise constant or integer valued: zero derivative
    pure: bool = True  # no side effects: may be folded, moved or removed


_by_id: dict[int, Entry] = {}
_by_name: dict[str, Entry] = {}
_keepalive: list = []
# the methods of a library's objects declared with rules (scipy.stats.norm.logpdf), by
# (object, method): reading `norm.logpdf` makes a new bound method each time, whose id
# finds nothing
_by_method: dict[tuple[int, str], Entry] = {}


def _default_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def public_name(fn: Callable) -> str:
    """How generated code spells `fn` when no one chose a name: its qualified name, and
    for NumPy `np.` plus the public module it is reached through. That matters for
    methods bound to NumPy's module-level objects: np.random.rand is RandomState.rand
    bound to the global generator, and `RandomState` does not resolve."""
    name = _default_name(fn)
    module = getattr(fn, "__module__", None) or ""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, np.ufunc) and getattr(np, owner.__name__, None) is owner:
        return f"np.{owner.__name__}.{fn.__name__}"  # np.add.reduce, not ufunc.reduce
    if not module and owner is not None and not isinstance(owner, type(sys)):
        # a method bound to a module's hidden instance (random.random is Random.random
        # bound to random._inst): spelled as the module exposes it
        home, short = type(owner).__module__, getattr(fn, "__name__", "")
        if short and getattr(sys.modules.get(home), short, None) == fn:
            return f"{home}.{short}"
    if module != "numpy" and not module.startswith("numpy."):
        return name
    short = getattr(fn, "__name__", "")
    public = not any(part.startswith("_") for part in module.split("."))
    if public and short and getattr(sys.modules.get(module), short, None) == fn:
        return "np" + module[len("numpy"):] + "." + short
    return "np." + name


def primitive(fn: Callable, name: str, style: str = "call", symbol: str = "",
              precedence: int = 100, *, nondiff: bool = False, pure: bool = True) -> Prim:
    """Declare `fn` a primitive printed as `name` (see `Prim` for the styles). A name
    that is just fn's qualified name (an unknown callable met in user code) becomes
    its `public_name`, one that resolves in generated code."""
    if name == _default_name(fn):
        name = public_name(fn)
    prim = Prim(name, fn, style, symbol, precedence)
    entry = Entry(prim, nondiff=nondiff, pure=pure)
    _by_id[id(fn)] = entry
    _by_name[name] = entry
    if inspect.ismethod(fn) and name.startswith("scipy."):
        _by_method[(id(fn.__self__), fn.__func__.__name__)] = entry
    _keepalive.append(fn)
    return prim


# rule modules imported when a function of their library is first looked up: importing
# scipy.stats takes a second or more, scipy.linalg a fifth, which `import adjoint`
# should not cost everyone
_LAZY = {"scipy.stats": "adjoint.rules.scipy_stats",
         "scipy.linalg": "adjoint.rules.scipy_linalg"}


def _find(fn) -> Entry | None:
    e = _by_id.get(id(fn))
    if e is None and inspect.ismethod(fn):
        e = _by_method.get((id(fn.__self__), fn.__func__.__name__))
    return e


def load_lazy() -> None:
    """Import every rule module of `_LAZY` whose library is installed (for what lists all
    the rules: docs/generate.py, the registry's test)."""
    for library, rules in _LAZY.items():
        if importlib.util.find_spec(library.split(".")[0]) is not None:
            importlib.import_module(rules)


def lookup(fn) -> Entry | None:
    e = _find(fn)
    if e is None:
        module = getattr(fn, "__module__", None) or ""
        for library, rules in _LAZY.items():
            if (module == library or module.startswith(library + ".")) and \
                    rules not in sys.modules:
                importlib.import_module(rules)  # (it registers its rules)
                return _find(fn)
    return e


_raising: set[int] = set()  # ids of callables that raise on some inputs


def may_raise(*fns) -> None:
    """Declare that `fns` raise on some inputs (math.log(-1.0), a Cholesky factor of a
    matrix that is not positive definite, 1.0 / 0.0): a call stays in the forward sweep
    even when no one reads its value, so the gradient fails where f fails."""
    _raising.update(id(f) for f in fns)
    _keepalive.extend(fns)


# Facts about ops that the analyses, passes and transforms share, in one place.
# Print styles of the ops that write into their first operand in place:
WRITES = ("setitem", "append", "iadd_at", "add_at")
# Names of the ops whose result may share memory with their first operand (a view,
# the operand itself, or a list of views of it): a deny-list, so a missing entry is a
# wrong gradient; an extra one only costs a copy or a refusal. `x.conj()` of a real
# array is x itself (lowered to np.conj).
VIEWS = frozenset({
    "getitem", "field", "pos", "np.reshape", "np.ravel", "np.squeeze", "np.expand_dims",
    "np.transpose", "np.swapaxes", "np.moveaxis", "np.rollaxis", "np.matrix_transpose",
    "np.permute_dims", "np.broadcast_to", "np.broadcast_arrays", "np.asarray",
    "np.asanyarray", "np.ascontiguousarray", "np.asfortranarray", "np.atleast_1d",
    "np.atleast_2d", "np.atleast_3d", "np.real", "np.imag", "np.conj", "np.conjugate",
    "np.flip", "np.flipud", "np.fliplr", "np.rot90", "np.diagonal", "np.diag",
    "np.split", "np.array_split", "np.hsplit", "np.vsplit", "np.dsplit", "np.unstack",
    # return their argument itself, or a view of it, for some inputs (round 7, A1)
    "stop_gradient", "np.linalg.matrix_transpose", "np.real_if_close", "np.require",
    "np.asarray_chkfinite", "np.from_dlpack", "np.trim_zeros", "np.nan_to_num",
    "np.lib.stride_tricks.as_strided", "np.einsum",
    # a namedtuple like its first operand, holding the same arrays but one
    "replaced",
    # `x.T`, `x.real` before they are resolved on the kinds (ad/sequences.py): an
    # array's attribute, or a field (round 21's S1: a write through `B.T` was missed)
    "attribute"})
# The same, with the writes and the runtime helpers of generated code that may return
# their operand itself (a cotangent that needs no unbroadcasting is returned as it is)
MAY_VIEW = VIEWS | {"setitem", "append", "iadd_at", "add_at", "iadd", "unbroadcast", "sum_to",
                    "expand_to", "alias", "stop_gradient", "unarray", "split_like",
                    "unstack_like", "split_index", "entry_cotangents"}
def elementwise_ufunc(fn) -> bool:
    """A ufunc, each entry of its result from the same entries of its operands: not a
    generalised one (np.matmul, np.matvec: a signature over core dimensions)."""
    return isinstance(fn, np.ufunc) and fn.signature is None


def viewed(op):
    """The operand whose memory the result of a VIEWS op may share: the first, but
    einsum's first is its subscripts ('ij->ji' of one operand is a view of it; the
    result of two or more operands is new, None)."""
    if op.prim.name == "np.einsum":
        return op.args[1] if len(op.args) == 2 else None
    return op.args[0]


# Of those, the ones whose view NumPy makes read-only
READONLY = frozenset({"np.broadcast_to", "np.broadcast_arrays", "np.diagonal", "np.diag",
                      "np.imag"})  # (np.imag of a real array: read-only zeros)


def pure(op) -> bool:
    """Whether `op` has no side effect (a region op: whether none of its ops has)."""
    if not hasattr(op, "prim"):
        return all(pure(o) for b in op.blocks for o in b.ops)
    e = entry(op.prim)
    return e is not None and e.pure


def removable(op) -> bool:
    """Whether a call whose result no one reads may be dropped: pure, and not one that
    may raise (dropping it would return a number where f raises)."""
    e = entry(op.prim)
    return e is not None and e.pure and id(op.prim.fn) not in _raising \
        and not (getattr(op.prim.fn, "__module__", None) == "math")


def prim_of(fn) -> Prim:
    """The IR primitive of a registered callable (a KeyError names one that is not)."""
    e = _by_id.get(id(fn))
    if e is None:
        raise KeyError(fn)
    return e.prim


def entry(prim: Prim) -> Entry | None:
    e = _by_name.get(prim.name)
    return e if e is not None and e.prim is prim else _by_id.get(id(prim.fn))


def entries() -> list[Entry]:
    """Every registered primitive, in registration order."""
    return list(_by_name.values())


# how many times a rule was registered or changed: code found without lowering f (the
# index, adjoint/index.py) is checked against it, as lowered code is against its entries
generation = 0


def _ensure(fn: Callable) -> Entry:
    """`fn`'s entry, made if it has none, about to be given a rule."""
    global generation
    generation += 1
    e = lookup(fn)
    if e is None:
        primitive(fn, public_name(fn))
        e = lookup(fn)
    return e


def defvjp(fn: Callable):
    """Register the decorated template as the VJP of primitive `fn`."""
    def register(template: Callable) -> Callable:
        _ensure(fn).vjp = template
        return template
    return register


def defjvp(fn: Callable):
    """Register the decorated template as the JVP of primitive `fn`."""
    def register(template: Callable) -> Callable:
        _ensure(fn).jvp = template
        return template
    return register


def defnondiff(*fns: Callable) -> None:
    """Declare primitives whose derivative is zero wherever it exists (floor, sign, ==)."""
    for fn in fns:
        _ensure(fn).nondiff = True


def template_inputs(template: Callable, skip: int) -> list[str]:
    """The primal input names a template binds (after `g, ans` or `ans`)."""
    params = list(inspect.signature(template).parameters.values())[skip:]
    return [p.name for p in params if not p.name.endswith("_dot")]


def named(name: str) -> Prim:
    """The primitive registered under `name` (for the front end, which cannot import
    the rule modules: they import it)."""
    return _by_name[name].prim


# ---------------------------------------------------------------- JVPs written from VJPs

_written: dict[str, list[str]] = {}  # per module: the lines of the JVPs written from its VJPs


def _derived(vjp: Callable, name: str, source: str) -> Callable:
    """Compile `source` (one `def name(...)`) as a template of `vjp`'s module. The JVPs
    written from one module's VJPs are lines of one file held by `linecache`, so the
    front end reads and lowers each as it reads a template written in a file."""
    module = vjp.__module__
    filename = f"<JVPs written from {module.replace('.', '/')}.py>"
    lines = _written.setdefault(module, [])
    padded = "\n" * len(lines) + source  # the def's line numbers are those in the file
    lines += [line + "\n" for line in source.splitlines()] + ["\n"]
    linecache.cache[filename] = (sum(map(len, lines)), None, list(lines), filename)
    namespace = vjp.__globals__  # the template reads the names its VJP reads
    saved = namespace.get(name, _written)
    exec(compile(padded, filename, "exec"), namespace)
    made = namespace[name]
    if saved is _written:  # leave the module's names as they were
        del namespace[name]
    else:
        namespace[name] = saved
    return made


def _jvp_name(vjp: Callable) -> str:
    base = vjp.__name__[:-4] if vjp.__name__.endswith("_vjp") else vjp.__name__
    return base + "_jvp"


def _jvp_header(vjp: Callable, dots: list[str]) -> str:
    """The JVP's parameter list: `ans`, the VJP's primal inputs, one `<name>_dot` per
    name in `dots` (defaulting to None when an input has a default, as Python requires)."""
    params = list(inspect.signature(vjp).parameters.values())[2:]
    if any(p.kind != p.POSITIONAL_OR_KEYWORD for p in params):
        raise TypeError(f"{vjp.__qualname__}: write its JVP by hand (keyword-only or * "
                        "parameters)")
    defaulted = any(p.default is not inspect.Parameter.empty for p in params)
    text = ["ans"] + [p.name if p.default is inspect.Parameter.empty
                      else f"{p.name}={p.default!r}" for p in params]
    text += [f"{d}_dot=None" if defaulted else f"{d}_dot" for d in dots]
    return ", ".join(text)


def _spelled(fn: Callable, namespace: dict) -> str:
    """An expression naming `fn` in `namespace`: its registered name if that resolves
    to it there, else a private global made for it."""
    name = _ensure(fn).prim.name
    try:
        if eval(name, dict(namespace)) is fn:
            return name
    except Exception:  # noqa: BLE001 - a name that does not resolve here
        pass
    private = f"_linear_op_{len(_keepalive)}"
    namespace[private] = fn
    _keepalive.append(fn)
    return private


def _applied(fn: Callable, vjp: Callable, dots: list[str]) -> str:
    """`fn` called on the VJP's primal inputs, those in `dots` by their tangents: by
    position up to the last input without a default or with a tangent (np.where takes
    x and y by position only), by keyword after, but never out= or dtype=."""
    params = list(inspect.signature(vjp).parameters.values())[2:]
    last = max(k for k, p in enumerate(params)
               if p.default is inspect.Parameter.empty or p.name in dots)
    args = [p.name + "_dot" if p.name in dots else p.name for p in params[:last + 1]]
    args += [f"{p.name}={p.name}" for p in params[last + 1:] if p.name not in ("out", "dtype")]
    return f"{_spelled(fn, vjp.__globals__)}({', '.join(args)})"


def _define_jvp(fn: Callable, vjp: Callable, dots: list[str], body: str) -> None:
    name = _jvp_name(vjp)
    header = _jvp_header(vjp, dots)
    defvjp(fn)(vjp)
    _ensure(fn).jvp = _derived(vjp, name, f"def {name}({header}):\n    return {body}\n")


def deflinear(fn: Callable, *inputs: str):
    """Register the decorated VJP template of `fn`, an op linear in `inputs` together
    (default: its first input), and as its JVP `fn` applied to their tangents, the
    other arguments unchanged: `np.reshape(a_dot, shape, order=order)`."""
    def register(vjp: Callable) -> Callable:
        first = list(inspect.signature(vjp).parameters)[2]
        dots = list(inputs) or [first]
        _define_jvp(fn, vjp, dots, _applied(fn, vjp, dots))
        return vjp
    return register


def defbilinear(fn: Callable, *inputs: str):
    """Register the decorated VJP template of `fn`, an op linear in each of `inputs`
    on its own (a product: np.dot(a, b)), and as its JVP the sum over them of `fn`
    with that one input replaced by its tangent: `np.dot(a_dot, b) + np.dot(a, b_dot)`."""
    def register(vjp: Callable) -> Callable:
        terms = [_applied(fn, vjp, [name]) for name in inputs]
        _define_jvp(fn, vjp, list(inputs), " + ".join(terms))
        return vjp
    return register


def defunary(fn: Callable):
    """Register the decorated VJP template `(g, ans, x)` of `fn`, elementwise in its one
    input, and as its JVP the same template with the cotangent `g` read as the tangent
    `x_dot`: an elementwise function's Jacobian is diagonal, so J v == J^T v."""
    def register(vjp: Callable) -> Callable:
        node = ast.parse(textwrap.dedent(inspect.getsource(vjp))).body[0]
        params = [a.arg for a in node.args.args]
        if params[:2] != ["g", "ans"] or len(params) != 3 or node.args.defaults:
            raise TypeError(f"defunary: {vjp.__qualname__} must take (g, ans, x)")
        dot = params[2] + "_dot"
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id == "g":
                n.id = dot
            elif isinstance(n, ast.Name) and n.id == dot:
                raise TypeError(f"defunary: {vjp.__qualname__} already reads {dot}")
        node.name = _jvp_name(vjp)
        node.decorator_list = []
        node.args.args = node.args.args[1:] + [ast.arg(dot)]
        defvjp(fn)(vjp)
        _ensure(fn).jvp = _derived(vjp, node.name, ast.unparse(node) + "\n")
        return vjp
    return register
