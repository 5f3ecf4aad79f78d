"""The numba backend: run a generated module's functions compiled by numba.

The emitter writes the module for numba (`emit.backend("numba")`): each function is
decorated with `@numba.njit`, reverse loops run an index down, batched tapes are
stacked by a loop. numba compiles a function on its first call. What it cannot
compile (a runtime helper, an `axis=` numba does not take, a list holding two
types) runs as the same function in Python and NumPy, the function's own
`py_func`: per function, with a one-line warning that says why. So does a function
whose machine code raises where NumPy does not (a float divided by 0.0 is inf in
NumPy, ZeroDivisionError in numba): NumPy runs the call again, and an error it raises
too is f's own, raised as NumPy raises it, numba kept.

numba does not run the module's text exactly as Python would, and three of its
differences give another number, silently; `compiled` closes each:
- numba reads a global array (the user's `W` or `cfg.W`, a closure's cell, `self_w`)
  once, when it compiles, and keeps it as a constant, in its disk cache too: an array
  updated in place (a training step) or rebound was never seen. numba compiles the
  function with each such global as one more parameter, which the Python wrapper
  reads from the module on every call (the file's text is unchanged: as Python, it
  reads them then). A function calling another numba function of the module that
  reads one runs as Python (no wrapper stands between them).
- an int to an int power is an int in numba (2 ** -1 is 0) where Python's is a float
  for a negative exponent: a `**` or `pow` whose exponent is not a number >= 0 is
  compiled as `power(a, b)`, which refuses two ints, and the function runs as Python.
- numba computes with int8 ... int32 and unsigned ints as int64 (uint64 with an int
  as float64), where NumPy keeps their type and wraps around: a uint8 array's `k - 5`
  is -3 in numba, 253 in NumPy. A call given such an array or scalar (or a global
  holding one), or a function that makes one (dtype=np.uint8), runs as Python.
NumPy's bools are not covered: np.True_ + np.True_ is True in NumPy, 2 in numba.
"""
from __future__ import annotations

import ast
import inspect
import re
import types
import warnings

import numpy as np

_warned: dict[str, set] = {}  # module -> the functions it said it would not compile

INSTALL_HINT = "pip install 'adjoint[numba]' (or pip install numba)"


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _dispatchers(module: types.ModuleType) -> dict:
    import numba.core.registry
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, numba.core.registry.CPUDispatcher)}


