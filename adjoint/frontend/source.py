"""Reading a function's source: the gast tree, file positions, and its names.

`parse_function(f)` returns a `Parsed` record whose tree is a gast FunctionDef
with line and column numbers already shifted to the real file, so every error
and every `# line N` comment points at the user's own line.
"""
from __future__ import annotations

import __future__
import ast
import builtins
import contextlib
import functools
import inspect
import linecache
import types
from dataclasses import dataclass
from typing import Any, Callable

import gast

from adjoint.errors import AdjointError, SourceError, UnsupportedError
from adjoint.ir.core import Loc


# the free names read while lowering, when someone asks (see `recording`)
_reads: list | None = None
ABSENT = object()  # the value recorded for a name that must stay undefined (a builtin)


@contextlib.contextmanager
def recording():
    """Within this block, every free name resolved is recorded as (where, name, value):
    `where` is the function's globals dict (value ABSENT for a builtin: no global may
    hide it) or its closure cell; and every function read, as (None, None, parsed).
    The compiled code depends on them (a float is folded in, a helper inlined)."""
    global _reads
    saved, _reads = _reads, []
    try:
        yield _reads
    finally:
        _reads = saved


class Attributes:
    """A module's or class's attributes read like a namespace."""

    def __init__(self, obj) -> None:
        self.obj = obj

    def get(self, name, default):
        return getattr(self.obj, name, default)


class ClassAttributes(Attributes):
    """A class's attributes as its body holds them (inherited ones too), before
    descriptors run: a classmethod read through the class is a new bound method on each
    read, which would make every check of it fail."""

    def get(self, name, default):
        return inspect.getattr_static(self.obj, name, default)


def read_class_attribute(cls: type, name: str):
    """`cls.name` of a user's class (`cls.scale` in a classmethod), recorded as an
    instance attribute is: the compiled code is stale once the class holds another."""
    value = inspect.getattr_static(cls, name, ABSENT)
    _read(ClassAttributes(cls), name, value)
    return value


def read_attribute(obj, name: str):
    """`obj.name` for an instance attribute (a bound method's `self.W`), recorded like a
    global so the compiled code is checked against `obj.__dict__[name]` on each call.
    A name the instance does not hold (a method) is recorded as absent from it, and as
    what its class holds: an attribute that later shadows the method, or a method
    replaced on the class, makes the code stale."""
    namespace = getattr(obj, "__dict__", None)
    if not isinstance(namespace, dict) or name not in namespace:
        if isinstance(namespace, dict):
            _read(namespace, name, ABSENT)
            read_class_attribute(type(obj), name)
        return False, None
    return _read(namespace, name, namespace[name])


def _read(where, name: str, value):
    if _reads is not None:
        _reads.append((where, name, value))
    return True, value


@dataclass(frozen=True, eq=False)
class Parsed:
    func: Callable
    node: gast.FunctionDef
    filename: str
    lines: tuple[str, ...]  # the whole file, so locations can quote any line

    def loc(self, node) -> Loc:
        line = getattr(node, "lineno", self.node.lineno)
        col = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return Loc(self.filename, line, col, text.rstrip("\n"), self.node.name)

    def lookup(self, name: str) -> tuple[bool, Any]:
        """Resolve a free name as Python would: closure, module globals, builtins."""
        code = self.func.__code__
        if _reads is not None:
            _reads.append((None, None, self))
        if name in code.co_freevars and self.func.__closure__:
            cell = self.func.__closure__[code.co_freevars.index(name)]
            try:
                return _read(cell, name, cell.cell_contents)
            except ValueError:  # empty cell: the variable is not assigned yet
                return False, None
        if name in self.func.__globals__:
            return _read(self.func.__globals__, name, self.func.__globals__[name])
        if hasattr(builtins, name):
            _read(self.func.__globals__, name, ABSENT)  # only as long as no global hides it
            return True, getattr(builtins, name)
        return False, None


# wrappers that call the function they wrap and nothing else: adjoint's own (the
# @adjoint decorator, checkpoint, a numba fallback), NumPy's dispatch, a jit
_TRANSPARENT = ("adjoint", "numpy", "scipy", "numba", "jax", "torch")
_CACHE_TYPE = getattr(functools, "_lru_cache_wrapper", None)  # functools.lru_cache, cache


