"""Higher-order derivatives: transforms composed on the IR.

Both transforms are IR -> IR, so a derivative of a derivative needs no source
round trip: the gradient function's IR is the primal of the next transform.

- `hvp(f)(x, v)` is forward over reverse: the JVP of the gradient along v, one
  gradient's cost times a small constant, never a materialised Hessian. Forward
  mode follows the reverse sweep's tapes with tapes of tangents.
- `grad(grad(f))` of a scalar function of a scalar is the same composition with
  v = 1; each further `grad` adds one more forward transform.
- `hessian(f)` is n HVPs; `jacobian(f)` is m VJPs or n JVPs, whichever is fewer.

A `Derivative` is a list of steps applied to f's IR:
    ("grad", i)   the gradient with respect to parameter i (seed 1.0)
    ("vjp", i)    the same, with the output's cotangent kept as a last parameter
    ("dir", i)    the derivative along parameter i, a scalar (tangent 1.0)
    ("dot", None) the scalar <output, w>, w a new last parameter
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from adjoint import __version__
from adjoint.ad.forward import forward
from adjoint.ad.reverse import Reverse
from adjoint.analysis.shapes import kind_of, observe
from adjoint.driver import HEADER, Bound, check_scalar_output, check_wrt_kinds, \
    extra_arguments, facts_for, global_kinds, globals_namespace, normalize_wrt, origin, \
    origins, placed, refuse_helper_names, user_rules
from adjoint.guards import lower_watched, rule_guards, signature, stale
from adjoint.values import like, tangent_like, turned_complex
from adjoint.ad.checkpoint import apply_policy, first_draw
from adjoint.codegen import load
from adjoint.codegen.emit import Module, emit_function
from adjoint.errors import AdjointError, NonDifferentiableError, RecursionDepthError
from adjoint.floats import as_numpy_would, generated_file, numpy_floats
from adjoint.rules.registry import prim_of
from adjoint.frontend.lower import FOR_DEPTH, Length
from adjoint.frontend.source import unwrap
from adjoint.ir.core import Block, Call, Const, For, Function, Value, map_blocks, \
    map_operands, walk_ops
from adjoint.ir.printer import print_function
from adjoint.ir.verify import verify
from adjoint.passes.algebra import fold_constants
from adjoint.passes import pipeline
from adjoint.passes.pipeline import optimize


def bind(fn: Function, values: dict) -> Function:
    """`fn` with some parameters replaced by constants."""
    consts = {p: Const(v) for p, v in values.items()}

    def sub(o):
        return consts.get(o, o) if isinstance(o, Value) else o

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(map_operands(map_blocks(op, block), sub) for op in b.ops),
                       results=tuple(sub(o) for o in b.results))

    keep = [k for k, p in enumerate(fn.params) if p not in consts]
    names = tuple(fn.param_names[k] for k in keep) if fn.param_names else ()
    return replace(fn, params=tuple(fn.params[k] for k in keep), param_names=names,
                   body=block(fn.body))


def pick(fn: Function, index: int) -> Function:
    """`fn` returning only its result number `index`."""
    return replace(fn, body=replace(fn.body, results=(fn.body.results[index],)))


def without_checkpoints(fn: Function) -> Function:
    """Higher orders store everything: strip the checkpoint marks (same values)."""
    def block(b: Block) -> Block:
        return replace(b, ops=tuple(
            replace(map_blocks(op, block), checkpoint=None) if isinstance(op, For)
            else map_blocks(op, block) for op in b.ops))
    return replace(fn, body=block(fn.body))


def _scalar_out(ir: Function, facts, what: str) -> None:
    # nothing returned, a non-number, a tuple or list: as grad refuses them (an HVP of a
    # function returning None was zeros)
    check_scalar_output(ir, facts, what)
    outs = ir.body.results
    k = facts.kind(outs[0]) if len(outs) == 1 else None
    if len(outs) != 1 or (k is not None and k.shape not in ((), (1,))):
        raise AdjointError(f"{what} needs a scalar-valued function", ir.loc,
                           "use adjoint.hvp, adjoint.hessian or adjoint.jacobian for arrays")


def apply(step, ir: Function, facts, args) -> Function:
    kind, i = step
    if i is not None:
        i = normalize_wrt(i, ir)[0]  # a name, or a position from the end
    if kind in ("grad", "vjp"):
        check_wrt_kinds(ir, (i,), args)  # a dict or an int: located, not a crash inside
        if kind == "grad":
            _scalar_out(ir, facts, "a gradient")
        if any(isinstance(op, Call) and op.prim.style == "tape_new" for op in walk_ops(ir.body)):
            raise NonDifferentiableError(
                "a gradient of a function with loops cannot be differentiated in reverse mode "
                "again", ir.loc, "use forward over reverse: adjoint.hvp, or grad of a scalar "
                "derivative (grad(grad(f)) for f of a scalar)")
        g, _, _ = Reverse(ir, (i,), facts).run(f"{ir.name}_grad")
        out = g if kind == "vjp" else bind(g, {g.params[-1]: 1.0})
        return optimize(out, final=False)
    if kind == "dir":
        check_wrt_kinds(ir, (i,), args)
        k = kind_of(args[i])
        if k.type != "float":
            what = "an array" if k.type == "ndarray" else f"a {type(args[i]).__name__}"
            raise AdjointError(f"a second gradient with respect to `{ir.param_names[i]}`, "
                               f"{what}, is a Hessian", ir.loc,
                               "use adjoint.hessian(f) or adjoint.hvp(f)(x, v)")
        _scalar_out(ir, facts, "a derivative of a derivative")
        jvp = forward(ir, (i,), facts, f"{ir.name}_dir")
        return optimize(pick(bind(jvp, {jvp.params[-1]: 1.0}), 1), final=False)
    if kind == "dot":
        w, prod, total = Value("w"), Value("_t"), Value("_t")
        out = ir.body.results[0]
        ops = ir.body.ops + (Call(prim_of(np.multiply), (out, w), prod),
                             Call(prim_of(np.sum), (prod,), total))
        return replace(ir, params=ir.params + (w,), param_names=ir.param_names + ("w",),
                       body=Block((), ops, (total,)))
    raise ValueError(step)


def depth_arguments(f, args, kwargs=None) -> dict:
    """What may fix the depth of a recursion in f, by parameter name: the ints (and
    bools) of this call, and the lengths of its lists, tuples and arrays (Length), which
    lowering folds `len` of. A derivative lowered with them is keyed on all of them."""
    import inspect
    bound = inspect.signature(f).bind(*args, **(kwargs or {}))
    bound.apply_defaults()
    kinds = inspect.signature(f).parameters
    return depth_values((k, v) for k, v in bound.arguments.items() if kinds[k].kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))


def depth_values(named) -> dict:
    """Of (name, argument) pairs: the ints as lowering folds them, and the lengths of
    lists, tuples and arrays of one dimension or more (NumPy's, or any library's whose
    first axis has a known length: dask's, the array API's); under FOR_DEPTH, that
    lowering follows lengths (of lists made in f too)."""
    values = {FOR_DEPTH: True}
    for name, v in named:
        shape = getattr(v, "shape", None) if not isinstance(v, np.generic) else None
        if is_int(v):
            values[name] = as_int(v)
        elif isinstance(v, (list, tuple)):
            values[name] = Length(len(v))
        elif isinstance(shape, tuple) and shape and isinstance(shape[0], (int, np.integer)):
            values[name] = Length(shape[0])
    return values


def is_int(v) -> bool:
    """An int or bool, NumPy's too (np.int64 from np.arange): keyed by its value."""
    return type(v) in (int, bool) or isinstance(v, (np.integer, np.bool_))


