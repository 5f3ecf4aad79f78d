"""A deliberately broken derivative rule is caught.

Each test swaps a primitive's VJP template in the registry for a copy with a
flipped sign (the templates below, lowered and inlined like the real ones), runs
the corpus checks and the property-based checks against it, and requires them to
FAIL (check_grad raises AssertionError); the registry is restored afterwards.

Compiled gradients are cached in memory (per Transform, and per module path) and on
disk under a key that hashes the compiler's source, not the registry's contents at
run time, so every mutated run compiles into a fresh cache folder: otherwise it could
load a module compiled with the correct rule and prove nothing.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import operator

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

import adjoint
from adjoint.rules import registry
from adjoint.runtime import unbroadcast
from adjoint.testing import check_grad
from tests import programs as P
from tests import test_properties as props
from tests.test_gradients import CASES

# ---------------------------------------------------------------- broken templates


def mul_flipped(g, ans, x, y):
    """operator.mul's VJP with the sign of x's cotangent flipped."""
    return unbroadcast(-(g * y), x), unbroadcast(x * g, y)


def np_sin_flipped(g, ans, x):
    """np.sin's VJP with a flipped sign."""
    return -(g * np.cos(x))


def math_sin_flipped(g, ans, x):
    """math.sin's VJP with a flipped sign."""
    return -(g * math.cos(x))


@contextlib.contextmanager
def broken_rule(fn, template, monkeypatch, cache):
    """Install `template` as `fn`'s VJP and compile into `cache` (also the default
    cache, which check_grad uses); restore the registry whatever happens."""
    entry = registry.lookup(fn)
    assert entry is not None and entry.vjp is not None, f"{fn} has no VJP to break"
    original = entry.vjp
    entry.vjp = template
    try:
        with monkeypatch.context() as m:
            m.setenv("ADJOINT_CACHE_DIR", str(cache))
            yield
    finally:
        entry.vjp = original
    assert registry.lookup(fn).vjp is original


def fails(f, *args, wrt=0) -> bool:
    try:
        check_grad(f, *args, wrt=wrt)
    except AssertionError:
        return True
    return False


# ---------------------------------------------------------------- corpus


def test_a_flipped_mul_rule_fails_the_corpus(tmp_path, monkeypatch):
    with broken_rule(operator.mul, mul_flipped, monkeypatch, tmp_path / "mutant"):
        with pytest.raises(AssertionError, match="differs from finite differences"):
            check_grad(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=(0, 1, 2, 3))
        failed = [f.__name__ for f, args, wrt in CASES if fails(f, *args, wrt=wrt)]
    # products are everywhere: nearly every program must notice
    assert len(failed) >= 0.75 * len(CASES), failed
    for name in ("neuron", "sum_squares", "product", "rnn", "fill"):
        assert name in failed, f"{name} did not notice the broken mul rule"
    # restored: the same checks pass again (compiled afresh, into another folder)
    with monkeypatch.context() as m:
        m.setenv("ADJOINT_CACHE_DIR", str(tmp_path / "restored"))
        check_grad(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=(0, 1, 2, 3))
        check_grad(P.product, np.array([2.0, 3.0, 5.0, 7.0]))


def test_a_flipped_math_sin_rule_fails_the_corpus(tmp_path, monkeypatch):
    with broken_rule(math.sin, math_sin_flipped, monkeypatch, tmp_path / "mutant"):
        with pytest.raises(AssertionError):
            check_grad(P.scalar_math, 0.7, 0.3, wrt=(0, 1))
        with pytest.raises(AssertionError):
            check_grad(P.scalar_loop, 0.3, 20)
        with pytest.raises(AssertionError):
            check_grad(P.elif_chain, 0.5)
        # programs without math.sin are unaffected
        check_grad(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=(0, 1, 2, 3))


def test_a_fresh_cache_folder_compiles_with_the_current_rule(tmp_path):
    """What the mutated runs rely on: after a rule changes, compiling into a fresh
    folder uses the new rule (whatever an older folder may still hold)."""
    def sin_times_x(x):
        return np.sum(np.sin(x) * x)

    x = np.array([0.3, -0.7, 1.1])
    good = adjoint.grad(sin_times_x, cache_dir=tmp_path / "before")(x)
    assert np.allclose(good, np.sin(x) + x * np.cos(x))
    entry = registry.lookup(np.sin)
    original = entry.vjp
    entry.vjp = np_sin_flipped
    try:
        mutant = adjoint.grad(sin_times_x, cache_dir=tmp_path / "mutant")(x)
    finally:
        entry.vjp = original
    assert np.allclose(mutant, np.sin(x) - x * np.cos(x))
    again = adjoint.grad(sin_times_x, cache_dir=tmp_path / "after")(x)
    assert np.allclose(again, good)


# ---------------------------------------------------------------- property checks

FIND = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck))


def _property_fails(folder, gen_and_args) -> bool:
    """Whether the property check of one generated program fails (an AssertionError);
    programs the compiler cannot handle at all count as not failing here (they are
    test_properties' business)."""
    src, args, wrt = gen_and_args
    folder.mkdir(parents=True, exist_ok=True)
    try:
        props.check_program(folder, src, args, wrt)
    except AssertionError:
        return True
    except Exception:
        return False
    return False


def _caught(fn, template, folder, n=itertools.count()):
    """A predicate: the program fails with `template` as fn's VJP and passes with the
    real rule, so the failure is the mutation's doing (each run in a fresh folder)."""
    entry = registry.lookup(fn)
    broken, real = template, entry.vjp

    def predicate(example) -> bool:
        k = next(n)
        entry.vjp = broken
        try:
            if not _property_fails(folder / f"mutant{k}", example):
                return False
        finally:
            entry.vjp = real
        return not _property_fails(folder / f"real{k}", example)

    return predicate


def _straight_line_with_args():
    return st.tuples(props.straight_line_programs(), props.base_args(False)).map(
        lambda t: (t[0][0], t[1], t[0][2]))


def _for_with_args():
    return st.tuples(props.for_programs(), props.base_args(True)).map(
        lambda t: (t[0][0], t[1], t[0][2]))


@pytest.mark.parametrize("fn,template,needle", [
    (np.sin, np_sin_flipped, "np.sin("),
    (operator.mul, mul_flipped, "*"),
], ids=["np.sin", "mul"])
def test_the_property_checks_find_a_broken_rule(tmp_path, fn, template, needle):
    """The random-program generators find a counterexample within a few hundred tries,
    and the counterexample uses the broken primitive."""
    original = registry.lookup(fn).vjp
    example = find(_straight_line_with_args(), _caught(fn, template, tmp_path), settings=FIND)
    assert registry.lookup(fn).vjp is original
    body = example[0].render().split("\ndef f(")[1].split("\ndef f_probe")[0]
    assert needle in body.replace("**", ""), body


def test_the_loop_property_finds_a_broken_mul_rule(tmp_path):
    original = registry.lookup(operator.mul).vjp
    example = find(_for_with_args(), _caught(operator.mul, mul_flipped, tmp_path),
                   settings=FIND)
    assert registry.lookup(operator.mul).vjp is original
    assert "for " in example[0].render()