def _defined_in(f) -> str:
    """The module whose code `f` runs: a function's globals (functools.wraps copies
    `__module__`, not `__globals__`), else the class of a callable object."""
    namespace = getattr(f, "__globals__", None)
    if isinstance(namespace, dict):
        return namespace.get("__name__") or ""
    return type(f).__module__ or ""


def _declared_transparent(f) -> bool:
    """A wrapper that only calls what it wraps (counting, logging) may say so with
    `wrapper.__adjoint_transparent__ = wrapped`. The value must be the wrapped object
    itself: functools.wraps copies a wrapper's __dict__ (the mark included) onto any
    decorator applied over it, and that copy names another object."""
    namespace = getattr(f, "__dict__", None)
    return isinstance(namespace, dict) and \
        namespace.get("__adjoint_transparent__", None) is f.__wrapped__


def unwrap(f: Callable) -> Callable:
    """The plain function behind the wrappers known to call it unchanged (ours, a
    cache, NumPy's dispatch). Any other wrapper that keeps `__wrapped__` (a user's
    decorator made with functools.wraps, singledispatch) computes something of its
    own: differentiating what it wraps would be silently wrong, so it is refused."""
    call = getattr(type(f), "__call__", None)
    if inspect.isfunction(call) and not isinstance(f, (type, functools.partial)) and \
            type(f).__module__.split(".")[0] not in ("adjoint", "numpy", "functools"):
        return unwrap(f.__call__)  # a callable object (a model): its __call__, bound
    if inspect.ismethod(f):  # a bound method forwards `__wrapped__` from its function
        plain = unwrap(f.__func__)
        return f if plain is f.__func__ else type(f)(plain, f.__self__)
    layer = 0
    while hasattr(f, "__wrapped__"):
        if not ((_CACHE_TYPE is not None and isinstance(f, _CACHE_TYPE)) or
                _defined_in(f).split(".")[0] in _TRANSPARENT or _declared_transparent(f)):
            _refuse_wrapper(f, layer)
        f, layer = f.__wrapped__, layer + 1
    return f


def _refuse_wrapper(wrapper, layer: int):
    """Raise at the decorator that made `wrapper` (the `layer`-th around the def, when
    every decorator there wraps), else at the def, else without a place."""
    inner, total = wrapper, layer  # total: the wrappers around the def
    while hasattr(inner, "__wrapped__"):
        inner, total = inner.__wrapped__, total + 1
    name = getattr(inner, "__name__", None) or repr(inner)
    loc = None
    if inspect.isfunction(inner):
        try:
            parsed = _parse_cached(inner, id(inner.__code__))
            decorators = parsed.node.decorator_list
            loc = parsed.loc(decorators[layer] if len(decorators) == total else parsed.node)
        except AdjointError:
            pass
    code = getattr(wrapper, "__code__", None)
    made_by = (f"{_defined_in(wrapper)}.{getattr(code, 'co_qualname', code.co_name)}"
               if code is not None else f"a {type(wrapper).__module__}."
               f"{type(wrapper).__qualname__} object")
    raise UnsupportedError(
        f"`{name}` is wrapped by a decorator ({made_by}) that adjoint "
        f"cannot see through: the derivative would be that of the undecorated `{name}`",
        loc, hint=f"differentiate the undecorated function (inner = {name}.__wrapped__) "
                  f"and write what the decorator does explicitly, e.g. "
                  f"`def {name}_scaled(x): return 2.0 * inner(x)`; a decorator that only "
                  f"calls it (counting, logging) can say so: "
                  f"`wrapper.__adjoint_transparent__ = wrapped`")