def as_int(v):
    """`v` as the Python int or bool that lowering folds (`n == 0` of an np.int64)."""
    return v.item() if isinstance(v, np.generic) else v


def lower_by_depth(f, constants: Callable[[], dict], extras=None):
    """`lower_watched(f)`; for f that calls itself to a depth its int arguments fix
    (`def power(x, n): return 1.0 if n == 0 else x * power(x, n - 1)`), f lowered with
    the ints `constants()` gives as constants, so that the recursion unrolls (the
    signature keys a compiled derivative on the values of ints). `extras`: for
    f(x, *rest), how many arguments rest holds (driver.extra_arguments)."""
    try:
        return lower_watched(f, extras or None)
    except RecursionDepthError:
        return lower_watched(f, {**constants(), **(extras or {})})


def observed(ir, args):
    """What running a derivative's `ir` on `args` sees; with NumPy's floats where Python's
    divide by zero (the derivative is infinite there, and runs so: floats.as_numpy_would)."""
    try:
        return observe(ir, args)
    except ZeroDivisionError:
        return observe(ir, numpy_floats(args))


class Derivative:
    """A derivative of `f` by a chain of transform steps; compiled per argument signature."""

    def __init__(self, f, steps: tuple, extra: int = 0, name: str = "d", cache_dir=None):
        self.f = unwrap(f)
        self.cache_dir = cache_dir  # where the module is written (None: the default)
        self.steps = steps
        self.extra = extra  # arguments after f's own (a tangent, a cotangent)
        self.name = name
        self.compiled: dict = {}
        self.sources: dict = {}
        self.guards: tuple = ()  # what lowering f read: a change drops every specialisation
        self.lowered = None  # f as lowered, for its parameters (full_args)
        self.lowered_guards: tuple = ()
        self.extras: dict = {}  # for f(x, *rest): the lowering's number of extra arguments

    def full_args(self, args, kwargs=None) -> tuple:
        """The arguments, one per parameter of f as lowered (keyword-only ones too), with
        f's keywords placed and defaults filled in, as Python would. A vjp or dot step
        adds a parameter after f's own: the call passes it last, after f's positional
        arguments (keywords are f's, and are not differentiated)."""
        n_extra = sum(kind in ("vjp", "dot") for kind, _ in self.steps)
        own, extra = args[:len(args) - n_extra], args[len(args) - n_extra:]
        # (placed arguments are flat: rest's were counted when they were placed)
        extras = self.extras if type(args) is Bound else extra_arguments(self.f, own, kwargs)
        if self.lowered is None or stale(self.lowered_guards) or extras != self.extras:
            # only the parameters are read here: any depth's lowering has them all
            self.extras = extras
            self.lowered, self.lowered_guards = lower_by_depth(
                self.f, lambda: depth_arguments(self.f, own, kwargs), extras)
        if type(args) is Bound:
            return args
        return Bound(placed(self.f, self.lowered, own, kwargs) + tuple(extra))

    def source(self, *args) -> str:
        """The generated module of this derivative for `args`' signature."""
        args = self.full_args(args)
        self.compile(args)
        return self.sources[signature(args)]

    def ir_for(self, args):
        if self.lowered is None:
            self.full_args(args)
        names = self.lowered.param_names  # args are full: one per parameter, in order
        lowered, self.guards = lower_by_depth(self.f, lambda: depth_values(zip(names, args)),
                                              self.extras)
        self.guards += rule_guards(lowered)
        self.base_name = lowered.name  # f's own name, or the name a lambda was given
        ir = optimize(without_checkpoints(apply_policy(lowered, None)), final=False)
        facts = facts_for(lowered, ir, tuple(args[:len(ir.params)]))
        for step in self.steps:
            ir = apply(step, ir, facts, args)
            n = len(ir.params)  # a vjp step adds the cotangent: taken from the call
            step_args = tuple(args[:n]) + (1.0,) * (n - len(args))
            facts = observed(ir, step_args).infer(ir)
        return ir, facts

    def spec(self) -> tuple:
        """What, besides f and the arguments, makes this derivative what it is."""
        return (self.name, self.steps)

    def compile(self, args):
        if self.guards and stale(self.guards):
            self.compiled, self.sources = {}, {}
        sig = signature(args)
        fn = self.compiled.get(sig)
        if fn is None:
            ir, facts = self.ir_for(args)
            fn = optimize(pipeline.run_pass(fold_constants, self.finish(ir, facts, args), facts))
            ir = replace(fn, name=f"{self.base_name}_{self.name}")
            verify(ir)
            module = Module()
            text = emit_function(ir, module, {}, {}, ir.loc.filename if ir.loc else None)
            refuse_helper_names([ir], module, ir.loc)
            # as api.Transform's key: equal text may import the globals of another module
            # (`from m1 import W` serving m2's f) or quote another file's lines
            where = sorted({(op.loc.filename, op.loc.line, op.loc.text)
                            for op in walk_ops(ir.body) if op.loc is not None})
            digest = load.key(__version__, print_function(ir), sig, self.spec(),
                              origins(ir), origin(self.f), where, global_kinds(ir), user_rules(ir),
                              pipeline.setting())
            head = HEADER.format(version=__version__, origin=origin(self.f), digest=digest[:12])
            source = "\n".join([head] + module.header() + ["", ""]) + text + "\n"
            path = load.module_path(ir.name, digest, self.cache_dir)
            fn = getattr(load.load(path, lambda: source, globals_namespace(ir)), ir.name)
            self.compiled[sig], self.sources[sig] = fn, source
        return fn

    def finish(self, ir, facts, args):
        return ir

    def __call__(self, *args, **kwargs):
        args = self.full_args(args, kwargs)
        out = self.run(args)
        if isinstance(out, (complex, np.complexfloating)) and not any(
                np.iscomplexobj(a) for a in args):
            raise turned_complex(self.lowered.loc)
        return out

    def run(self, args, extra=()):
        """The compiled derivative on `args` and `extra`, with NumPy's floats where
        Python's raise on a division by zero (floats.as_numpy_would)."""
        return as_numpy_would(lambda args, extra: self.compile(args)(*args, *extra), args,
                              extra, self.f, lambda: self.lowered,
                              lambda args: generated_file(self.compile(args)))