def why(error: Exception) -> str:
    """The numba error in one line: what it could not type, and where in the module."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if INT_POWER in text:  # power's refusal, under numba's list of the overloads it tried
        lines = [INT_POWER] + [line for line in lines if line.startswith("File \"")]
    what = next((line for line in lines if not line.startswith(("Failed in ", "During:"))),
                lines[0] if lines else type(error).__name__)
    from numba.core.errors import NumbaError
    if not isinstance(error, NumbaError):
        what = f"numba raised {type(error).__name__}: {what}"
    where = next((m for m in (re.match(r'File "(.+)", line (\d+)', line) for line in lines)
                  if m), None)
    if where is not None:
        what += f" (at {where.group(1).rsplit('/', 1)[-1]}, line {where.group(2)})"
    return what


# helpers pasted into numba modules whose Python text is numba's form, not NumPy's: run
# as Python (numba refused the list: int and float numbers, or strs of two lengths), the
# pasted `stack` would give every element the first one's dtype, where np.array widens
def _array(xs):
    return np.array(xs)


_NUMPY_FORMS = {"stack": _array}


def compiled(module: types.ModuleType, name: str):
    """The module's function `name`, compiled by numba on its first call, or run as
    Python and NumPy code when numba cannot compile it (or would compute another
    number: see the module's docstring)."""
    from numba.core.errors import NumbaError
    _overload_helpers()
    dispatcher = getattr(module, name)
    refused = getattr(module, "_numba_refused", {})
    if name in refused and name not in _warned.setdefault(module.__name__, set()):
        _warned[module.__name__].add(name)
        warnings.warn(f"adjoint: numba does not compile {name}, running it with NumPy: "
                      f"{refused[name]}", RuntimeWarning, stacklevel=_callers_level())
    if not _dispatchers(module).get(name):  # fallen back already, or not numba's
        return dispatcher
    py = _NUMPY_FORMS.get(name, dispatcher.py_func)
    fast, given = for_numba(dispatcher)
    n, defaults = py.__code__.co_argcount, py.__defaults__ or ()
    namespace = vars(module)
    running = [None]  # None until the first call has looked at its arguments

    def full(args):
        """The arguments numba's function takes: all of the function's own, then the
        globals numba would keep as constants, read now (see for_numba)."""
        if len(args) < n:
            args = args + defaults[len(defaults) - (n - len(args)):]
        return args + tuple(_value(namespace, g) for g in given)

    def call(*args):
        if running[0] is None:
            refuse = given if fast is None else narrow_ints(
                args, [_value(namespace, g) for g in given])
            if not refuse:
                try:  # compiled apart from running: only numba's failure falls back
                    fast.compile(tuple(fast.typeof_pyval(a) for a in full(args)))
                except Exception as e:  # noqa: BLE001 - numba's typing crashes too
                    refuse = e
            if refuse:
                fall_back(module, name, dispatcher, refuse)
            running[0] = py if refuse else fast
        if running[0] is py:
            return py(*args)
        try:
            return fast(*full(args))  # as compiled: an omitted default is another type
        except NumbaError as e:  # compiling for new types: nothing ran yet
            failed = e
        except Exception as e:  # noqa: BLE001 - NumPy's run below tells whose error it is
            failed = RanError(e)
        # NumPy runs it again from its start (the generated code writes into nothing it
        # was given), outside the except: an error f raises is raised again, as NumPy
        # raises it; only an error NumPy does not raise was numba's, and numba's no more
        result = py(*args)
        fall_back(module, name, dispatcher, failed)
        running[0] = py
        return result

    call.__name__ = call.__qualname__ = name
    call.__wrapped__ = py
    return call


def _is_data(value) -> bool:
    """A global numba would compile in as a constant (an array, a number, a tuple of
    them), rather than call (a function, a module) or refuse (a list, a dict)."""
    return not (callable(value) or isinstance(value, (types.ModuleType, list, dict, set)))


# modules whose attributes are the library's own (np.pi, np.newaxis), not the user's data
_LIBRARIES = ("numpy", "math", "cmath", "numba", "adjoint", "builtins")


def _globals_read(py) -> tuple[ast.Module, list[str], int]:
    """The function's text (its module's file, with its decorator) parsed, the globals
    it reads (a name, or `module.name` of a module it reads a name of), and its first
    line."""
    lines, first = inspect.getsourcelines(py)
    tree = ast.parse("".join(lines))
    fn = tree.body[0]
    names = [node for node in ast.walk(fn) if isinstance(node, ast.Name)]
    local = {a.arg for a in fn.args.args} | {node.id for node in names
                                             if not isinstance(node.ctx, ast.Load)}
    read = {node.id for node in names if node.id not in local}
    read |= {f"{node.value.id}.{node.attr}" for node in ast.walk(fn)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and
             node.value.id in read}
    return tree, sorted(read), first


def _value(namespace: dict, g: str):
    """The global `g` (a name, or `module.name`) as the module holds it now."""
    if "." in g:
        mod, attr = g.split(".")
        return getattr(namespace[mod], attr, None)
    return namespace.get(g)


def _data_read(py, seen=()) -> list[str]:
    """The data globals `py` reads, itself or through a numba function of its module it
    calls (which numba would compile with its globals as constants)."""
    import numba.core.registry
    _, read, _ = _globals_read(py)
    out = []
    for g in read:
        if g.split(".")[0] not in py.__globals__:
            continue
        value = _value(py.__globals__, g)
        if isinstance(value, numba.core.registry.CPUDispatcher):
            if value.py_func not in seen and _data_read(value.py_func, (*seen, py)):
                out.append(g)
        elif "." in g:  # a user's module's attribute
            module = py.__globals__[g.split(".")[0]]
            if isinstance(module, types.ModuleType) and _is_data(value) and \
                    module.__name__.split(".")[0] not in _LIBRARIES:
                out.append(g)
        elif _is_data(value):
            out.append(g)
    return out


def for_numba(dispatcher):
    """What numba compiles for the module function `dispatcher`: the dispatcher itself,
    or, when the function reads data globals or raises to a variable power, the same
    text, at the same lines of the same file, with those globals as parameters after
    its own (no defaults: the wrapper passes them all; `module.W` is the parameter
    `_module_W`) and `a ** b` as `power(a, b)`. Returns it and the globals it takes;
    None and why, when it calls a numba function of the module that reads data globals
    itself."""
    import numba
    py = dispatcher.py_func
    tree, _, first = _globals_read(py)
    data = _data_read(py)
    given = [g for g in data if _is_data(_value(py.__globals__, g))]
    calls = [g for g in data if g not in given]
    if calls:
        return None, f"it calls {', '.join(calls)}, which numba would compile with " \
                     f"the arrays it reads as constants"
    narrow = _narrow_types(tree, py.__globals__)
    if narrow:
        return None, narrow
    fn = tree.body[0]
    powers = _Powers(py.__globals__)
    powers.visit(fn)
    if not given and not powers.changed:
        return dispatcher, ()
    fn.decorator_list = []
    _Attributes(given).visit(fn)
    fn.args.args += [ast.arg(arg=_param(g)) for g in given]
    fn.args.defaults = []
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, first - 1)
    code = compile(tree, py.__code__.co_filename, "exec")
    body = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    # its own globals: the module's, and `power` (the user's module gets no new name)
    scope = dict(py.__globals__, _adjoint_power=_power())
    fresh = types.FunctionType(body, scope, py.__name__)
    fresh.__qualname__, fresh.__doc__ = py.__qualname__, py.__doc__
    cache = type(dispatcher._cache).__name__ != "NullCache"
    return numba.njit(cache=cache, **{k: v for k, v in dispatcher.targetoptions.items()
                                      if k != "nopython"})(fresh), tuple(given)


