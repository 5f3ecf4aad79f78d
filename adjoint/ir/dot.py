"""The IR as a Graphviz graph: `adjoint ir FILE.py:FUNC --dot` (or `--svg OUT.svg`).

Values are ellipses (parameters as house shapes, block arguments -- the
structured phi nodes -- in grey), calls are boxes labelled with their primitive
and constant operands (`mul(·, 2.0)`: each `·` is an edge coming in, numbered
when there are several), and each region op (`if`, `for`, `while`) is a
cluster holding its blocks. Around a loop, dashed edges show a carried value's
initial value (`init`), its next value (`next`, back to the block argument) and
the value that leaves the loop (`out`); a branch's results come from `then` and
`else` edges. Names are those of `adjoint ir`, so the text and the picture can
be read together. A gradient's top level (`adjoint ir --grad`) is split at its
section markers into a `forward` and a `backward` cluster, the two sweeps.

>>> from adjoint.ir.core import *
>>> import operator
>>> x, y = Value("x"), Value("y")
>>> add = Prim("add", operator.add, "infix", "+", 11)
>>> f = Function("f", (x,), Block((), (Call(add, (x, Const(1.0)), y),), (y,)))
>>> print(to_dot(f))  # doctest: +ELLIPSIS
digraph "f" {
...
  v0 [label="%x", shape="house", ...];
  op1 [label="add(·, 1.0)", shape=box, ...];
  v1 [label="%y", ...];
  ret [label="return", ...];
  v0 -> op1;
  op1 -> v1;
  v1 -> ret;
...
"""
from __future__ import annotations

from adjoint.ir.core import Block, Call, Const, For, Function, Global, If, Operand, Value, While
from adjoint.ir.printer import Names, _print_block

_MAX_CONST = 24  # characters of a constant shown in a label