class HVP(Derivative):
    """Forward over reverse: the JVP of the gradient along v, keeping v a parameter."""

    def __init__(self, f, wrt, direction=None, cache_dir=None):
        super().__init__(f, (), extra=1, name="hvp", cache_dir=cache_dir)
        self.wrt_spec = wrt
        self.direction = wrt if direction is None else direction  # the tangent's argument(s)
        self.wrt: tuple = ()    # both as parameter positions, once f is lowered
        self.along: tuple = ()
        self.names, self.loc = (), None  # f's parameter names and place, for errors
        self.draw = None  # a call of f that may draw random numbers (see Hessian)

    def spec(self) -> tuple:
        return (self.name, self.wrt_spec, self.direction)

    def finish(self, ir, facts, args):
        self.wrt, self.along = normalize_wrt(self.wrt_spec, ir), normalize_wrt(self.direction, ir)
        self.names, self.loc = ir.param_names, ir.loc
        self.draw = first_draw(ir.body)
        check_wrt_kinds(ir, self.wrt + self.along, args)
        _scalar_out(ir, facts, "a Hessian-vector product")
        g, _, _ = Reverse(ir, self.wrt, facts).run(f"{ir.name}_grad")
        g = optimize(bind(g, {g.params[-1]: 1.0}), final=False)
        gfacts = observed(g, tuple(args)).infer(g)
        return optimize(pick(forward(g, self.along, gfacts), 1))

    def source(self, *args) -> str:
        """The generated module for `args` as given to the call (v last)."""
        return super().source(*args[:-1])

    def __call__(self, *args, **kwargs):
        if not args:
            raise TypeError("hvp: missing the direction v (the last argument)")
        *args, v = args
        return self.along_placed(self.full_args(args, kwargs), v)

    def along_placed(self, args, v):
        """The call, its arguments placed already (full_args: the Hessian's rows)."""
        self.compile(args)  # f lowered: self.along and self.names are set
        if isinstance(self.direction, tuple):
            if not isinstance(v, (tuple, list)) or len(v) != len(self.along):
                raise TypeError(f"hvp along {self.direction!r} takes a tuple of "
                                f"{len(self.along)} directions")
            vs = tuple(v)
        else:
            vs = (v,)
        out = self.run(args, tuple(tangent_like(t, args[i], self.names[i])
                                   for t, i in zip(vs, self.along)))
        try:
            if isinstance(self.wrt_spec, tuple):
                return tuple(like(o, args[i]) for o, i in zip(out, self.wrt))
            return like(out, args[self.wrt[0]])
        except AdjointError as e:  # a value turned complex on this call: at f
            raise e.located(self.loc) from None