def _param(g: str) -> str:
    return "_" + g.replace(".", "_") if "." in g else g


class _Attributes(ast.NodeTransformer):
    """`module.W` (of `given`) as the parameter `_module_W`."""

    def __init__(self, given):
        self.given = set(given)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and f"{node.value.id}.{node.attr}" in self.given:
            return ast.copy_location(ast.Name(_param(f"{node.value.id}.{node.attr}"),
                                              ast.Load()), node)
        return self.generic_visit(node)


class _Powers(ast.NodeTransformer):
    """`a ** b` and `pow(a, b)` as `_adjoint_power(a, b)`, unless b is a number >= 0."""
    changed = False

    def __init__(self, globals_: dict):
        self.builtin_pow = "pow" not in globals_

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self.power(node, node.left, node.right) if isinstance(node.op, ast.Pow) \
            else node

    def visit_Call(self, node):
        self.generic_visit(node)
        if self.builtin_pow and isinstance(node.func, ast.Name) and node.func.id == "pow" \
                and len(node.args) == 2 and not node.keywords:
            return self.power(node, *node.args)
        return node

    def power(self, node, a, b):
        if isinstance(b, ast.Constant) and type(b.value) in (int, float) and b.value >= 0:
            return node
        self.changed = True
        return ast.copy_location(ast.Call(ast.Name("_adjoint_power", ast.Load()), [a, b], []),
                                 node)