@functools.lru_cache(maxsize=None)
def _parse_file(filename: str, text: str) -> dict[int, gast.FunctionDef]:
    """Every function definition in a source file, by its first line (decorators
    included, as `co_firstlineno` counts): one parse serves all its functions."""
    module = gast.parse(text)
    out = {}
    for node in gast.walk(module):
        if isinstance(node, (gast.FunctionDef, gast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out.setdefault(first, node)
    return out


def _lambda_definition(filename: str, lines: list, code) -> gast.FunctionDef:
    """`loss = lambda w: ...` read as the `def loss(w): return ...` it stands for, with
    the lambda's own positions. Found by its line and its parameter names; two lambdas
    that match on one line cannot be told apart, and are refused."""
    params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    module = gast.parse("".join(lines))
    names = {id(n.value): n.targets[0].id for n in gast.walk(module)
             if isinstance(n, gast.Assign) and len(n.targets) == 1
             and isinstance(n.targets[0], gast.Name)}
    found = [n for n in gast.walk(module) if isinstance(n, gast.Lambda)
             and n.lineno == code.co_firstlineno
             and tuple(a.id for a in n.args.args + n.args.kwonlyargs) == params]
    text = lines[code.co_firstlineno - 1] if 0 < code.co_firstlineno <= len(lines) else ""
    if len(found) != 1:
        raise SourceError("cannot tell which lambda on this line is differentiated",
                          Loc(filename, code.co_firstlineno, max(text.find("lambda"), 0),
                              text.rstrip("\n")),
                          hint="define the function with `def`")
    node = found[0]
    return gast.FunctionDef(
        name=names.get(id(node), "anonymous"), args=node.args,
        body=[gast.copy_location(gast.Return(value=node.body), node.body)],
        decorator_list=[], returns=None, type_comment=None,
        **({"type_params": []} if "type_params" in gast.FunctionDef._fields else {}),
        lineno=node.lineno, col_offset=node.col_offset,
        end_lineno=node.end_lineno, end_col_offset=node.end_col_offset)


def _block_at(lines: tuple, first: int) -> list:
    """The lines of the definition at line `first`, by indentation: up to the next line
    that is indented no deeper than the `def`. (A block this cuts short, say by a string
    that spans lines at the margin, fails to parse, and the caller reads the whole file;
    `inspect.getblock` would tokenize, which a new process pays ~10 ms to set up.)"""
    head = lines[first - 1]
    indent = len(head) - len(head.lstrip())
    k = first - 1
    while k < len(lines) and lines[k].lstrip().startswith("@"):
        k += 1  # the decorators
    k += 1  # and the `def` line
    while k < len(lines):
        text = lines[k].strip()
        if text and not text.startswith("#") and len(lines[k]) - len(lines[k].lstrip()) <= indent:
            break
        k += 1
    return list(lines[first - 1:k])


def _parse_definition(lines: tuple, first: int):
    """The definition starting at line `first` (its decorators included), parsed on
    its own: a rule module holds hundreds of templates, and parsing the whole file for
    one costs more than compiling the gradient. Positions are those in the file."""
    try:
        block = _block_at(lines, first)
        indent = len(block[0]) - len(block[0].lstrip())
        if any(line.strip() and not line.startswith(block[0][:indent]) for line in block):
            return None
        node = gast.parse("".join(line[indent:] for line in block)).body[0]
    except (SyntaxError, IndexError):
        return None
    for n in gast.walk(node):
        if getattr(n, "lineno", None) is not None:
            n.lineno += first - 1
            n.col_offset += indent
        if getattr(n, "end_lineno", None) is not None:
            n.end_lineno += first - 1
            n.end_col_offset += indent
    return node if isinstance(node, (gast.FunctionDef, gast.AsyncFunctionDef)) else None


# the compiler flags a code object keeps from `from __future__ import ...` (but not
# nested_scopes': its bit is CO_NESTED, which every nested function has)
_FUTURE = functools.reduce(lambda a, b: a | b, (getattr(__future__, n).compiler_flag
                                                for n in __future__.all_feature_names
                                                if n != "nested_scopes"))


@functools.lru_cache(maxsize=None)
def _compiled_file(filename: str, text: str, flags: int, pytest_module: bool):
    """The code objects the file's text compiles to now, by (name, first line); None
    when it does not compile. (Top-level `await` is allowed: a notebook cell's text.)
    pytest compiles a test module with its `assert`s rewritten: so is the text here."""
    flags |= getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
    try:
        source = text
        if pytest_module:
            with contextlib.suppress(ImportError):
                from _pytest.assertion.rewrite import rewrite_asserts
                source = ast.parse(text, filename)
                rewrite_asserts(source, text.encode(), filename)
        module = compile(source, filename, "exec", dont_inherit=True, flags=flags)
    except (SyntaxError, ValueError):
        return None
    out, stack = {}, [module]
    while stack:
        for k in stack.pop().co_consts:
            if isinstance(k, types.CodeType):
                out.setdefault((k.co_name, k.co_firstlineno), []).append(k)
                stack.append(k)
    return out


def _same_code(a, b) -> bool:
    """Whether two code objects run the same instructions on the same constants and
    names (positions aside): nested functions' code compared alike."""
    if (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars) != \
            (b.co_code, b.co_names, b.co_varnames, b.co_freevars, b.co_cellvars) or \
            len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or repr(x) != repr(y):  # repr: -0.0, nan
            return False
    return True


def _check_unchanged(func, filename: str, lines: list, node) -> None:
    """The text read now is what `func` was compiled from: a file edited after its
    module was imported would give the derivative of the new text while `func` runs
    the old code."""
    code = func.__code__
    compiled = _compiled_file(filename, "".join(lines), code.co_flags & _FUTURE,
                              "@pytest_ar" in func.__globals__)
    found = (compiled or {}).get((code.co_name, code.co_firstlineno), ())
    if not any(_same_code(code, k) for k in found):
        line = node.lineno
        raise SourceError(
            f"the source of {func.__qualname__} in {filename} changed since it was "
            f"imported: it no longer matches the code that runs",
            Loc(filename, line, node.col_offset,
                lines[line - 1].rstrip("\n") if 0 < line <= len(lines) else ""),
            hint="reload the module (importlib.reload, or restart the kernel) and "
                 "make the derivative again")


# a set display or comprehension is read as a call of this name on the list of its
# elements: lowering turns it into their tuple, when they are constants
SET_MARKER = "__adjoint_set__"


class _Sets(gast.NodeTransformer):
    def visit_Set(self, node):
        self.generic_visit(node)
        return self.marked(gast.List(elts=node.elts, ctx=gast.Load()), node)

    def visit_SetComp(self, node):
        self.generic_visit(node)
        return self.marked(gast.GeneratorExp(elt=node.elt, generators=node.generators), node)

    @staticmethod
    def marked(arg, node):
        name = gast.Name(id=SET_MARKER, ctx=gast.Load(), annotation=None, type_comment=None)
        call = gast.Call(func=name, args=[arg], keywords=[])
        for n in (arg, name, call):
            gast.copy_location(n, node)
        return call


@functools.lru_cache(maxsize=None)
def _parse_cached(func: Callable, code_id: int) -> Parsed:
    made = getattr(func, "f", None)
    if type(func).__module__.startswith("adjoint.") and inspect.isfunction(made):
        _refuse_derivative(func, made)
    if isinstance(func, functools.partial) or not inspect.isfunction(func):
        kind = type(func).__name__
        raise SourceError(
            f"cannot read the source of {func!r} ({kind})",
            hint="differentiate a Python function defined with `def` in a file; "
                 "builtins and C functions need a derivative rule (adjoint.defvjp)")
    code = func.__code__
    filename = inspect.getsourcefile(func) or code.co_filename
    linecache.checkcache(filename)  # the file may have been edited since it was read
    lines = linecache.getlines(filename, func.__globals__)
    if not lines:
        raise SourceError(
            f"cannot read the source of {func.__qualname__}: no source file",
            hint="functions typed into a REPL or made by exec() have no source file; "
                 "define the function in a .py file")
    # the code object's name, not __name__: a decorator or a factory may rename the
    # function (`loss.__name__ = "my_loss"`), never its code
    if code.co_name == "<lambda>":
        node = _lambda_definition(filename, lines, code)
        _check_unchanged(func, filename, lines, node)
        return Parsed(func, _Sets().visit(node), filename, tuple(lines))
    first = code.co_firstlineno
    node = _parse_definition(tuple(lines), first)
    if node is None:  # not a block that parses on its own: read the whole file
        try:
            node = _parse_file(filename, "".join(lines)).get(first)
        except SyntaxError as e:
            raise SourceError(f"cannot parse {filename}: {e.msg}") from None
    if node is None or node.name != code.co_name:
        text = lines[first - 1].rstrip("\n") if 0 < first <= len(lines) else ""
        raise SourceError(f"cannot find the source of "
                          f"{getattr(code, 'co_qualname', code.co_name)} in {filename}",
                          Loc(filename, first, len(text) - len(text.lstrip()), text),
                          hint="the file may have changed since it was imported: reload "
                               "the module (importlib.reload, or restart the kernel)")
    if isinstance(node, gast.AsyncFunctionDef):
        raise UnsupportedError("async functions cannot be differentiated",
                               Loc(filename, node.lineno, node.col_offset,
                                   lines[node.lineno - 1]), hint="write a plain `def` function")
    _check_unchanged(func, filename, lines, node)
    return Parsed(func, _Sets().visit(node), filename, tuple(lines))


def _refuse_derivative(derivative, f: Callable):
    """A derivative adjoint made of `f` (grad(f), hvp(f), hessian(f)) given to a transform
    that reads source: refused at f's def, with what composes instead."""
    name = getattr(derivative, "__name__", None) or \
        f"{type(derivative).__name__.lower()}({f.__name__})"
    try:
        parsed = _parse_cached(f, id(f.__code__))
        loc = parsed.loc(parsed.node)
    except AdjointError:
        loc = None
    raise SourceError(
        f"`{name}` is a derivative made by adjoint, not a function with source: this "
        f"transform cannot take it", loc,
        hint="compose from the function itself: adjoint.hessian(f) is the Jacobian of its "
             "gradient, adjoint.hvp(f) or adjoint.jvp(adjoint.grad(f)) forward over "
             "reverse, adjoint.grad(adjoint.grad(f)) for f of a scalar, "
             "adjoint.source(f, args=...) the gradient's code")


def unwrap_partial(f: Callable) -> Callable:
    """The function a functools.partial (nested ones too) calls, unwrapped."""
    while isinstance(f, functools.partial):
        f = f.func
    return unwrap(f)


def partial_bindings(p: functools.partial, names: tuple) -> dict:
    """The parameters among `names` (the function's, in order) that partial `p` binds,
    and their values. They are read as a closure's values are: recorded, so that the
    code is made again when one is rebound (p.keywords is a dict anyone may change) or
    when an array bound changes its shape."""
    inner = partial_bindings(p.func, names) if isinstance(p.func, functools.partial) else {}
    # positional arguments fill the parameters in order, up to the first bound by name
    by_name = [i for i, n in enumerate(names) if n in inner and n in _keywords(p.func)]
    free = [n for n in names[:min(by_name, default=len(names))] if n not in inner]
    if len(p.args) > len(free):
        raise UnsupportedError(f"the functools.partial binds {len(p.args)} positional "
                               f"arguments, but the function takes {len(free)}")
    # the tuple itself and the function (partial.__setstate__ swaps them; autoreload
    # swaps a function's __code__, which a guarded function's check sees)
    _read(Attributes(p), "args", p.args)
    _read(Attributes(p), "func", p.func)
    out = dict(inner)
    for name, value in zip(free, p.args):
        out[name] = _read({name: value}, name, value)[1]
    for name, value in p.keywords.items():
        if name not in names:
            raise UnsupportedError(f"the functools.partial binds `{name}`, which is not a "
                                   f"parameter of the function")
        out[name] = _read(p.keywords, name, value)[1]
    return out


def _keywords(f) -> dict:
    """The keyword arguments a (nested) partial binds."""
    return {**_keywords(f.func), **f.keywords} if isinstance(f, functools.partial) else {}


def parse_function(func: Callable) -> Parsed:
    func = unwrap_partial(func)
    if inspect.ismethod(func) and inspect.isfunction(func.__func__):
        func = unwrap(func.__func__)  # a bound method: its function (lowering binds self)
    code = getattr(func, "__code__", None)
    return _parse_cached(func, id(code))


def source_text(func: Callable) -> str:
    """The function's own source text (for hashing into the cache key)."""
    func = unwrap(func)
    try:
        return "".join(inspect.getsourcelines(func)[0])
    except (OSError, TypeError):
        return repr(func)