def _q(text: str) -> str:
    """A double-quoted dot string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Graph:
    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.names = Names()
        # name every value as the printer does, so the graph matches `adjoint ir`
        for p in fn.params:
            self.names(p)
        _print_block(fn.body, self.names, [], "")
        self.lines: list[str] = []
        self.node_ids: dict[int, str] = {}  # Value.id -> node id
        self.counter = 0
        self.globals: dict[str, str] = {}
        self.edges: list[str] = []

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def value(self, v: Value, ind: str, label: str | None = None, **attrs) -> str:
        if v.id in self.node_ids:
            return self.node_ids[v.id]
        node = f"v{len(self.node_ids)}"
        self.node_ids[v.id] = node
        style = {"shape": "ellipse", "fontsize": "11"}
        style.update(attrs)
        attrs_text = ", ".join(f"{k}={_q(str(a))}" for k, a in style.items())
        label = label or "%" + self.names(v)
        self.lines.append(f"{ind}{node} [label={_q(label)}, {attrs_text}];")
        return node

    def ref(self, o: Operand, ind: str) -> str | None:
        """The node of a Value or Global operand (None for a constant)."""
        if isinstance(o, Value):
            return self.node_ids.get(o.id) or self.value(o, ind, style="dashed")
        if isinstance(o, Global):
            if o.name not in self.globals:
                node = f"g{len(self.globals)}"
                self.globals[o.name] = node
                self.lines.append(f"{ind}{node} [label={_q('@' + o.name)}, shape=note, "
                                  f"fontsize=11];")
            return self.globals[o.name]
        return None

    def edge(self, a: str, b: str, ind: str = "  ", **attrs) -> None:
        # edges are written after all clusters: an edge inside a cluster would pull
        # both its ends (a parameter, say) into that cluster
        extra = ", ".join(f"{k}={_q(str(v))}" for k, v in attrs.items())
        self.edges.append(f"  {a} -> {b}" + (f" [{extra}]" if extra else "") + ";")

    # ------------------------------------------------------------------ ops
    def block(self, block: Block, ind: str) -> None:
        for op in block.ops:
            if isinstance(op, Call):
                self.call(op, ind)
            elif isinstance(op, If):
                self.if_op(op, ind)
            elif isinstance(op, For):
                self.for_op(op, ind)
            elif isinstance(op, While):
                self.while_op(op, ind)

    def sweeps(self, block: Block) -> None:
        """The top level, with one cluster per sweep when it has section markers (a
        gradient's `forward` then `backward`), so the picture shows the two apart."""
        spans = [("forward", [])]
        for op in block.ops:
            if isinstance(op, Call) and op.prim.style == "section":
                spans.append((op.args[0].value, []))
            else:
                spans[-1][1].append(op)
        if len(spans) == 1:
            self.block(block, "  ")
            return
        for title, ops in spans:
            self.cluster(title, "  ", "#555555")
            self.block(Block((), tuple(ops), ()), "    ")
            self.lines.append("  }")

    def operands_label(self, op: Call) -> tuple[str, list[tuple[Operand, str]]]:
        parts, wired = [], []
        n_wired = sum(1 for o in op.operands if not isinstance(o, Const))
        k = 0
        items = [(None, a) for a in op.args] + list(op.kwargs)
        for name, o in items:
            if isinstance(o, Const):
                text = repr(o.value)
                text = text if len(text) <= _MAX_CONST else text[:_MAX_CONST - 1] + "…"
            else:
                k += 1
                text = "·" if n_wired == 1 else f"·{k}"
                wired.append((o, "" if n_wired == 1 else str(k)))
            parts.append(f"{name}={text}" if name else text)
        return f"{op.prim.name}({', '.join(parts)})", wired

    def call(self, op: Call, ind: str) -> None:
        label, wired = self.operands_label(op)
        node = self.fresh("op")
        self.lines.append(f"{ind}{node} [label={_q(label)}, shape=box, style=rounded, "
                          f"fontsize=10];")
        for o, port in wired:
            src = self.ref(o, ind)
            if src:
                if port:
                    self.edge(src, node, ind, label=port, fontsize=9)
                else:
                    self.edge(src, node, ind)
        out = self.value(op.result, ind)
        self.edge(node, out, ind)

    def cluster(self, label: str, ind: str, color: str) -> str:
        name = self.fresh("cluster_")
        self.lines.append(f"{ind}subgraph {name} {{")
        self.lines.append(f"{ind}  label={_q(label)}; style=rounded; color={_q(color)}; "
                          f"fontsize=11;")
        return name

    def region_results(self, results, ind: str) -> list[str]:
        return [self.value(r, ind) for r in results]

    def if_op(self, op: If, ind: str) -> None:
        self.cluster("if", ind, "#8f3f9c")
        head = self.fresh("if")
        self.lines.append(f"{ind}  {head} [label=\"if\", shape=diamond, fontsize=10];")
        cond = self.ref(op.cond, ind + "  ")
        for which, block in (("then", op.then), ("else", op.orelse)):
            self.cluster(which, ind + "  ", "#b9a6bf")
            self.block(block, ind + "    ")
            self.lines.append(f"{ind}  }}")
        self.lines.append(f"{ind}}}")
        if cond:
            self.edge(cond, head, label="cond", fontsize=9)
        outs = self.region_results(op.results, ind)
        for which, block in (("then", op.then), ("else", op.orelse)):
            for r, out in zip(block.results, outs):
                src = self.ref(r, ind)
                if src:
                    self.edge(src, out, label=which, style="dashed", fontsize=9)
                elif isinstance(r, Const):
                    const = self.fresh("c")
                    self.lines.append(f"{ind}{const} [label={_q(repr(r.value)[:_MAX_CONST])}, "
                                      f"shape=plaintext, fontsize=10];")
                    self.edge(const, out, label=which, style="dashed", fontsize=9)

    def _carried(self, args, inits, ind: str, also=()) -> list[str]:
        """Nodes for carried block arguments (`also`: the same values under the names
        a while loop's body gives them)."""
        labels = ["%" + self.names(a) + (f" / %{self.names(b)}" if b is not None else "")
                  for a, b in zip(args, list(also) + [None] * (len(args) - len(also)))]
        nodes = [self.value(a, ind, label=lab, style="filled", fillcolor="#eeeeee")
                 for a, lab in zip(args, labels)]
        for node, init in zip(nodes, inits):
            src = self.ref(init, ind)
            if src:
                self.edge(src, node, ind, label="init", style="dashed", fontsize=9)
        return nodes

    def for_op(self, op: For, ind: str) -> None:
        it = self.ref(op.iter, ind)
        label = "for (reversed)" if op.reverse else "for"
        if op.checkpoint:
            label += f" checkpoint{op.checkpoint!r}"
        self.cluster(label, ind, "#2f6fb0")
        target = self.value(op.body.args[0], ind + "  ", style="filled", fillcolor="#dfe9f5")
        carried = self._carried(op.body.args[1:], op.inits, ind + "  ")
        self.block(op.body, ind + "  ")
        self.lines.append(f"{ind}}}")
        if it:
            self.edge(it, target, label="in", fontsize=9)
        for r, node in zip(op.body.results, carried):
            src = self.ref(r, ind)
            if src:
                self.edge(src, node, label="next", style="dashed", constraint="false",
                          fontsize=9)
        for node, out in zip(carried, self.region_results(op.results, ind)):
            self.edge(node, out, label="out", style="dotted", fontsize=9)

    def while_op(self, op: While, ind: str) -> None:
        self.cluster("while", ind, "#b0452f")
        carried = self._carried(op.cond.args, op.inits, ind + "  ", also=op.body.args)
        # the body's block arguments are the same carried values as the condition's
        for a, node in zip(op.body.args, carried):
            self.node_ids.setdefault(a.id, node)
        self.cluster("cond", ind + "  ", "#e0b4aa")
        self.block(op.cond, ind + "    ")
        flag = self.fresh("flag")
        self.lines.append(f"{ind}    {flag} [label=\"continue?\", shape=diamond, fontsize=10];")
        self.lines.append(f"{ind}  }}")
        self.cluster("body", ind + "  ", "#e0b4aa")
        self.block(op.body, ind + "    ")
        self.lines.append(f"{ind}  }}")
        self.lines.append(f"{ind}}}")
        src = self.ref(op.cond.results[0], ind) if op.cond.results else None
        if src:
            self.edge(src, flag)
        for r, node in zip(op.body.results, carried):
            src = self.ref(r, ind)
            if src:
                self.edge(src, node, label="next", style="dashed", constraint="false",
                          fontsize=9)
        for node, out in zip(carried, self.region_results(op.results, ind)):
            self.edge(node, out, label="out", style="dotted", fontsize=9)

    def run(self) -> str:
        fn = self.fn
        self.lines = [f"digraph {_q(fn.name)} {{",
                      f"  label={_q('func ' + fn.name)}; labelloc=t; fontsize=13;",
                      "  rankdir=TB; compound=true; nodesep=0.25; ranksep=0.35;",
                      "  node [fontname=\"Helvetica\"]; edge [fontname=\"Helvetica\", "
                      "arrowsize=0.6];"]
        for p in fn.params:
            self.value(p, "  ", shape="house", style="bold")
        self.sweeps(fn.body)
        ret = "ret"
        self.lines.append(f"  {ret} [label=\"return\", shape=invhouse, style=bold];")
        for r in fn.body.results:
            src = self.ref(r, "  ")
            if src:
                self.edge(src, ret)
        self.lines.extend(self.edges)
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"


def to_dot(fn: Function) -> str:
    """The Graphviz text of an IR function."""
    return _Graph(fn).run()


def to_svg(dot_text: str, dot_binary: str = "dot", timeout: float = 60) -> str:
    """Render dot text to SVG with Graphviz's `dot` (which must be installed)."""
    import shutil
    import subprocess
    exe = shutil.which(dot_binary)
    if exe is None:
        raise FileNotFoundError("Graphviz's `dot` program is not installed "
                                "(e.g. `apt-get install graphviz`)")
    done = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.strip()}")
    return done.stdout


__all__ = ["to_dot", "to_svg"]