def _narrow_types(tree: ast.Module, globals_: dict) -> str | None:
    """Where the function makes values of an int type numba computes with as int64
    (np.arange(3, dtype=np.uint8), x.astype('int8')), if it does."""

    def narrow(value) -> bool:
        if isinstance(value, str) and not value.isidentifier():
            return False  # an einsum's subscripts 'ij,jk->' read as a dtype raise SyntaxError
        try:
            with warnings.catch_warnings():  # np.dtype('a') warns in NumPy 2
                warnings.simplefilter("ignore", DeprecationWarning)
                dtype = np.dtype(value)
        except (TypeError, ValueError, SyntaxError):
            return False
        return dtype.kind in "iu" and dtype != np.int64

    for node in ast.walk(tree.body[0]):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            value = globals_.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                globals_.get(node.value.id) is np:
            value = getattr(np, node.attr, None)
        elif isinstance(node, ast.Call):  # np.asarray(a, 'u1'), dtype='int8'
            strings = [a.value for a in node.args + [k.value for k in node.keywords]
                       if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            value = next((v for v in strings if narrow(v)), None)
        else:
            continue
        if (isinstance(value, str) or isinstance(value, type) and issubclass(
                value, np.generic) or isinstance(value, np.dtype)) and narrow(value):
            return (f"it makes {np.dtype(value)} values (line {node.lineno}): NumPy "
                    f"computes in {np.dtype(value)} and wraps around, numba in int64")
    return None


INT_POWER = "numba's int ** int is an int (2 ** -1 is 0), Python's a float"
_overloaded = []


def power(a, b):
    """a ** b; numba refuses to compile it for two ints (a negative exponent gives a
    float in Python, 0 in numba), and the function then runs as Python."""
    return a ** b


def _power():
    if not _overloaded:
        from numba.core import types as nt
        from numba.core.errors import TypingError
        from numba.extending import overload

        @overload(power)
        def power_numba(a, b):
            if isinstance(a, (nt.Integer, nt.Boolean)) and isinstance(b, (nt.Integer,
                                                                         nt.Boolean)):
                raise TypingError(INT_POWER)
            return lambda a, b: a ** b

        _overloaded.append(power_numba)
    return power


_helpers_overloaded = []


def _overload_helpers() -> None:
    """numba's forms of the runtime helpers a generated module imports that numba can
    compile: save and written at a basic index (a fancy one is refused: the function
    runs with NumPy), private of an array or a number, unbroadcast of an array to a
    float or to an array."""
    if _helpers_overloaded:
        return
    import numba
    import numpy as np
    from numba.core import types as nt
    from numba.core.errors import TypingError
    from numba.extending import overload

    from adjoint import runtime

    def saved(x, index, what):
        parts = index.types if isinstance(index, nt.BaseTuple) else (index,)
        if not isinstance(x, nt.Array) or any(isinstance(p, (nt.Array, nt.List, nt.Sequence))
                                              for p in parts):
            raise TypingError(f"adjoint's {what}() of {x} at {index}: NumPy's only")
        if len(parts) == x.ndim and all(isinstance(p, nt.Integer) for p in parts):
            return lambda x, index: x[index]  # a number
        return lambda x, index: x[index].copy()

    overload(runtime.save)(lambda x, index: saved(x, index, "save"))
    overload(runtime.abs_slope)(lambda x: lambda x: np.sign(x))  # abs's slope, as NumPy's
    overload(runtime.larger_share)(lambda x1, x2: lambda x1, x2: (x1 > x2) + 0.5 * (x1 == x2))
    overload(runtime.tie_weights)(lambda w, x, tied: lambda w, x, tied: w)  # its value is w

    @overload(runtime.private)
    def private(x):
        if isinstance(x, nt.Array):
            return lambda x: x.copy()
        if isinstance(x, nt.Number):
            return lambda x: x
        raise TypingError(f"adjoint's private() of {x}: NumPy's only")

    @overload(runtime.written)
    def written(g, index):
        # with no fancy index, no position is written twice: written() is save()
        saved(g, index, "written")
        return lambda g, index: runtime.save(g, index)

    @overload(runtime.unbroadcast)
    def unbroadcast(g, x):
        if isinstance(x, nt.Float) and isinstance(g, (nt.Float, nt.Integer)):
            return lambda g, x: g
        if isinstance(x, nt.Float) and isinstance(g, nt.Array):
            return lambda g, x: np.sum(g)  # NumPy's gives float(total)
        if not (isinstance(x, nt.Array) and isinstance(g, nt.Array)) or x.ndim > g.ndim:
            raise TypingError(f"adjoint's unbroadcast() of {g} to {x}: NumPy's only")
        lead = g.ndim - x.ndim

        @numba.njit
        def summed(g, x):
            """g summed over its leading axes and where x has length 1."""
            flat = np.ascontiguousarray(g).ravel()
            out = np.zeros(x.size, g.dtype)
            for k in range(flat.size):
                rest, at, stride = k, 0, 1
                for d in range(g.ndim - 1, lead - 1, -1):
                    i, rest, n = rest % g.shape[d], rest // g.shape[d], x.shape[d - lead]
                    if n != 1:
                        if n != g.shape[d]:
                            raise ValueError("unbroadcast: shapes do not broadcast")
                        at += i * stride
                    stride *= n
                out[at] += flat[k]
            return out.reshape(x.shape)

        if lead:
            return lambda g, x: summed(g, x)
        return lambda g, x: g if g.shape == x.shape else summed(g, x)

    _helpers_overloaded.append(unbroadcast)


def narrow_ints(args, globals_) -> str | None:
    """Why NumPy could compute another number than numba on these values: an array or
    NumPy scalar of an int type other than int64 (NumPy keeps int8 ... uint64 and wraps
    around, numba computes in int64 or float64), or a 0-d array. None when there is
    none."""
    import numpy as np
    todo = list(args) + list(globals_)
    while todo:
        a = todo.pop()
        if isinstance(a, (tuple, list)):
            todo.extend(a)
        elif isinstance(a, dict):
            todo.extend(a.values())
        elif isinstance(a, np.ndarray) and a.ndim == 0:
            # the generated code reads it as NumPy does (x * 2.0 a float), numba not
            return "a 0-d array: numba reads it as an array, NumPy's arithmetic as a number"
        elif isinstance(a, (np.ndarray, np.generic)) and a.dtype.kind in "iu" and \
                a.dtype != np.int64:
            what = "array" if isinstance(a, np.ndarray) else "number"
            return (f"{'an' if a.dtype.name[0] == 'i' else 'a'} {a.dtype} {what}: NumPy "
                    f"computes in {a.dtype} and wraps around, numba in int64")
    return None


class RanError(Exception):
    """An error numba's machine code raised where NumPy's run of the same function does
    not (a reshape of a transpose numba does not do: NotImplementedError)."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def fall_back(module: types.ModuleType, name: str, dispatcher, error) -> None:
    """Run `name` (numba's `dispatcher`) as Python from now on; the functions it calls
    stay numba's, each falling back on its own when its turn comes."""
    reason = error if isinstance(error, str) else why(error)
    verb = "compile"
    if isinstance(error, RanError):
        verb, reason = "run", f"{why(error.error)}, where NumPy raises nothing"
    warnings.warn(f"adjoint: numba cannot {verb} {name}, running it with NumPy: "
                  f"{reason}", RuntimeWarning, stacklevel=_callers_level())
    setattr(module, name, _NUMPY_FORMS.get(name, dispatcher.py_func))  # stack: np.array
    # Python now calls the others: give each its own fallback (a numba caller that was
    # compiled already holds them as they were)
    for other in _dispatchers(module):
        if other != name:
            setattr(module, other, compiled(module, other))


def _callers_level() -> int:
    """The warnings stacklevel, for fall_back's warning, of the first frame outside
    adjoint and its generated modules: the user's call."""
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(2), 2  # fall_back's caller
    while frame is not None and (frame.f_code.co_filename.startswith(root) or frame.f_globals.get(
            "__name__", "").startswith("adjoint_generated.")):
        frame, level = frame.f_back, level + 1
    return level


def check_outside(text: str, fn_name: str, fallback: bool = True) -> str:
    """`text` whose numba function `fn_name` has its entry checks (of kinds and shapes,
    which numba cannot compile) moved into a plain Python function of that
    name, which then calls the compiled one, `fn_name`_compiled: the file never runs on
    arguments it was not made for. With `fallback` (a file that may import adjoint), the
    compiled one runs through `compiled`, so that what numba cannot compile runs with
    NumPy, as adjoint.grad's does."""
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith(f"def {fn_name}(")), None)
    if at is None or not lines[at - 1].startswith("@numba.njit"):
        return text
    wrapped = _checks_outside(lines, at, fn_name)
    entry = f"{fn_name}_compiled" if wrapped is not None else fn_name
    if not fallback:
        return "\n".join(wrapped or lines)
    return "\n".join((wrapped or lines) + [
        "", "", "# what numba cannot compile (a runtime helper, a type) runs with NumPy, per",
        "# function, with a warning that says why (adjoint.codegen.numba_backend.compiled)",
        "from adjoint.codegen import numba_backend as _numba_backend  # noqa: E402",
        f"{entry} = _numba_backend.compiled(_numba_backend.module_of(globals()), {entry!r})",
        ""])


