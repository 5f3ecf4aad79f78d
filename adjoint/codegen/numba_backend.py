"""The numba backend: run a generated module's functions compiled by numba.

The emitter writes the module for numba (`emit.backend("numba")`): each function is
decorated with `@numba.njit`, reverse loops run an index down, batched tapes are
stacked by a loop. numba compiles a function on its first call. What it cannot
compile (a runtime helper, an `axis=` numba does not take, a list holding two
types) runs as the same function in Python and NumPy, the function's own
`py_func`: per function, with a one-line warning that says why.
"""
from __future__ import annotations

import re
import types
import warnings

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
    what = next((line for line in lines if not line.startswith(("Failed in ", "During:"))),
                lines[0] if lines else type(error).__name__)
    where = next((m for m in (re.match(r'File "(.+)", line (\d+)', line) for line in lines)
                  if m), None)
    if where is not None:
        what += f" (at {where.group(1).rsplit('/', 1)[-1]}, line {where.group(2)})"
    return what


def compiled(module: types.ModuleType, name: str):
    """The module's function `name`, compiled by numba on its first call, or run as
    Python and NumPy code when numba cannot compile it."""
    from numba.core.errors import NumbaError
    dispatcher = getattr(module, name)
    refused = getattr(module, "_numba_refused", {})
    if name in refused and name not in _warned.setdefault(module.__name__, set()):
        _warned[module.__name__].add(name)
        warnings.warn(f"adjoint: numba does not compile {name}, running it with NumPy: "
                      f"{refused[name]}", RuntimeWarning, stacklevel=3)
    if not _dispatchers(module).get(name):  # fallen back already, or not numba's
        return dispatcher
    running = [dispatcher]

    def call(*args):
        try:
            return running[0](*args)
        except NumbaError as e:  # numba compiles before it runs: nothing ran yet
            if running[0] is not dispatcher:
                raise
            fall_back(module, name, dispatcher, e)
            running[0] = dispatcher.py_func
            return running[0](*args)

    call.__name__ = call.__qualname__ = name
    call.__wrapped__ = dispatcher.py_func
    return call


def fall_back(module: types.ModuleType, name: str, dispatcher, error: Exception) -> None:
    """Run `name` (numba's `dispatcher`) as Python from now on; the functions it calls
    stay numba's, each falling back on its own when its turn comes."""
    warnings.warn(f"adjoint: numba cannot compile {name}, running it with NumPy: "
                  f"{why(error)}", RuntimeWarning, stacklevel=4)
    setattr(module, name, dispatcher.py_func)
    # Python now calls the others: give each its own fallback (a numba caller that was
    # compiled already holds them as they were)
    for other in _dispatchers(module):
        if other != name:
            setattr(module, other, compiled(module, other))


def check_outside(text: str, fn_name: str) -> str:
    """`text` whose numba function `fn_name` has its entry check (an assert on kinds
    and shapes, which numba cannot compile) moved into a plain Python function of that
    name, which then calls the compiled one, `fn_name`_compiled: the file never runs on
    arguments it was not made for."""
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith(f"def {fn_name}(")), None)
    if at is None or not lines[at - 1].startswith("@numba.njit"):
        return text
    end = at
    while not lines[end].rstrip().endswith(":"):  # a signature over several lines
        end += 1
    # the check is the first statement, after the docstring
    check = end + 1 + lines[end + 1].lstrip().startswith('"""')
    if not lines[check].startswith("    assert "):
        return text
    signature = " ".join(line.strip() for line in lines[at:end + 1])
    params = signature[signature.index("(") + 1:signature.rindex(")")]
    names = ", ".join(p.split("=")[0].strip() for p in params.split(",") if p.strip())
    stop = next((i for i in range(end + 1, len(lines))
                 if lines[i] and not lines[i].startswith(" ")), len(lines))
    compiled = f"{fn_name}_compiled"
    wrapper = ["", "", f"def {fn_name}({params}):",
               f'    """Checks the arguments, then runs {compiled}."""',
               lines[check], f"    return {compiled}({names})"]
    head = [lines[at].replace(f"def {fn_name}(", f"def {compiled}(", 1)]
    body = lines[at + 1:check] + lines[check + 1:stop]
    while body and not body[-1].strip():
        body.pop()
    rest = lines[stop:]
    return "\n".join(lines[:at] + head + body + wrapper + ([""] * 2 + rest if rest else [""]))
