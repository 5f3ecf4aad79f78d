"""The command line: `adjoint emit`, `adjoint ir`, `adjoint check`, `adjoint memory`,
`adjoint explain` (also `python -m adjoint`).

    adjoint emit examples/neuron.py:loss --wrt w,b -o grad_loss.py
    adjoint ir examples/neuron.py:loss [--dot | --svg loss.svg] [--grad --wrt w,b --args ...]
    adjoint explain examples/neuron.py:loss --wrt w,b --args "0.5, 1.5, 0.1, 1.0" [--html out.html]
    adjoint memory examples/rnn.py:loss --args "W, xs, h0" --checkpoint 10   # or 64kB
    adjoint check examples/neuron.py:loss --args "0.5, 1.5, 0.1, 1.0" [--wrt w,b] [--bisect]
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

from adjoint.errors import AdjointError


def load_function(spec: str):
    """`path/to/file.py:name` -> the function object."""
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise SystemExit(f"adjoint: expected FILE.py:FUNC, got {spec!r}")
    file = Path(path)
    if not file.exists():
        raise SystemExit(f"adjoint: no such file: {path}")
    sys.path.insert(0, str(file.parent.resolve()))
    mod_spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules.setdefault(file.stem, module)
    mod_spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if fn is None:
        raise SystemExit(f"adjoint: {path} has no function {name!r}")
    return fn


def _wrt(text: str | None, fn):
    if not text:
        return 0
    parts = [p.strip() for p in text.split(",") if p.strip()]
    items = tuple(int(p) if p.isdigit() else p for p in parts)
    return items if len(items) > 1 else items[0]


def _args(text: str | None):
    if not text:
        return None
    import numpy as np
    value = eval(text, {"np": np, "numpy": np})  # example arguments, given by the user
    return value if isinstance(value, tuple) else (value,)


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


def _grad_ir(fn, wrt, args, checkpoint):
    """The IR of fn's gradient, optimised, before code generation (as `emit` builds it)."""
    from adjoint import api
    from adjoint.frontend.lower import lower_function
    from adjoint.frontend.source import unwrap
    lowered = lower_function(unwrap(fn))
    ir = api.prepare(lowered, checkpoint)
    facts = api.facts_for(lowered, ir, args)
    return api.build(ir, api._normalize_wrt(wrt, ir), facts, "grad")[0][0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="adjoint", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    emit.add_argument("-o", "--output", help="write here instead of printing")
    chk = sub.add_parser("check", help="compare the gradient of FILE.py:FUNC with finite "
                                       "differences; name the first wrong line")
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
    ns = parser.parse_args(argv)
    from adjoint import api
    from adjoint.codegen.load import write_atomic
    try:
        fn = load_function(ns.target)
        if ns.command == "ir":
            if not ns.grad and (ns.wrt or ns.args or ns.checkpoint):
                show_ir.error("--wrt, --args and --checkpoint need --grad")
            from adjoint.frontend.lower import lower_function
            from adjoint.frontend.source import unwrap
            from adjoint.ir.dot import to_dot, to_svg
            from adjoint.ir.printer import print_function
            shown = (_grad_ir(fn, _wrt(ns.wrt, fn), _args(ns.args), ns.checkpoint) if ns.grad
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
                write_atomic(Path(ns.svg).resolve(), svg)
                print(f"wrote {ns.svg}", file=sys.stderr)
            return 0
        if ns.command == "explain":
            from adjoint import explain
            options = dict(args=_args(ns.args), wrt=_wrt(ns.wrt, fn), checkpoint=ns.checkpoint)
            if ns.html:
                write_atomic(Path(ns.html).resolve(), explain.explain_html(fn, **options))
                print(f"wrote {ns.html}", file=sys.stderr)
            else:
                print(explain.explain_text(fn, layout="columns" if ns.columns else "grouped",
                                           **options), end="")
            return 0
        if ns.command == "check":
            from adjoint.check import bisect, check
            result = (bisect if ns.bisect else check)(fn, *_args(ns.args), wrt=_wrt(ns.wrt, fn))
            print(result)
            return 0 if result.ok else 1
        if ns.command == "memory":
            print(api.memory(fn, *_args(ns.args), wrt=_wrt(ns.wrt, fn), checkpoint=ns.checkpoint))
            return 0
        text = api.source(fn, _wrt(ns.wrt, fn), mode=ns.mode, args=_args(ns.args),
                          checkpoint=ns.checkpoint)
    except AdjointError as e:
        print(e.render(), file=sys.stderr)
        return 1
    if ns.output:
        out = Path(ns.output)
        write_atomic(out.resolve(), text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