def hvp(f, wrt=0, *, cache_dir=None):
    """`hvp(f, wrt)(*args, v)`: the Hessian of scalar f (w.r.t. args[wrt]) times v."""
    return HVP(f, wrt, cache_dir=cache_dir)


class Hessian:
    """The Hessian of scalar f with respect to args[wrt], one HVP per input entry. A list
    of arrays of one shape is taken as their stack. (A class, not a closure: grad of it
    is refused as an object without source, not lowered from this file.)"""

    def __init__(self, f, wrt=0, cache_dir=None):
        self.product = HVP(f, wrt, cache_dir=cache_dir)
        self.f = self.product.f  # what a transform given this names in its refusal

    def __call__(self, *args, **kwargs):
        product = self.product
        args = product.full_args(args, kwargs)  # keywords placed: the calls below are positional
        product.compile(args)  # f lowered: wrt by name or from the end, its kind checked
        i = product.wrt[0]
        if product.draw is not None:
            # each row is an HVP that runs f again: its draws differ from row to row, and
            # no one RNG state covers every source f may draw from (random, np.random,
            # a Generator, an unknown callable)
            draw = product.draw
            raise AdjointError(f"`{draw.prim.name}` may draw other values in each of the "
                               f"Hessian's rows (one HVP each): the rows would be the "
                               f"derivatives of different draws", draw.loc or product.loc,
                               "draw the random numbers outside f and pass them in as an "
                               "argument, then take the Hessian of f for that draw")
        if isinstance(product.wrt_spec, tuple):
            return self._by_argument(args)
        if isinstance(args[i], dict):
            return self._blocks(args, i)
        try:
            x = np.asarray(args[i], dtype=float)
        except (TypeError, ValueError):
            raise AdjointError(f"the Hessian with respect to `{product.names[i]}` (a "
                               f"{type(args[i]).__name__} of several arrays) has no array "
                               f"form", product.loc,
                               "use adjoint.hvp(f)(*args, v), v in the argument's "
                               "structure") from None
        rows = []
        for k in range(x.size):
            e = np.zeros(x.size)
            e[k] = 1.0
            rows.append(np.asarray(product.along_placed(args, e.reshape(x.shape)
                                                        if x.ndim else 1.0)))
        h = np.stack(rows).reshape(x.shape + x.shape) if rows else np.zeros(x.shape + x.shape)
        return float(h) if not x.ndim and isinstance(args[i], float) else h

    def _blocks(self, args, i):
        """The Hessian with respect to a dict of floats and arrays, as JAX gives it: a dict
        of dicts, block [a][b] of shape p[a].shape + p[b].shape. Row r of block [a] is the
        HVP along entry r of p[a] (the Hessian is symmetric). Entries that are not floats
        (an int, a string setting) are constants and have no block."""
        p = args[i]
        nested = next((k for k, v in p.items() if isinstance(v, (dict, list, tuple))), None)
        if nested is not None:
            raise AdjointError(f"the Hessian with respect to `{self.product.names[i]}`, whose "
                               f"entry {nested!r} is a {type(p[nested]).__name__}, has no "
                               f"block form", self.product.loc,
                               "pass a dict of arrays and floats (one level), or use "
                               "adjoint.hvp(f)(*args, v), v in the argument's structure")
        keys = [k for k, v in p.items() if _floating(v)]
        shapes = {k: np.shape(p[k]) for k in keys}
        blocks = {}
        for a in keys:
            rows = []
            for r in range(int(np.prod(shapes[a]))):
                v = {k: np.zeros(np.shape(x)) if _floating(x) else x for k, x in p.items()}
                e = np.zeros(shapes[a]) if shapes[a] else 0.0
                if shapes[a]:
                    e.flat[r] = 1.0
                v[a] = e if shapes[a] else 1.0
                rows.append(self.product.along_placed(args, v))
            blocks[a] = {b: np.stack([np.asarray(row[b], dtype=float) for row in rows]).reshape(
                shapes[a] + shapes[b]) if rows else np.zeros(shapes[a] + shapes[b])
                for b in keys}
        return blocks


    def _by_argument(self, args):
        """The Hessian with respect to several arguments, as JAX gives it: a tuple of
        tuples, block [a][b] of shape args[a].shape + args[b].shape; row r of block [a] is
        the HVP along entry r of args[a] (the Hessian is symmetric)."""
        product = self.product
        xs = []
        for i in product.wrt:
            try:
                xs.append(np.asarray(args[i], dtype=float))
            except (TypeError, ValueError):
                raise AdjointError(f"the Hessian with respect to `{product.names[i]}` (a "
                                   f"{type(args[i]).__name__}) has no array form among "
                                   f"several arguments", product.loc,
                                   "take it with respect to that argument alone, or use "
                                   "adjoint.hvp") from None
        blocks = []
        for a, x in enumerate(xs):
            rows = []
            for r in range(x.size):
                v = [np.zeros(y.shape) if y.ndim else 0.0 for y in xs]
                e = np.zeros(x.shape)
                e.flat[r] = 1.0
                v[a] = e if x.ndim else 1.0
                rows.append(product.along_placed(args, tuple(v)))
            blocks.append(tuple(
                np.stack([np.asarray(row[b], dtype=float) for row in rows]).reshape(
                    x.shape + y.shape) if rows else np.zeros(x.shape + y.shape)
                for b, y in enumerate(xs)))
        return tuple(blocks)


