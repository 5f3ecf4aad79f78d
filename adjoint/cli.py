"""The command line: `adjoint emit`, `ir`, `check`, `memory`, `explain` and `cache`
(also `python -m adjoint`).

    adjoint emit examples/neuron.py:loss --wrt w,b -o grad_loss.py
    adjoint ir examples/neuron.py:loss [--dot | --svg loss.svg] [--grad --wrt w,b --args ...]
    adjoint explain examples/neuron.py:loss --wrt w,b --args "0.5, 1.5, 0.1, 1.0" [--html out.html]
    adjoint memory examples/rnn.py:loss --args "W, xs, h0" --checkpoint 10   # or 64kB
    adjoint check examples/neuron.py:loss --args "0.5, 1.5, 0.1, 1.0" [--wrt w,b] [--exhaustive]
    adjoint cache info | clear

A mistake in the command itself (a missing folder, a wrong number of --args, an
unknown --wrt name, an output that would overwrite the source) is one line on
stderr and exit status 2, as argparse's own errors are.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path

from adjoint.errors import AdjointError


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


def load_function(spec: str):
    """`path/to/file.py:name` -> the function object."""
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise UsageError(f"expected FILE.py:FUNC, got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        module = _import_file(file)
    except ImportError as e:  # the file imports what this folder does not reach
        raise UsageError(f"importing {path}: {type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"{path} has no function {name!r}")
    return fn


def _import_file(file: Path):
    """The module of `file`, under the name its package gives it: mypkg/train.py beside
    mypkg/__init__.py is mypkg.train, imported with the folder above mypkg on sys.path,
    so that its `from mypkg.util import act` or `from .util import act` work and a file
    emitted from it imports mypkg.train. A file outside a package is named by its stem."""
    folder, parts = file.resolve().parent, [file.stem]
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    sys.path.insert(0, str(folder))
    if len(parts) == 1:
        spec = importlib.util.spec_from_file_location(file.stem, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(file.stem, module)
        spec.loader.exec_module(module)
        return module
    name = ".".join(parts)
    module = importlib.import_module(name)
    if Path(module.__file__).resolve() != file.resolve():
        raise UsageError(f"{file} is the module {name}, but `import {name}` imports "
                         f"{module.__file__}")
    return module


def _params(fn) -> list[inspect.Parameter]:
    from adjoint.frontend.source import unwrap
    try:
        return list(inspect.signature(unwrap(fn)).parameters.values())
    except (TypeError, ValueError):  # no signature to check against: the compiler will
        return []


def _wrt(text: str | None, fn):
    """`--wrt` as the API takes it; a name or position that is not a parameter of fn
    is a UsageError."""
    if not text:
        return 0
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--wrt {text!r} names no parameter")
    params = [p for p in _params(fn)
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    items = []
    for p in parts:
        item = int(p) if re.fullmatch(r"-?\d+", p) else p
        if params and (item not in names if isinstance(item, str)
                       else not -len(names) <= item < len(names)):
            raise UsageError(f"--wrt {p}: {fn.__name__} has no parameter "
                             f"{'`' + p + '`' if isinstance(item, str) else 'at position ' + p}"
                             f" (its parameters: {', '.join(names)})")
        items.append(item)
    return tuple(items) if len(items) > 1 else items[0]


def _args(text: str | None, fn=None):
    """`--args` evaluated (numpy as np) among the names of fn's module, so that they can
    name its classes (`[Layer(W, b)]`); with fn, checked against its signature."""
    if not text:
        return None
    import numpy as np
    from adjoint.frontend.source import unwrap
    names = dict(getattr(unwrap(fn), "__globals__", {})) if fn is not None else {}
    try:  # example arguments, given by the user
        value = eval(text, {**names, "np": np, "numpy": np})
    except Exception as e:  # a typo in the expression is the command's mistake
        raise UsageError(f"--args {text!r}: {type(e).__name__}: {e}") from None
    args = value if isinstance(value, tuple) else (value,)
    if fn is not None and _params(fn):
        try:
            inspect.signature(unwrap(fn)).bind(*args)
        except TypeError as e:
            raise UsageError(f"--args gives {len(args)} argument{'s' * (len(args) != 1)} "
                             f"for {fn.__name__}{inspect.signature(unwrap(fn))}: {e}") from None
    return args


def _output(path: str | None, option: str, source: Path | None) -> Path | None:
    """The file an option writes, checked before any work: its folder exists, and it
    is not the source being read (`emit f.py:g -o f.py` would destroy f.py)."""
    if not path:
        return None
    out = Path(path)
    folder = out.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: no such folder: {out.parent}")
    if out.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a file")
    if source is not None and (out.resolve() == source.resolve() or
                               out.exists() and os.path.samefile(out, source)):
        raise UsageError(f"{option} {path} would overwrite the source {source}; "
                         f"choose another file")
    return out


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _checkpoint(text: str):
    """`--checkpoint` as the API's policy: `10` keeps 10 snapshots per loop, `64kB`
    (B, kB, MB, GB; KiB, MiB, GiB) keeps as many as that many bytes hold."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    if match and not unit and "." not in match.group(1) and int(match.group(1)) >= 1:
        return int(match.group(1))
    if match and unit in _UNITS and float(match.group(1)) * _UNITS[unit] >= 1:
        return {"budget": int(float(match.group(1)) * _UNITS[unit])}
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a number of snapshots (an int >= 1, e.g. 10) nor a memory "
        f"budget (e.g. 64kB, 1MB, 4096B, 2MiB)")