class module_of:
    """A module's globals, as the module `compiled` reads and rebinds (a file may be
    loaded without a place in sys.modules)."""

    def __init__(self, namespace: dict) -> None:
        object.__setattr__(self, "__dict__", namespace)


def _checks_outside(lines: list, at: int, fn_name: str) -> list | None:
    """check_outside's lines, or None where the function checks nothing."""
    end = at
    while not lines[end].rstrip().endswith(":"):  # a signature over several lines
        end += 1
    # the checks are the first statements, after the docstring: `if not (...): raise`
    check = past = end + 1 + lines[end + 1].lstrip().startswith('"""')
    while lines[past].startswith("    if ") and lines[past + 1].startswith("        raise "):
        past += 2
    if past == check:
        return None
    signature = " ".join(line.strip() for line in lines[at:end + 1])
    params = signature[signature.index("(") + 1:signature.rindex(")")]
    names = ", ".join(p.split("=")[0].strip() for p in params.split(",") if p.strip())
    stop = next((i for i in range(end + 1, len(lines))
                 if lines[i] and not lines[i].startswith(" ")), len(lines))
    compiled = f"{fn_name}_compiled"
    given = _user_globals(lines[:at], lines[at:stop])
    wrapper = ["", "", f"def {fn_name}({params}):",
               f'    """Checks the arguments, then runs {compiled}."""', *lines[check:past]]
    if given:  # as compiled() does for adjoint.grad
        wrapper.append(f"    # {', '.join(given)} passed in: numba would compile a global "
                       f"array in as a constant")
        names += ", " + ", ".join(given)
        head = [f"def {compiled}({names}):"]
        body = lines[end + 1:check] + lines[past:stop]
    else:
        head = [lines[at].replace(f"def {fn_name}(", f"def {compiled}(", 1)]
        body = lines[at + 1:check] + lines[past:stop]
    wrapper.append(f"    return {compiled}({names})")
    while body and not body[-1].strip():
        body.pop()
    rest = lines[stop:]
    return lines[:at] + head + body + wrapper + ([""] * 2 + rest if rest else [])


def _user_globals(header: list[str], function: list[str]) -> list[str]:
    """The user's objects (imported from their module, or set on the module) that the
    function's text reads."""
    names = []
    for line in header:
        m = re.match(r"from (\w+)\S* import (.+)", line)
        if m and m.group(1) not in ("adjoint", "numpy", "numba", "math"):
            names += [n.strip() for n in m.group(2).split(",")]
        elif line.startswith("# not importable, set on this module before calling it: "):
            names += [n.strip() for n in line.split(": ", 1)[1].split(",")]
    fn = ast.parse("\n".join(function)).body[0]
    read = {node.id for node in ast.walk(fn) if isinstance(node, ast.Name) and
            isinstance(node.ctx, ast.Load)}
    return [n for n in names if n in read]
