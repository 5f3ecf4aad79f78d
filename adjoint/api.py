"""The public API: grad, value_and_grad, vjp, source, ir, and the @adjoint decorator.

A gradient is compiled for each function, `wrt`, option set and argument
signature (the kinds and shapes of the arguments) on first use; the generated
module is written to the cache folder and imported, and later calls with the
same signature go straight to it.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from adjoint import __version__, index
from adjoint.analysis.shapes import array_library, as_numpy, kind_of, refuse_handled
from adjoint.analysis.views import written_arrays
from adjoint.codegen import emit, load, numba_backend
from adjoint.display import SourceText
from adjoint.driver import Compilation, check_wrt_kinds, extra_arguments, facts_for, \
    global_kinds, globals_namespace, leaves, origin, origins, placed, portable_header, run, \
    takes_rest, user_rules, with_entry_check, with_float_retry, with_global_checks, \
    with_handler_check, with_real_check, with_rest
from adjoint.errors import AdjointError, RecursionDepthError, UnsupportedError
from adjoint.floats import as_numpy_would, generated_file, numpy_floats, where
from adjoint.frontend.lower import FOR_DEPTH, lower_function
from adjoint.frontend.source import parse_function, unwrap, unwrap_partial
from adjoint.higher import HVP, Derivative, def_line, depth_arguments, nested
from adjoint.guards import holds, quick_signature, rule_guards, same_facts, signature, \
    signature_kinds
from adjoint.ir.core import walk_ops
from adjoint.ir.printer import print_function
from adjoint.passes import pipeline
from adjoint.runtime import FieldCotangents, fresh_tapes, line_of_f, rebuilt
from adjoint.values import like, tangent_like

_MISSING = object()  # no tangent given by keyword


def _names(f) -> tuple[str, str]:
    """f's name and qualified name (a functools.partial's are its function's)."""
    plain = unwrap_partial(f)
    return getattr(plain, "__name__", repr(f)), getattr(plain, "__qualname__", repr(f))


def _noted(e: Exception, path: str, ir) -> Exception:
    """`e`, raised in the generated module at `path`, with a note of the line of f it
    was computing the derivative of (an exception of f's own, or of its arguments); a
    located refusal where f's `try` handler catches it (a call that compiled earlier code
    did not take the handler)."""
    loc = where(e, path, ir)
    if loc is not None:
        refuse_handled(ir, e, loc)
    if hasattr(e, "add_note") and loc is not None and loc.filename:  # Python 3.11+
        e.add_note(f"adjoint: raised by the generated code of {ir.name}, computing "
                   f"{loc.filename}:{loc.line}: {(loc.text or '').strip()}")
    return e


def _updated_in_place(fn) -> set:
    """The values that `x *= y` or `c[k] += v` may update in place (when they are arrays;
    the lowering keeps such an update as a value, which is f only while no one else
    holds the array)."""
    inplace = set(fn.inplace)
    out = {base for _, base, _ in fn.element_updates}
    for op in walk_ops(fn.body):
        if op.results and op.results[0] in inplace and getattr(op, "args", None):
            out.add(op.args[0])
    return out