def _positive(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _grad_ir(fn, wrt, args, checkpoint):
    """The IR of fn's gradient, optimised, before code generation (as `emit` builds it)."""
    from adjoint.driver import Compilation, extra_arguments, run
    from adjoint.frontend.source import unwrap
    extras = extra_arguments(unwrap(fn), args) if args is not None else {}  # f(x, *rest)
    return run(Compilation(unwrap(fn), wrt, "grad", args, checkpoint, constants=extras),
               last="specialise").functions[0][0]


def _size(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n} bytes ({n / 2**20:.1f} MiB)"


def _cache(action: str) -> int:
    from adjoint.codegen import load
    if action == "info":
        info = load.cache_info()
        cap = load.max_cache_bytes()
        print(f"folder: {info['folder']}\nfiles:  {info['files']}\nbytes:  {_size(info['bytes'])}"
              f"\ncap:    {_size(cap) + ' (ADJOINT_CACHE_MAX_MB)' if cap else 'none'}")
    else:
        gone = load.cache_clear()
        print(f"removed {gone['files']} files ({_size(gone['bytes'])}) from {gone['folder']}")
    return 0


def _parser():
    """The command line: one subcommand per job."""
    from adjoint import __version__
    parser = argparse.ArgumentParser(
        prog="adjoint", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="adjoint: a source-to-source differentiation compiler for Python and "
                    "NumPy.",
        epilog="examples:\n" + "\n".join(__doc__.split("\n\n")[1].splitlines()))
    parser.add_argument("--version", action="version", version=f"adjoint {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print each compiler stage, its time and what it made, to "
                             "stderr (as ADJOINT_VERBOSE=1 does)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    emit = sub.add_parser("emit", help="write the gradient module of FILE.py:FUNC")
    emit.add_argument("target", help="FILE.py:FUNC")
    emit.add_argument("--wrt", help="comma-separated parameter names or positions (default: 0)")
    emit.add_argument("--mode", choices=["reverse", "vjp", "forward"], default="reverse",
                      help="reverse: the gradient; vjp: the split form; forward: the JVP")
    emit.add_argument("--args", help="example arguments, a Python expression such as "
                                     "'np.ones(3), 2.0': the code is specialised on their kinds")
    emit.add_argument("--checkpoint", type=_checkpoint, metavar="K|BYTES",
                      help="checkpoint every loop, keeping K snapshots or as many as a "
                           "budget such as 64kB holds (default: store all)")
    emit.add_argument("--backend", choices=["numpy", "numba"], default="numpy",
                      help="numba: write the gradient for numba to compile (@numba.njit "
                           "functions, index loops); the file then imports numba")
    emit.add_argument("--array-api", action="store_true",
                      help="write the gradient against its arguments' array namespace "
                           "(xp = array_namespace(...), xp.exp...): it runs on "
                           "array_api_strict, torch, CuPy, JAX... arrays; needs --args")
    emit.add_argument("-o", "--output", help="write here instead of printing")
    emit.add_argument("--standalone", action="store_true",
                      help="paste the runtime helpers the module calls into it, so it "
                           "imports only numpy")
    emit.add_argument("--stages", action="store_true",
                      help="print the compiler's stages as they run (lower, prepare, observe, "
                           "transform, specialise, emit), with times, to stderr")
    chk = sub.add_parser("check", help="compare the gradient of FILE.py:FUNC with finite "
                                       "differences along a few random directions; name "
                                       "the wrong entries and the first wrong line")
    chk.add_argument("target", help="FILE.py:FUNC")
    chk.add_argument("--args", required=True, help="example arguments (a Python expression)")
    chk.add_argument("--wrt", help="comma-separated parameter names or positions (default: 0)")
    chk.add_argument("--bisect", action="store_true",
                     help="instead, name the first optimisation pass after which the gradient "
                          "differs from the unoptimised one (as LLVM's opt-bisect)")
    mem = sub.add_parser("memory", help="what the gradient of FILE.py:FUNC keeps, per line")
    mem.add_argument("target", help="FILE.py:FUNC")
    mem.add_argument("--args", required=True, help="example arguments (a Python expression)")
    mem.add_argument("--wrt", help="comma-separated parameter names or positions (default: 0)")
    mem.add_argument("--checkpoint", type=_checkpoint, metavar="K|BYTES",
                     help="checkpoint every loop: K snapshots, or a budget such as 64kB")
    show_ir = sub.add_parser("ir", help="print the SSA IR of FILE.py:FUNC")
    show_ir.add_argument("target", help="FILE.py:FUNC")
    show_ir.add_argument("--dot", action="store_true",
                         help="print it as a Graphviz graph (values, ops, regions as clusters)")
    show_ir.add_argument("--svg", metavar="OUT.svg",
                         help="render the graph to OUT.svg (needs Graphviz's `dot` program)")
    show_ir.add_argument("--grad", action="store_true",
                         help="the gradient's IR instead: its forward and backward sweeps")
    show_ir.add_argument("--wrt", help="with --grad: comma-separated parameter names or "
                                       "positions (default: 0)")
    show_ir.add_argument("--args", help="with --grad: example arguments (a Python "
                                        "expression); the IR is specialised on their kinds")
    show_ir.add_argument("--checkpoint", type=_checkpoint, metavar="K|BYTES",
                         help="with --grad: checkpoint every loop, as for `emit`")
    expl = sub.add_parser("explain", help="the source of FILE.py:FUNC and its generated "
                                          "gradient side by side, line linked to line")
    expl.add_argument("target", help="FILE.py:FUNC")
    expl.add_argument("--args", help="example arguments (a Python expression); the code is "
                                     "specialised on their kinds, as for `emit`")
    expl.add_argument("--wrt", help="comma-separated parameter names or positions (default: 0)")
    expl.add_argument("--checkpoint", type=_checkpoint, metavar="K|BYTES",
                      help="checkpoint every loop, keeping K snapshots or as many as a "
                           "budget such as 64kB holds (default: store all)")
    expl.add_argument("--columns", action="store_true",
                      help="two columns (source | generated) instead of each source line "
                           "followed by its generated lines")
    expl.add_argument("--html", metavar="OUT.html",
                      help="write a self-contained HTML page (links, highlighting) instead")
    cache = sub.add_parser("cache", help="the compile cache: `info` (folder, files, bytes) "
                                         "or `clear`")
    cache.add_argument("action", choices=["info", "clear"])
    chk.add_argument("--exhaustive", action="store_true",
                     help="one finite difference per input entry (slow on big inputs) instead "
                          "of a few random directions")
    chk.add_argument("--directions", type=_positive, default=3, metavar="N",
                     help="how many random directions to check (default: 3)")
    chk.add_argument("--seed", type=int, default=0, help="of the random directions")
    return parser, show_ir


def main(argv=None) -> int:
    parser, show_ir = _parser()
    ns = parser.parse_args(argv)
    if ns.verbose or getattr(ns, "stages", False):
        os.environ["ADJOINT_VERBOSE"] = "1"
    if ns.command == "cache":
        return _cache(ns.action)
    try:
        return _run(ns, show_ir)
    except UsageError as e:
        print(f"adjoint {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except AdjointError as e:
        print(e.render(), file=sys.stderr)
        return 1


def _run(ns, show_ir) -> int:
    from adjoint import api
    from adjoint.codegen.load import write_atomic
    if ns.command == "ir" and not ns.grad and (ns.wrt or ns.args or ns.checkpoint):
        show_ir.error("--wrt, --args and --checkpoint need --grad")
    fn = load_function(ns.target)
    source = Path(ns.target.rpartition(":")[0])
    # every check of the command line comes before any work
    out = _output(getattr(ns, "output", None) or getattr(ns, "html", None) or
                  getattr(ns, "svg", None),
                  {"emit": "-o", "explain": "--html", "ir": "--svg"}.get(ns.command), source)
    wrt, args = _wrt(ns.wrt, fn), _args(ns.args, fn)

    def write(text: str) -> None:
        write_atomic(out.resolve(), text)
        print(f"wrote {out}", file=sys.stderr)

    if ns.command == "ir":
        from adjoint.frontend.lower import lower_function
        from adjoint.frontend.source import unwrap
        from adjoint.ir.dot import to_dot, to_svg
        from adjoint.ir.printer import print_function
        shown = (_grad_ir(fn, wrt, args, ns.checkpoint) if ns.grad
                 else lower_function(unwrap(fn)))
        if not (ns.dot or ns.svg):
            print(print_function(shown))
            return 0
        graph = to_dot(shown)
        if ns.dot:
            print(graph, end="")
        if ns.svg:
            try:
                svg = to_svg(graph)
            except (FileNotFoundError, RuntimeError) as e:
                print(f"adjoint: {e}", file=sys.stderr)
                return 1
            write(svg)
        return 0
    if ns.command == "explain":
        from adjoint.explain import explain_html, explain_text
        options = dict(args=args, wrt=wrt, checkpoint=ns.checkpoint)
        if out:
            write(explain_html(fn, **options))
        else:
            print(explain_text(fn, layout="columns" if ns.columns else "grouped", **options),
                  end="")
        return 0
    if ns.command == "check":
        from adjoint.check import bisect, check
        if ns.bisect:
            result = bisect(fn, *args, wrt=wrt)
        else:
            result = check(fn, *args, wrt=wrt, exhaustive=ns.exhaustive,
                           directions=ns.directions, seed=ns.seed)
        print(result)
        return 0 if result.ok else 1
    if ns.command == "memory":
        print(api.memory(fn, *args, wrt=wrt, checkpoint=ns.checkpoint))
        return 0
    if ns.backend == "numba" and ns.mode != "reverse":
        raise UsageError(f"--backend numba writes the gradient (--mode reverse), not "
                         f"--mode {ns.mode}")
    if ns.array_api and (args is None or ns.mode != "reverse" or ns.backend != "numpy"
                         or ns.standalone):
        raise UsageError("--array-api writes the gradient (--mode reverse, --backend numpy, "
                         "not --standalone) specialised on --args: give --args")
    text = api.source(fn, wrt, mode=ns.mode, args=args, checkpoint=ns.checkpoint,
                      standalone=ns.standalone, backend=ns.backend,
                      array_api=ns.array_api)
    helpers = re.search(r"^from adjoint\.runtime import (.+)$", text, re.M)
    if ns.backend == "numba" and helpers and "@numba.njit" in text:
        print(f"adjoint emit: note: numba cannot compile the runtime helpers this module "
              f"calls ({helpers.group(1)}); the file runs such functions with NumPy, with "
              f"a warning" + ("; --args specialises the code, which numba then compiles "
                              "more of" if args is None else ""),
              file=sys.stderr)
    if out:
        write(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
