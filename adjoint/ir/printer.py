"""The textual form of the IR, for tests, `adjoint ir` and debugging.

>>> from adjoint.ir.core import *
>>> import operator
>>> x, y = Value("x"), Value("y")
>>> add = Prim("add", operator.add, "infix", "+", 11)
>>> f = Function("f", (x,), Block((), (Call(add, (x, Const(1.0)), y),), (y,)))
>>> print(print_function(f))
func f(%x):
  %y = add(%x, 1.0)
  return %y
"""
from __future__ import annotations

from adjoint.ir.core import Block, Call, Const, For, Function, Global, If, Operand, Value, While


class Names:
    """Unique printable names for Values: the hint, then hint_1, hint_2, ..."""

    def __init__(self) -> None:
        self.names: dict[Value, str] = {}
        self.taken: set[str] = set()
        self.counters: dict[str, int] = {}  # hint -> the next number to try

    def __call__(self, v: Value) -> str:
        if v not in self.names:
            # from the last number given to this hint: the same name as counting from
            # 0 would find (names are only added), in constant time
            base = v.name
            k = self.counters.get(base, 0)
            name = f"{base}_{k}" if k else base
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.counters[base] = k + 1
            self.taken.add(name)
            self.names[v] = name
        return self.names[v]


def print_function(fn: Function) -> str:
    names = Names()
    params = ", ".join("%" + names(p) for p in fn.params)
    lines = [f"func {fn.name}({params}):"]
    _print_block(fn.body, names, lines, "  ")
    rets = ", ".join(_operand(o, names) for o in fn.body.results)
    lines.append(f"  return {rets}")
    return "\n".join(lines)


def _operand(o: Operand, names: Names) -> str:
    if isinstance(o, Value):
        return "%" + names(o)
    if isinstance(o, Global):
        return "@" + o.name
    assert isinstance(o, Const)
    return repr(o.value)


def _vals(vs, names: Names) -> str:
    return ", ".join("%" + names(v) for v in vs)


def _print_block(block: Block, names: Names, lines: list[str], ind: str) -> None:
    for op in block.ops:
        res = _vals(op.results, names)
        if isinstance(op, Call):
            args = [_operand(a, names) for a in op.args]
            args += [f"{k}={_operand(v, names)}" for k, v in op.kwargs]
            lines.append(f"{ind}%{names(op.result)} = {op.prim.name}({', '.join(args)})")
        elif isinstance(op, If):
            lines.append(f"{ind}{res} = if {_operand(op.cond, names)}:" if res else
                         f"{ind}if {_operand(op.cond, names)}:")
            _print_region(op.then, names, lines, ind)
            lines.append(f"{ind}else:")
            _print_region(op.orelse, names, lines, ind)
        elif isinstance(op, For):
            args = op.body.args
            inits = ", ".join(_operand(o, names) for o in op.inits)
            it = _operand(op.iter, names)
            it = f"reversed({it})" if op.reverse else it
            mark = f" checkpoint{op.checkpoint!r}" if op.checkpoint else ""
            lines.append(f"{ind}{res + ' = ' if res else ''}for %{names(args[0])} in {it}"
                         f" carry ({_vals(args[1:], names)}) = ({inits}){mark}:")
            _print_region(op.body, names, lines, ind)
        elif isinstance(op, While):
            inits = ", ".join(_operand(o, names) for o in op.inits)
            lines.append(f"{ind}{res + ' = ' if res else ''}while carry "
                         f"({_vals(op.cond.args, names)}) = ({inits}):")
            _print_region(op.cond, names, lines, ind + "  ", "cond")
            lines.append(f"{ind}do ({_vals(op.body.args, names)}):")
            _print_region(op.body, names, lines, ind)
        else:  # pragma: no cover - the verifier rejects anything else
            raise TypeError(op)


def _print_region(block: Block, names: Names, lines: list[str], ind: str,
                  word: str = "yield") -> None:
    _print_block(block, names, lines, ind + "  ")
    lines.append(f"{ind}  {word} {', '.join(_operand(o, names) for o in block.results)}".rstrip())