def _floating(v) -> bool:
    return isinstance(v, (float, np.floating)) or \
        isinstance(v, np.ndarray) and v.dtype.kind == "f"


def hessian(f, wrt=0, *, cache_dir=None):
    """The Hessian of scalar f with respect to args[wrt], one HVP per input entry; with
    several (wrt=(0, 1)), a tuple of tuples of blocks, [a][b] of shape a's + b's."""
    return Hessian(f, wrt, cache_dir)


def def_line(f):
    """Where `f` is defined, for an error about the derivative asked of it."""
    from adjoint.frontend.source import parse_function
    try:
        parsed = parse_function(f)
    except AdjointError:
        return None
    return parsed.loc(parsed.node)


def nested(inner, wrt):
    """`grad(g)` where g is itself a gradient (or grad of one): one more step."""
    if not isinstance(inner, Derivative):  # an api.Transform, or its ByDepth
        spec = inner.wrt_spec if isinstance(inner.wrt_spec, tuple) else (inner.wrt_spec,)
        if inner.mode != "grad" or len(spec) != 1:
            raise AdjointError(f"only a gradient with respect to one argument can be "
                               f"differentiated again, not a {inner.mode} with respect to "
                               f"{len(spec)}", def_line(inner.f),
                               "use adjoint.hvp or adjoint.hessian")
        base = Derivative(inner.f, (("grad", spec[0]),), name="grad",
                          cache_dir=inner.cache_dir)
    elif type(inner) is not Derivative or any(k not in ("grad", "dir") for k, _ in inner.steps):
        # an HVP's steps are not its own (it is finished in `finish`): adding one to them
        # would differentiate f, not the product
        raise AdjointError("a Hessian-vector product cannot be differentiated again",
                           def_line(inner.f), "use grad(grad(f)) for f of a scalar, or "
                           "adjoint.hvp of a function that computes the gradient")
    else:
        base = inner
    if not isinstance(wrt, (int, str)):
        raise AdjointError("a second derivative takes wrt=<one argument>",
                           def_line(base.f), "use adjoint.hvp or adjoint.hessian")
    return Derivative(base.f, base.steps + (("dir", wrt),), name=base.name + "2",
                      cache_dir=base.cache_dir)
