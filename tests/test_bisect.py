"""Differential testing of the optimisation passes, and `adjoint check --bisect`.

* every program of the corpus has the same gradient (to 1e-12, relative) compiled
  with all passes and with none (`optimize=False`, or ADJOINT_OPT=0);
* a pass made wrong on purpose is named by `bisect`, by `adjoint check --bisect`,
  and by `adjoint check`, which says the compiler is at fault, not a rule.
"""
from __future__ import annotations

import operator
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import adjoint
from adjoint.check import bisect, check
from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, Value
from adjoint.passes import pipeline
from tests import programs as P
from tests.test_gradients import CASES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("f,args,wrt", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_the_passes_never_change_a_gradient(f, args, wrt, tmp_path):
    full = adjoint.grad(f, wrt, cache_dir=tmp_path)(*args)
    plain = adjoint.grad(f, wrt, cache_dir=tmp_path, optimize=False)(*args)
    pairs = zip(full, plain) if isinstance(wrt, tuple) else [(full, plain)]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_no_pass_runs_with_optimize_off(tmp_path):
    x = np.array([0.5, -1.0, 2.0, 0.3])
    with pipeline.limited(None) as log:
        adjoint.grad(P.product, cache_dir=tmp_path)(x)
    assert log and all(" on " in entry for entry in log)
    with pipeline.limited(None) as log:
        adjoint.grad(P.product, cache_dir=tmp_path, optimize=False)(x)
    assert log == []
    # the unoptimised code is another file: it pops its tape instead of iterating it
    on = adjoint.grad(P.product, cache_dir=tmp_path).compile((x,)).source
    off = adjoint.grad(P.product, cache_dir=tmp_path, optimize=False).compile((x,)).source
    assert "reversed(_tape)" in on and "reversed(_tape)" not in off and ".pop()" in off


def test_the_environment_variable_turns_the_passes_off(tmp_path):
    code = ("import numpy as np, adjoint\n"
            "from adjoint.passes import pipeline\n"
            "from tests import programs as P\n"
            "assert pipeline.setting() == 0\n"
            "x = np.array([0.5, -1.0, 2.0])\n"
            "src = adjoint.source(P.product, args=(x,))\n"
            "assert 'reversed(_tape)' not in src, src\n"
            "print(adjoint.grad(P.product)(x).tolist())\n")
    env = dict(os.environ, ADJOINT_OPT="0", ADJOINT_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert eval(out.stdout) == pytest.approx([-2.0, 1.0, -0.5])


def _scaled_result(fn):
    """A wrong pass: a gradient function returns 1.5 times its first result."""
    if not fn.name.endswith("_grad"):
        return fn
    r = Value("_wrong")
    body = fn.body
    ops = body.ops + (Call(prim_of(operator.mul), (body.results[0], Const(1.5)), r, (), fn.loc),)
    return replace(fn, body=Block((), ops, (r,) + body.results[1:]))


@pytest.fixture
def own_cache(monkeypatch, tmp_path):
    """A wrong compiler writes wrong modules: into a folder of their own, never the
    cache that other tests (and later runs) read."""
    monkeypatch.setenv("ADJOINT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def broken_pass(monkeypatch, own_cache):
    def broken(fn):
        return _scaled_result(fn)
    monkeypatch.setattr(pipeline, "FINAL", pipeline.FINAL[:3] + [broken] + pipeline.FINAL[3:])


def test_bisect_names_a_wrong_pass(broken_pass):
    x = np.array([0.3, -1.2, 0.7, 2.0])
    found = bisect(P.product, x)
    assert not found.ok
    assert found.culprit == "broken on product_grad"
    assert f"pass run {found.k} of {found.runs}: broken on product_grad" in str(found)
    # one run fewer and the gradient is the unoptimised one
    from adjoint.check import gradient_with_passes
    before, _ = gradient_with_passes(P.product, (x,), 0, found.k - 1)
    after, _ = gradient_with_passes(P.product, (x,), 0, found.k)
    plain, _ = gradient_with_passes(P.product, (x,), 0, 0)
    np.testing.assert_allclose(before, plain, rtol=1e-12)
    np.testing.assert_allclose(after, 1.5 * plain, rtol=1e-12)


def test_bisect_of_right_passes_is_ok():
    found = bisect(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=(0, 2))
    assert found.ok and found.runs > 0 and "ok" in str(found)


def test_check_blames_the_compiler_and_names_the_pass(broken_pass):
    result = check(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=("w", "b"))
    assert not result.ok and result.culprit is None
    text = str(result)
    assert "the fault is the compiler's, not a rule's" in text
    assert "broken on neuron_grad" in text


def test_check_says_when_the_transform_is_at_fault(monkeypatch, own_cache):
    from adjoint.ad.reverse import Reverse
    real = Reverse.run

    def run(self, name):  # every gradient, optimised or not, 1.5 times too large
        fn, n_fwd, outs = real(self, name)
        return _scaled_result(fn), n_fwd, outs
    monkeypatch.setattr(Reverse, "run", run)
    text = str(check(P.neuron, 0.5, 1.5, 0.1, 1.0))
    assert "with no optimisation pass the gradient is wrong too" in text
    assert "reverse transform" in text


def test_check_command_bisect(broken_pass, capsys):
    from adjoint.cli import main
    target = str(ROOT / "examples" / "neuron.py") + ":loss"
    assert main(["check", target, "--args", "0.5, 1.5, 0.1, 1.0", "--wrt", "w,b",
                 "--bisect"]) == 1
    assert "broken on loss_grad" in capsys.readouterr().out


def test_check_command_bisect_ok_and_wrt_by_name(capsys):
    from adjoint.cli import main
    target = str(ROOT / "examples" / "neuron.py") + ":loss"
    assert main(["check", target, "--args", "0.5, 1.5, 0.1, 1.0", "--wrt", "b",
                 "--bisect"]) == 0
    assert "ok: the gradient is the same" in capsys.readouterr().out
    assert main(["check", target, "--args", "0.5, 1.5, 0.1, 1.0", "--wrt", "b"]) == 0
    assert "ok: the gradient matches" in capsys.readouterr().out


def test_check_with_wrt_by_name():
    result = check(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt="b")
    assert result.ok
    result = check(P.neuron, 0.5, 1.5, 0.1, 1.0, wrt=("x", "t"))
    assert result.ok and len(result.gradient) == 2
