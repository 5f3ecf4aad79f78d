"""Reading a function's source: the gast tree, file positions, and its names.

`parse_function(f)` returns a `Parsed` record whose tree is a gast FunctionDef
with line and column numbers already shifted to the real file, so every error
and every `# line N` comment points at the user's own line.
"""
from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import linecache
from dataclasses import dataclass
from typing import Any, Callable

import gast

from adjoint.errors import SourceError, UnsupportedError
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


def read_attribute(obj, name: str):
    """`obj.name` for an instance attribute (a bound method's `self.W`), recorded like a
    global so the compiled code is checked against `obj.__dict__[name]` on each call."""
    namespace = getattr(obj, "__dict__", None)
    if not isinstance(namespace, dict) or name not in namespace:
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


def unwrap(f: Callable) -> Callable:
    """The plain function behind decorators that keep `__wrapped__` (ours included)."""
    while hasattr(f, "__wrapped__"):
        f = f.__wrapped__
    return f


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


@functools.lru_cache(maxsize=None)
def _parse_cached(func: Callable, code_id: int) -> Parsed:
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
    if func.__name__ == "<lambda>":
        return Parsed(func, _lambda_definition(filename, lines, code), filename, tuple(lines))
    node = _parse_definition(tuple(lines), code.co_firstlineno)
    if node is None:  # not a block that parses on its own: read the whole file
        try:
            node = _parse_file(filename, "".join(lines)).get(code.co_firstlineno)
        except SyntaxError as e:
            raise SourceError(f"cannot parse {filename}: {e.msg}") from None
    if node is None or node.name != func.__name__:
        raise SourceError(f"cannot find the source of {func.__qualname__} in {filename}",
                          hint="the file may have changed since it was imported")
    if isinstance(node, gast.AsyncFunctionDef):
        raise UnsupportedError("async functions cannot be differentiated",
                               Loc(filename, node.lineno, node.col_offset,
                                   lines[node.lineno - 1]), hint="write a plain `def` function")
    return Parsed(func, node, filename, tuple(lines))


def parse_function(func: Callable) -> Parsed:
    func = unwrap(func)
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
