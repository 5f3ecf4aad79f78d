"""What the reverse transform asks of each forward op, shared by the reverse sweep
(reverse.py) and its checkpointed regions (checkpoint.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from adjoint.ir.core import Op, Value


@dataclass
class Instrumented:
    """What the reverse sweep asks of one forward op: ops before it, its new form,
    and ops after it."""

    before: list = field(default_factory=list)
    op: Op | None = None
    after: list = field(default_factory=list)


def cotangent_base(v) -> str:
    """The name a cotangent of `v` is made from: `h` for h and for h_bar."""
    name = v.name if isinstance(v, Value) else "_t"
    return name[:-4] if name.endswith("_bar") else name
