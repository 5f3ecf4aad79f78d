"""Tape primitives: the lists that carry loop values from the forward sweep to the
reverse sweep. They appear in generated code as `_tape = []`, `_tape.append(...)`
and `... = _tape.pop()`; they are impure, so no pass moves or merges them.
"""
from __future__ import annotations

from adjoint import runtime
from adjoint.rules.registry import primitive


def tape_new():
    """A new, empty tape."""
    return []


def tape_push(tape, *values):
    """Push one iteration's values (a tuple when there are several)."""
    tape.append(values[0] if len(values) == 1 else values)


def tape_pop(tape):
    """Pop the values the matching push saved."""
    return tape.pop()


def iadd_at(x, index, value):
    """`x[index] += value` as a value (basic indices only; generated code adds in place)."""
    x = runtime.private_entries(x)  # a list's or dict's entry is added into in place
    x[index] += value
    return x


def iadd(x, y):
    """`x += y` as a value: generated code adds in place when x's buffer is its own."""
    return x + y


def section(title):
    """Marks where the backward sweep starts; printed as a comment, computes nothing."""


primitive(section, "section", "section", nondiff=True, pure=False)
primitive(iadd_at, "iadd_at", "iadd_at")
primitive(iadd, "iadd", "iadd")
primitive(tape_new, "tape_new", "tape_new", nondiff=True, pure=False)
# checkpointing: the plan and the snapshots (see adjoint.ad.checkpoint)
primitive(runtime.checkpoint_plan, "checkpoint_plan", nondiff=True)
primitive(runtime.plan_stores, "plan_stores", "format", "{1} in {0}.stored", 5, nondiff=True)
primitive(runtime.plan_actions, "plan_actions", nondiff=True)
primitive(runtime.snapshots_new, "snapshots_new", "format", "{{}}", nondiff=True, pure=False)
primitive(runtime.snap_store, "snap_store", "snap_store", nondiff=True, pure=False)
primitive(runtime.snap_load, "snap_load", "snap_load", nondiff=True, pure=False)
primitive(runtime.snap_free, "snap_free", "snap_free", nondiff=True, pure=False)
# a checkpointed loop's outer products, added a few at a time: no derivative rule, so
# differentiating such code again is an error, not a silent zero
primitive(runtime.outer_sum, "outer_sum", pure=False)
primitive(runtime.outer_add, "outer_add", pure=False)
primitive(runtime.outer_total, "outer_total", pure=False)
primitive(tape_push, "tape_push", "tape_push", nondiff=True, pure=False)
primitive(tape_pop, "tape_pop", "tape_pop", nondiff=True, pure=False)