def _buffer(a: np.ndarray):
    """The object that owns `a`'s memory: views of one buffer have one."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


@dataclass
class Compiled:
    fn: Callable
    source: str
    path: str
    facts: object = None  # what observing its arguments saw, when an int was among them


class _Header:
    """f's name and parameters as lowering names them, read from the index before f is
    lowered (all that placing a call's arguments needs)."""

    def __init__(self, header: dict) -> None:
        self.name, self.param_names = header["name"], tuple(header["params"])
        self.params = self.param_names


class Transform:
    """One compiled gradient (or split vjp pair) per signature, cached in memory and on disk.

    The compiled code depends on the globals the function reads (a float global is a
    number in the code, a helper is inlined): each call checks they are the same
    objects (`stale`), and lowers the function again when one changed.

    When the cache folder's index (adjoint/index.py) has modules for f and these
    options, f is lowered only on a miss: a new process whose module is on disk imports
    it without compiling."""

    def __init__(self, f: Callable, wrt, mode: str, cache_dir=None, checkpoint=None,
                 optimize: bool = True, backend: str = "numpy", constants=None):
        self.constants = constants  # parameters lowered as these values (a recursion's depth)
        self.backend = _backend(backend, mode, needs_numba=True)
        self.f = unwrap(f)
        self.mode = mode  # "grad", "value_and_grad", "vjp"
        self.wrt_spec = wrt
        self.cache_dir = cache_dir
        self.checkpoint = checkpoint
        self.optimize = optimize  # False: no optimisation pass (differential testing)
        self._job: Compilation | None = None  # f lowered and prepared, when it has been
        self.index_path, self.indexed = self._index()
        if self.indexed is None:
            self._lower()  # now, so that what f cannot be lowered for is raised here
        else:
            self.head = _Header(self.indexed["header"])
            self.wrt = tuple(self.indexed["header"]["wrt"])
            self.guards, self.holds, self.written = (), None, []
            self.code = getattr(self.f, "__code__", None)
            self.compiled: dict[tuple, Compiled] = {}
            self.quick: dict[tuple, Compiled] = {}
        # named like f, but no __wrapped__: unwrapping a derivative must not reach f
        name, self.__qualname__ = _names(self.f)
        self.__name__, self.__doc__ = f"{mode}({name})", f"The {mode} of {name}."

    def _passes(self):
        return contextlib.nullcontext() if self.optimize else pipeline.limited(0)

    @property
    def job(self) -> Compilation:
        if self._job is None:
            self._lower()
        return self._job

    @property
    def lowered(self):
        return self.job.lowered

    @property
    def ir(self):
        return self.job.ir

    def _index(self):
        """The index file of f's modules for these options, and what it holds (None when
        it holds no module, or f cannot be indexed: see adjoint/index.py)."""
        if self.constants:
            return None, None
        key = index.function_key(self.f, (__version__, self.wrt_spec, self.mode,
                                          self.checkpoint, self.optimize, self.backend))
        if key is None:
            return None, None
        path = index.index_path(_names(self.f)[0] + "_" + self.mode, key, self.cache_dir)
        held = index.read(path)
        return path, held if held.get("entries") else None

    def _lower(self) -> None:
        """Lower and prepare f afresh (its globals changed): no old specialisation stays."""
        with self._passes():
            self._job = run(Compilation(self.f, self.wrt_spec, self.mode,
                                        checkpoint=self.checkpoint, constants=self.constants),
                            "lower", "prepare")
        self.head, self.wrt = self.ir, self.job.wrt_index
        self.guards = self.job.guards + rule_guards(self.lowered)
        self.holds = holds(self.guards)
        self.code = getattr(self.f, "__code__", None)  # autoreload swaps it in place
        # parameters f writes in place: the gradient copies them on entry, which is only
        # the same function when no other argument shares their memory
        written = written_arrays(self.lowered) | _updated_in_place(self.lowered)
        self.written = [i for i, p in enumerate(self.lowered.params) if p in written]
        self._check_defaults_unwritten()
        self.compiled: dict[tuple, Compiled] = {}
        self.quick: dict[tuple, Compiled] = {}  # the same, keyed by quick_signature

    def full_args(self, args, kwargs=None) -> tuple:
        """The arguments, positional in the order of f's parameters (keyword-only ones
        too), with keywords placed and the function's defaults filled in, as Python would."""
        return placed(self.f, self.head, args, kwargs)

    def compile(self, args) -> Compiled:
        args = self.full_args(args)
        if self.holds is not None and not self.holds() or \
                getattr(self.f, "__code__", None) is not self.code:  # a global or f changed
            self._lower()
        quick = quick_signature(args)
        got = self.quick.get(quick)
        if got is None and self._job is None:
            got = self._indexed_module(args)
            if got is None:
                self._lower()
        if self.written:
            self._check_unshared(args)
        if got is None:
            got = self._compile(args)
        if quick is not None:
            self.quick[quick] = got
        return got

    def _call_key(self, sig, xp) -> str | None:
        return index.call_key(sig, (xp, self.optimize and pipeline.setting()))

    def _indexed_module(self, args) -> Compiled | None:
        """The module the index holds for this call, when every witness of its entry
        holds (f not lowered); None on a miss."""
        sig = signature(args)
        call = self._call_key(sig, array_api_args(args))
        for entry in self.indexed["entries"].get(call, []) if call is not None else []:
            found = index.check(self.f, entry, self.index_path.parent)
            if found is not None:
                break
        else:
            return None
        path, namespace, checks = found

        def evicted():  # removed since the check: compiled as on any miss
            raise FileNotFoundError(path)
        try:
            module = load.load(path, evicted, namespace)
        except FileNotFoundError:
            return None
        self.guards, self.holds, self.written = checks, holds(checks), entry["written"]
        self._check_defaults_unwritten()
        got = Compiled(self._entry_point(module), _module_text(path), str(path))
        self.compiled[sig] = got
        return got

    def _entry_point(self, module):
        """The compiled function(s) of a generated module: (fwd, bwd) for a vjp."""
        name = self.head.name + {"grad": "_grad", "value_and_grad": "_value_and_grad",
                                 "vjp": "_fwd", "jvp": "_jvp"}[self.mode]
        fn = getattr(module, name)
        if self.backend == "numba":
            fn = numba_backend.compiled(module, name)
        return (fn, getattr(module, self.head.name + "_bwd")) if self.mode == "vjp" else fn

    def _write_index(self, sig, xp, path, namespace: dict) -> None:
        """An entry for the module just made or found, so that a new process finds it
        without lowering f (when what lowering read can be witnessed there)."""
        import inspect
        call = self._call_key(sig, xp)
        if self.index_path is None or call is None or \
                tuple(inspect.signature(self.f).parameters) != self.ir.param_names:
            return
        # the guards of lowering f, not of the rules' entries (index.entry refuses a user's
        # rule; a hit guards the registry as a whole)
        entry = index.entry(self.f, self.lowered, self.job.guards, self.job.files, namespace,
                            path, self.written)
        if entry is not None:
            header = {"name": self.ir.name, "params": list(self.ir.param_names),
                      "wrt": list(self.wrt)}
            index.write(self.index_path, header, call, entry)

    def _check_defaults_unwritten(self) -> None:
        """A default list or array that f writes into changes from call to call in Python
        (the gradient copies written parameters on entry, so it would not follow)."""
        import inspect
        params = inspect.signature(self.f).parameters
        for i in self.written:
            p = params.get(self.head.param_names[i])
            if p is not None and isinstance(p.default, (list, dict, np.ndarray)):
                raise UnsupportedError(
                    f"{self.head.name} writes into `{p.name}`, whose default value is one "
                    f"{type(p.default).__name__} shared by every call", self.ir.loc,
                    f"default to None and make a new one: `if {p.name} is None: "
                    f"{p.name} = []`")

    def _check_unshared(self, args) -> None:
        """The gradient copies a parameter that f writes in place on entry. That is only
        f when nothing else f sees holds the same memory: another argument, another leaf
        of a container argument (tied weights {'W': W, 'W_dec': W}), or an array f reads
        from a global, a closure or self (grad(f)(y, G) where f also reads G)."""
        names = self.head.param_names
        arrays = [(label, a, i in self.written) for i, arg in enumerate(args)
                  for label, a in leaves(names[i], arg) if isinstance(a, np.ndarray)]
        arrays += [(label, a, False) for _, name, value, _, _ in self.guards
                   for label, a in leaves(name, value) if isinstance(a, np.ndarray)]
        by_buffer: dict = {}
        for leaf in arrays:
            by_buffer.setdefault(id(_buffer(leaf[1])), []).append(leaf)
        for group in by_buffer.values():
            for k, (name_a, a, written_a) in enumerate(group):
                for name_b, b, written_b in group[k + 1:]:
                    if (written_a or written_b) and np.may_share_memory(a, b):
                        w, o = (name_a, name_b) if written_a else (name_b, name_a)
                        raise AdjointError(
                            f"`{w}` and `{o}` share memory, and {self.ir.name} writes into "
                            f"`{w}`: a write would change `{o}` too", self.ir.loc,
                            f"pass a copy: {w}.copy()")

    def _compile(self, args) -> Compiled:
        sig = signature(args)
        got = self.compiled.get(sig)
        if got is not None:
            return got
        if len(args) != len(self.ir.params):
            raise TypeError(f"{self.ir.name}() takes {len(self.ir.params)} arguments, "
                            f"got {len(args)}")
        check_wrt_kinds(self.ir, self.wrt, args)
        xp = array_api_args(args)
        if xp and (self.backend != "numpy" or self.mode not in ("grad", "value_and_grad")):
            raise UnsupportedError(
                f"the array-API form (for arrays of {xp}) is written for grad and "
                f"value_and_grad with NumPy's backend, not {self.mode} with "
                f"backend={self.backend!r}", self.ir.loc, "pass NumPy arrays")
        facts = None
        if any(v is not None for _, v in sig):
            # an int is keyed by value in case it is folded in (an axis, a size); when
            # observing this call sees what an earlier one with other values saw (an
            # index, a step number), that code serves it unchanged
            facts = facts_for(self.lowered, self.ir, args)
            for other, c in self.compiled.items():
                if c.facts is not None and signature_kinds(other) == signature_kinds(sig) and \
                        same_facts(c.facts, facts):
                    self.compiled[sig] = c
                    return c
        ir_text = print_function(self.ir)
        # the same text may read the globals of different modules: each gets its own file
        read = origins(self.ir)
        # the comments quote source lines: equal code from other places gets its own file
        where = sorted({(op.loc.filename, op.loc.line, op.loc.text)
                        for op in walk_ops(self.ir.body) if op.loc is not None})
        digest = load.key(__version__, ir_text, sig, self.wrt, self.mode, self.checkpoint,
                          read, origin(self.f), where, global_kinds(self.ir), user_rules(self.ir),
                          self.optimize and pipeline.setting(),
                          *(() if self.backend == "numpy" else (self.backend,)),
                          *(("array_api",) if xp else ()))
        path = load.module_path(self.ir.name + "_" + self.mode, digest, self.cache_dir)
        holder = {}

        def make_source():
            with self._passes():
                job = _emit(replace(self.job, args=args, digest=digest, log=[],
                                    facts=facts and facts.copy()),
                            self.backend, xp or "")
            holder["source"] = job.source
            return job.source

        namespace = globals_namespace(self.ir)
        module = load.load(path, make_source, namespace)
        got = Compiled(self._entry_point(module), holder.get("source") or _module_text(path),
                       str(path), facts)
        self.compiled[sig] = got
        self._write_index(sig, xp, path, namespace)
        return got

    def __repr__(self) -> str:
        return f"<adjoint {self.mode} of {_names(self.f)[1]} with respect to {self.wrt_spec!r}>"

    def _repr_html_(self) -> str:
        """In a notebook: the generated source of the latest specialisation."""
        if not self.compiled:
            return (f"<p><code>{self.mode}({_names(self.f)[0]})</code>: not compiled yet; call "
                    f"it, or see <code>adjoint.source(f, args=...)</code></p>")
        return SourceText(list(self.compiled.values())[-1].source)._repr_html_()

    def __call__(self, *args, tangent=_MISSING, **kwargs):
        if self.mode == "jvp":
            return self.jvp(args, tangent, kwargs)
        args = self.full_args(args, kwargs)
        if self.mode == "grad":
            return self.shape_grads(self.run(args), args)
        value, grads = self.run(args)
        return value, self.shape_grads(grads, args)

    def run(self, args, extra=()):
        """The compiled function on `args` (and `extra`, tangents), with NumPy's floats
        where Python's raise on a division by zero (floats.as_numpy_would)."""
        def call(args, extra):
            c = self.compile(args)
            try:
                return c.fn(*args, *extra)
            except ZeroDivisionError:
                raise
            except Exception as e:
                raise _noted(e, c.path, self.ir)
        return as_numpy_would(call, args, extra, self.f, lambda: self.ir,
                              lambda args: self.compile(args).path)

    def jvp(self, args, tangent, kwargs=None):
        """`f(*args)` and its derivative along `tangent` (the last positional argument,
        or `tangent=`; a tuple of tangents when wrt is a tuple)."""
        if tangent is _MISSING:
            if not args:
                raise TypeError("jvp: missing the tangent argument")
            args, tangent = args[:-1], args[-1]
        args = self.full_args(args, kwargs)  # keywords placed, defaults filled in
        tangents = (tangent,) if len(self.wrt) == 1 else tuple(tangent) if isinstance(
            tangent, (tuple, list)) and len(tangent) == len(self.wrt) else None
        if tangents is None:
            raise TypeError(f"jvp with wrt={self.wrt_spec!r} takes a tuple of "
                            f"{len(self.wrt)} tangents")
        if len(args) != len(self.head.params):
            raise TypeError(f"{self.head.name}() takes {len(self.head.params)} arguments, "
                            f"got {len(args)}")
        tangents = tuple(tangent_like(t, args[i], self.head.param_names[i])
                         for t, i in zip(tangents, self.wrt))
        value, dot = self.run(args, tangents)
        return value, like(dot, value)

    def shape_grads(self, grads, args):
        try:
            if len(self.wrt) == 1:  # a 1-tuple for wrt=('w',), as JAX's argnums=(0,)
                g = _like(grads, args[self.wrt[0]])
                return (g,) if isinstance(self.wrt_spec, tuple) else g
            return tuple(_like(g, args[i]) for g, i in zip(grads, self.wrt))
        except AdjointError as e:  # a rule's cotangent of the wrong shape: at f
            raise e.located(self.ir.loc) from None


def _module_text(path) -> str:
    """A generated module's source, without its end marker."""
    return path.read_text().rsplit(load.END, 1)[0].rstrip() + "\n"


def _like(g, x):
    """values.like, and for an array-API argument its dtype: a float32 array's gradient
    is float32, as NumPy's is (a Python float in the generated code promotes to the
    namespace's default float)."""
    lib = array_library(x)
    if lib in (None, "dask") or array_library(g) != lib or g.dtype == x.dtype:
        return like(g, x)
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    if xp.isdtype(x.dtype, ("real floating", "complex floating")) and \
            xp.isdtype(g.dtype, "real floating"):
        return xp.astype(g, x.dtype)
    return g


def memory(f: Callable, *args, wrt=0, checkpoint=None):
    """What the gradient of `f` keeps for its backward sweep on these arguments: values
    per source line, their sizes and copies (per loop iteration), and the total."""
    from adjoint.analysis.memory import report
    job = run(Compilation(unwrap(f), wrt, "grad", args, checkpoint,
                          constants=extra_arguments(unwrap(f), args)), last="specialise")
    return report(job.ir, job.functions[0][0], job.facts)


# ---------------------------------------------------------------------- public functions


class ByDepth:
    """The derivative of a function that calls itself to a depth its int arguments fix
    (`def power(x, n): return 1.0 if n == 0 else x * power(x, n - 1)`), or the lengths of
    its list, tuple and array arguments (a tree sum that splits a list in halves): one
    Transform per tuple of those values, each lowering f with the ints as constants and
    the lengths known, so that the recursion unrolls. Called like the Transform it
    stands for: a call with another length or int uses (or makes) another Transform."""

    def __init__(self, f: Callable, wrt, mode: str, *options):
        self.f, self.wrt_spec, self.mode, self.options = unwrap(f), wrt, mode, options
        self.cache_dir = options[0] if options else None  # as a Transform's (nested reads it)
        self.by_constants: dict[tuple, Transform] = {}
        name, self.__qualname__ = _names(self.f)
        self.__name__ = f"{mode}({name})"

    def constants_for(self, args, kwargs=None) -> dict:
        return depth_arguments(self.f, args, kwargs)

    def transform_for(self, args, kwargs=None) -> Transform:
        constants = self.constants_for(args, kwargs)
        # by type too: code made for n == 3 never runs on a list n of length 3
        key = tuple((k, type(v), v) for k, v in constants.items())
        t = self.by_constants.get(key)
        if t is None:
            t = self.by_constants[key] = Transform(self.f, self.wrt_spec, self.mode,
                                                   *self.options, constants=constants)
        return t

    def __call__(self, *args, tangent=_MISSING, **kwargs):
        if self.mode == "jvp":
            given = args if tangent is not _MISSING else args[:-1]
            return self.transform_for(given, kwargs)(*args, tangent=tangent, **kwargs)
        return self.transform_for(args, kwargs)(*args, **kwargs)


class ByArity(ByDepth):
    """The derivative of `f(x, *rest)`: one Transform per number of arguments in `rest`,
    each lowering f with `rest` as that many parameters. Code made for two extra
    arguments never runs on three."""

    def constants_for(self, args, kwargs=None) -> dict:
        return extra_arguments(self.f, args, kwargs)


def _derivative(f: Callable, wrt, mode: str, *options):
    """A Transform of f, for f(x, *rest) one per number of extra arguments, or for a
    recursion of constant depth one per depth."""
    if takes_rest(unwrap(f)):
        return ByArity(f, wrt, mode, *options)
    try:
        return Transform(f, wrt, mode, *options)
    except RecursionDepthError:
        return ByDepth(f, wrt, mode, *options)


def grad(f: Callable, wrt=0, *, cache_dir=None, checkpoint=None, optimize=True,
         backend="numpy") -> Callable:
    """The gradient of scalar-valued `f` with respect to argument(s) `wrt` (a position,
    a parameter name, or a tuple of them: a tuple gives a tuple of gradients, a 1-tuple
    for wrt=('w',), as JAX's argnums does). `f` may be a gradient itself (of a scalar
    function of a scalar): then this is its derivative. `checkpoint=k` (or a byte
    budget) recomputes every loop from k snapshots instead of storing it; `optimize=False`
    runs no optimisation pass (the gradient must be the same). `backend="numba"` compiles
    the gradient with numba (loops run at compiled speed; what numba cannot compile runs
    with NumPy, with a warning that says why).

    Example::

        def loss(w, x, y):
            return np.sum((np.tanh(x @ w) - y) ** 2)

        dw = adjoint.grad(loss)(w, x, y)                 # an array shaped like w
        dw, dx = adjoint.grad(loss, wrt=("w", "x"))(w, x, y)
    """
    if isinstance(f, (Transform, ByDepth, Derivative)):
        if backend != "numpy":
            raise ValueError(f"backend={backend!r} compiles first derivatives only; "
                             f"a derivative of a derivative runs with NumPy")
        return nested(f, wrt)
    return _derivative(f, wrt, "grad", cache_dir, checkpoint, optimize, backend)


def value_and_grad(f: Callable, wrt=0, *, cache_dir=None, checkpoint=None,
                   optimize=True, backend="numpy") -> Callable:
    """`f(*args)` and its gradient, in one pass: `value, dw = value_and_grad(loss)(w, x, y)`."""
    return _derivative(f, wrt, "value_and_grad", cache_dir, checkpoint, optimize, backend)


def jvp(f: Callable, wrt=0, *, cache_dir=None) -> Callable:
    """Forward mode: `jvp(f, wrt)(*args, tangent) -> (f(*args), directional derivative)`.
    `f` may be a gradient (`adjoint.grad(g)`): that is forward over reverse, an HVP.

    Example::

        value, slope = adjoint.jvp(loss)(w, x, y, np.ones_like(w))   # d loss along ones
    """
    if isinstance(f, (Transform, ByDepth)):
        if f.mode != "grad":
            raise AdjointError(f"jvp of a {f.mode} is not supported", def_line(f.f),
                               "differentiate adjoint.grad(f), or use adjoint.hvp")
        return ForwardOverReverse(f, HVP(f.f, f.wrt_spec, wrt, cache_dir=f.cache_dir))
    return _derivative(f, wrt, "jvp", cache_dir)


class ForwardOverReverse:
    """`jvp(grad(g))`: g's gradient and its derivative along a tangent (an HVP). An
    object, not a closure, so that a transform given it refuses it at g's line instead
    of reading this file."""

    def __init__(self, gradient, product: HVP):
        self.gradient, self.product, self.f = gradient, product, gradient.f
        self.__name__ = f"jvp({gradient.__name__})"

    def __call__(self, *args, tangent=_MISSING):
        if tangent is _MISSING:
            args, tangent = args[:-1], args[-1]
        return self.gradient(*args), self.product(*args, tangent)


def vjp(f: Callable, *args, wrt=0, cache_dir=None, checkpoint=None, optimize=True, **kwargs):
    """`(f(*args, **kwargs), pullback)`; `pullback(out_bar)` gives the cotangent(s) of
    the argument(s) `wrt`. `f` may return an array; `out_bar` has its shape.

    Example::

        out, pullback = adjoint.vjp(layer, W, x)          # out = layer(W, x)
        W_bar = pullback(np.ones_like(out))
    """
    t = _derivative(f, wrt, "vjp", cache_dir, checkpoint, optimize)
    if isinstance(t, ByDepth):
        t = t.transform_for(args, kwargs)
    args = t.full_args(args, kwargs)  # the generated f_fwd takes every parameter
    path_of = lambda args: generated_file(t.compile(args).fn[0])  # noqa: E731
    swept, out, residuals = as_numpy_would(
        lambda given, _: (given, *t.compile(given).fn[0](*given)), args, (), t.f,
        lambda: t.ir, path_of)

    def sweep(given, extra):
        """The backward sweep; its forward again when NumPy's floats replace `args`'."""
        fwd, bwd = t.compile(given).fn
        saved = residuals if given is swept else fwd(*given)[1]
        # the backward sweep pops its tapes: give each call its own copy
        return bwd(*fresh_tapes(saved), *extra)

    def pullback(out_bar):
        out_bar = cotangent_like(out_bar, out, "out")  # before the sweep, not inside it
        return t.shape_grads(as_numpy_would(sweep, swept, (out_bar,), t.f, lambda: t.ir, path_of),
                             args)

    return out, pullback


def cotangent_like(ct, out, name: str):
    """A pullback's `out_bar` checked against f's output `out`, as jvp checks a tangent:
    an array of out's shape (a (3,) cotangent for a (3, 1) output would broadcast to
    (3, 3) inside the sweep), a number for a number, a tuple of out's length or a dict of
    its keys, entry by entry; real for a real output. Ints are taken as floats."""
    if ct is None:
        raise TypeError(f"the cotangent of `{name}` is None: pass zeros of its shape "
                        f"for an output that does not matter (np.zeros_like({name}))")
    if isinstance(out, (list, tuple)):
        if not isinstance(ct, (list, tuple)) or len(ct) != len(out):
            raise ValueError(f"the cotangent of `{name}`, a {type(out).__name__} of "
                             f"{len(out)} entries, must have its {len(out)} entries, not "
                             f"{_described(ct)}")
        items = [cotangent_like(c, o, f"{name}[{k}]") for k, (c, o) in enumerate(zip(ct, out))]
        if hasattr(out, "_fields"):  # read by the sweep by field name, as a parameter's is
            return FieldCotangents(out._fields, items)
        return type(out)(items)
    if isinstance(out, dict):
        if not isinstance(ct, dict) or set(ct) != set(out):
            raise ValueError(f"the cotangent of `{name}` must be a dict with its keys "
                             f"{sorted(out, key=repr)}, not {_described(ct)}")
        return {k: cotangent_like(ct[k], v, f"{name}[{k!r}]") for k, v in out.items()}
    if hasattr(type(out), "__dataclass_fields__") and not isinstance(out, type):
        if type(ct) is not type(out):  # the same class, a cotangent per field
            raise ValueError(f"the cotangent of `{name}` must be a {type(out).__name__}")
        return rebuilt(out, {f: cotangent_like(getattr(ct, f), getattr(out, f), f"{name}.{f}")
                             for f in type(out).__dataclass_fields__})
    if isinstance(out, (bool, int, float, complex, np.generic)):
        shape, kind = (), np.asarray(out).dtype.kind
    elif hasattr(out, "shape") and hasattr(out, "dtype"):  # NumPy's, dask's...
        shape, kind = tuple(out.shape), np.dtype(out.dtype).kind
    else:
        return ct  # another kind of value: the sweep reads it as it reads out
    lazy = array_library(ct) is not None  # dask's: read without computing it
    if isinstance(ct, (dict, str)) or (not lazy and np.asarray(ct).dtype.kind not in "biufc"):
        raise TypeError(f"the cotangent of `{name}` must be numbers, not {_described(ct)}")
    if isinstance(ct, np.ndarray) and kind_of(ct).type == "other":  # np.asarray drops a mask
        raise TypeError(f"the cotangent of `{name}` is a {type(ct).__name__}: pass a plain "
                        "array (np.asarray, or .filled(0.0) for a masked one)")
    got = np.asarray(ct) if not lazy else ct
    ct_kind = np.dtype(got.dtype).kind
    if ct_kind == "c" and kind != "c":
        raise TypeError(f"the cotangent of `{name}` is complex, but `{name}` is real")
    if shape == () and not lazy:  # a number: any one-element cotangent, as a number
        if got.size != 1:
            raise ValueError(f"the cotangent of `{name}`, a number, has shape {got.shape}")
        return complex(got.reshape(())) if ct_kind == "c" else float(got.reshape(()))
    if len(got.shape) != len(shape) or any(
            a != b for a, b in zip(got.shape, shape) if not (np.isnan(a) or np.isnan(b))):
        raise ValueError(f"the cotangent of `{name}` has shape {tuple(got.shape)}, but "
                         f"`{name}` has shape {shape}")
    if lazy:
        return ct
    return got.astype(np.float64) if ct_kind in "biu" else ct if isinstance(
        ct, np.ndarray) else got


def _described(v) -> str:
    return f"a {type(v).__name__} of {len(v)}" if isinstance(v, (list, tuple, dict)) else \
        f"a {type(v).__name__}"


def source(f: Callable, wrt=0, mode: str = "reverse", args=None, checkpoint=None,
           standalone: bool = False, backend: str = "numpy", array_api: bool = False) -> str:
    """The generated module's source; specialised on `args` when given. `standalone`
    pastes the runtime helpers it calls into the file, so it stands on its own.
    `backend="numba"` writes it for numba (`@numba.njit` functions, index loops).
    `array_api=True` writes the namespace-generic form: `xp = array_namespace(...)` from
    the array arguments, and `xp.exp`, `xp.concat`... for NumPy's functions (it needs
    `args`; a NumPy function with no standard equivalent is refused at its line). Code
    that writes array elements (x[i] = v) is refused for every namespace, since torch's
    and CuPy's x[i] is a view; `array_api="array_api_strict"` writes it for that one.

    Without `args` the code is generic. With them it may hold their facts (a size, an
    axis, that a value is a float): it then checks them on entry, and says so in its
    header, so that the file never runs on arguments it was not generated for.

    Example::

        print(adjoint.source(loss, wrt="w", args=(w, x, y)))   # def loss_grad(w, x, y, ...
    """
    f = unwrap(f)
    kind = {"reverse": "grad", "grad": "grad", "vjp": "vjp", "forward": "jvp",
            "jvp": "jvp"}.get(mode)
    if kind is None:
        raise ValueError(f"unknown mode {mode!r}")
    backend = _backend(backend, kind)
    if array_api and (args is None or kind != "grad" or backend != "numpy" or standalone):
        raise ValueError("array_api=True writes a gradient specialised on args=..., with "
                         "NumPy's backend, not standalone")
    extras = extra_arguments(f, args) if args is not None else {}  # f(x, *rest)
    try:
        job = run(Compilation(f, wrt, kind, None, checkpoint, standalone, constants=extras),
                  last="prepare")
    except RecursionDepthError:
        if args is None:
            raise
        job = run(Compilation(f, wrt, kind, None, checkpoint, standalone,
                              constants={**depth_arguments(f, args), **extras}), last="prepare")

    if array_api:
        t = _transform_for(f, wrt, checkpoint, args)
        args = t.full_args(tuple(args))
        check_wrt_kinds(t.ir, t.wrt, args)
        library = array_api if isinstance(array_api, str) else "any"
        text = _emit(replace(job, args=args, log=[]), backend, library).source
        where = f"{os.path.basename(parse_function(f).filename)}:{job.ir.name}"
        numpy_args = tuple(as_numpy(a) for a in args)  # the facts, read as NumPy's
        text = with_entry_check(text, job.ir, numpy_args, f"{job.ir.name}_grad", where)
        text = with_handler_check(text, job.ir, f"{job.ir.name}_grad")
        return portable_header(with_global_checks(_namespace_checks(text), job.guards,
                                                  job.ir.name), f)

    def emitted_for(args) -> str:
        return _emit(replace(job, args=args, log=[]), backend).source

    text = _source(f, wrt, kind, args, checkpoint, standalone, job, emitted_for, backend)
    fn_name = f"{job.ir.name}_fwd" if kind == "vjp" else f"{job.ir.name}_{kind}"
    text = with_handler_check(text, job.ir, fn_name, standalone)
    swept = tuple(args[i] for i in job.wrt_index if i < len(args)) if args is not None else ()
    if backend == "numpy" and (args is None or numpy_floats(swept) is not swept):
        # Python floats may come in, whose division by zero raises where NumPy's is inf
        derivative, sweep = {"grad": (fn_name, "grad"), "jvp": (fn_name, "tangent"),
                             "vjp": (f"{job.ir.name}_bwd", "backward")}[kind]
        text = with_float_retry(text, derivative, sweep, standalone)
    return portable_header(with_global_checks(text, job.guards, job.ir.name), f)


def _transform_for(f, wrt, checkpoint, args) -> Transform:
    t = _derivative(f, wrt, "grad", None, checkpoint)
    return t.transform_for(tuple(args)) if isinstance(t, ByDepth) else t


def _source(f, wrt, kind, args, checkpoint, standalone, job, emitted, backend) -> str:
    name = job.ir.name
    where = f"{os.path.basename(parse_function(f).filename)}:{name}"
    fn_name = f"{name}_fwd" if kind == "vjp" else f"{name}_{kind}"
    if args is None:
        text = with_real_check(emitted(None), job.ir, fn_name, None if standalone else where,
                               standalone, job.wrt_index)
        return _numba_entry(text, fn_name, kind, standalone) if backend == "numba" else text
    t = _transform_for(f, wrt, checkpoint, args)
    args = t.full_args(tuple(args))
    # numba's text is written, not loaded: numba need not be installed to read it
    text = t.compile(args).source if kind == "grad" and not standalone and \
        backend == "numpy" else emitted(args)
    try:
        generic = emitted(None)
    except Exception:  # noqa: BLE001 - no generic code: the specialised one is checked
        generic = None
    # nothing about the arguments is in the code: no check of them; but a recursion
    # lowered for this call's depth (its ints, its lengths) is specialised on it even
    # where its generic text is the same (that too was lowered for the depth)
    specialised = generic is None or FOR_DEPTH in (job.constants or {}) or \
        generic.split("\n", 1)[1] != text.split("\n", 1)[1]
    # the file's own name (the header's first line has its path): the text stays the same
    # on every machine
    text = with_entry_check(text, job.ir, args, fn_name, None if standalone else where,
                            specialised, tuple(t.written))
    if backend == "numpy":
        return with_rest(text, fn_name, f, job.ir.param_names) \
            if takes_rest(f) and kind == "grad" else text  # (after: it unpacks rest)
    return _numba_entry(text, fn_name, kind, standalone)


def _numba_entry(text: str, fn_name: str, kind: str, standalone: bool) -> str:
    """A numba file's entry: its checks moved into a Python function, which takes out_bar
    by keyword only (numba's functions take no keyword-only argument), so that an extra
    argument is refused, not taken as the seed."""
    text = numba_backend.check_outside(text, fn_name, not standalone)
    if kind != "grad" or f"def {fn_name}_compiled(" not in text:
        return text
    return "\n".join(line[:-len(" out_bar=1.0):")] + " *, out_bar=1.0):" if line.startswith(
        f"def {fn_name}(") and line.endswith(", out_bar=1.0):") else line
        for line in text.split("\n"))


def array_api_args(args) -> str | None:
    """The library of the call's array-API arrays (array_api_strict, torch...), if any:
    then the gradient is written against their namespace. Dask runs the NumPy form."""
    if isinstance(args, (list, tuple)):
        return next((lib for lib in map(array_api_args, args) if lib), None)
    if isinstance(args, dict):
        return array_api_args(list(args.values()))
    lib = array_library(args)
    return lib if lib not in (None, "dask") else None


def _namespace_checks(text: str) -> str:
    """An entry check written for NumPy arrays, made to hold for any namespace's: no
    isinstance(x, np.ndarray), and the dtype kind asked of the array's namespace (the
    standard's dtypes have no .kind). The file is regenerated with --array-api."""
    import re
    kinds = {"f": "real floating", "c": "complex floating", "i": "signed integer",
             "u": "unsigned integer", "b": "bool"}
    text = text.replace(" --args ... for other", " --array-api --args ... for other")
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        if line.startswith("    if not ") and "this gradient was generated" in lines[i + 1]:
            cond = re.sub(r"isinstance\(([^,()]+), np\.ndarray\) and ", "", line)
            lines[i] = re.sub(r"([\w\[\]'.]+?)\.dtype\.kind == '(\w)'",
                              lambda m: f"array_namespace({m[1]}).isdtype({m[1]}.dtype, "
                                        f"{kinds[m[2]]!r})", cond)
            break
    return "\n".join(lines)


def _emit(job: Compilation, backend: str, array_api: str = "") -> Compilation:
    """`job` run from observing its call to the emitted text; the numba emitter also
    reads the kinds observed (a tape of floats is an array), and so does the array-API
    form (which argument is an array, an np.transpose's axes). `array_api`: the
    library the array-API form is for ("any" for a file), or "" for NumPy's form."""
    if array_api:
        job = run(job, "observe", "specialise")
        with emit.backend("numpy", job.facts), emit.array_api(array_api):
            return run(job, "emit")
    if backend == "numpy":
        return run(job, "observe")
    job = run(job, "observe", "specialise")
    with emit.backend(backend, job.facts if job.args is not None else None):
        return run(job, "emit")


def ir(f: Callable) -> str:
    """The printed SSA IR of `f`."""
    return print_function(lower_function(unwrap(f)))


class Adjointed:
    """What `@adjoint` makes of f: f itself when called, with .grad, .value_and_grad,
    .vjp, .jvp, .source and .ir. On a method, `obj.loss` is this bound to obj, so that
    `obj.loss.grad()` differentiates the method with `self` given (a plain function
    attribute would lose it)."""

    calls_wrapped = True  # calling it calls f unchanged: f is inlined where it is called

    def __init__(self, f: Callable, backend: str):
        functools.update_wrapper(self, f)
        self._f, self._backend = f, backend

    def __call__(self, *args, **kwargs):
        return self._f(*args, **kwargs)

    def __get__(self, obj, owner=None):
        return self if obj is None else Adjointed(self._f.__get__(obj, owner), self._backend)

    def grad(self, wrt=0, **kw):
        return grad(self._f, wrt, **{"backend": self._backend, **kw})

    def value_and_grad(self, wrt=0, **kw):
        return value_and_grad(self._f, wrt, **{"backend": self._backend, **kw})

    def vjp(self, *args, wrt=0, **kw):
        return vjp(self._f, *args, wrt=wrt, **kw)

    def jvp(self, wrt=0, **kw):
        return jvp(self._f, wrt, **kw)

    def source(self, wrt=0, **kw):
        """The generated module's source: a str that Jupyter shows highlighted."""
        if kw.get("mode", "reverse") in ("reverse", "grad"):
            kw = {"backend": self._backend, **kw}
        return SourceText(source(self._f, wrt, **kw))

    def ir(self) -> str:
        return ir(self._f)


def adjoint(f: Callable | None = None, *, backend: str = "numpy") -> Callable:
    """Decorator: `f` keeps working as before and gains .grad, .value_and_grad, .vjp, .source.
    `@adjoint(backend="numba")` makes numba the default backend of its .grad and
    .value_and_grad (and of .source's text)."""
    if f is None:
        _backend(backend, "grad")
        return functools.partial(adjoint, backend=backend)
    return Adjointed(f, backend)


def _backend(name: str, mode: str, needs_numba: bool = False) -> str:
    """`name`, checked: "numpy", or "numba" for a gradient (numba installed when the
    gradient is to run, not only be written)."""
    if name not in ("numpy", "numba"):
        raise ValueError(f"unknown backend {name!r}: 'numpy' or 'numba'")
    if name == "numba" and mode not in ("grad", "value_and_grad"):
        raise ValueError(f"backend='numba' compiles grad and value_and_grad; {mode} runs "
                         f"with NumPy")
    if name == "numba" and needs_numba and not numba_backend.available():
        raise ImportError(f"backend='numba' needs numba: {numba_backend.INSTALL_HINT}")
    return name


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "source", "ir", "memory", "adjoint"]
