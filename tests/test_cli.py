"""The command line's options: `--checkpoint` as a snapshot count or a memory budget."""
import argparse
import contextlib
import io

import numpy as np
import pytest

from adjoint.cli import _checkpoint, main

RNN = "tests/programs.py:rnn"
ARGS = ("np.eye(3) * 0.5, np.ones((3, 2)) * 0.1, np.linspace(-1, 1, 40).reshape(20, 2), "
        "np.ones(3) * 0.2")


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def load_gradient(path):
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["rnn_grad"]


@pytest.mark.parametrize("text, policy", [
    ("10", 10), ("1", 1), ("64kB", {"budget": 64_000}), ("1MB", {"budget": 1_000_000}),
    ("4096B", {"budget": 4096}), ("2KiB", {"budget": 2048}), ("1.5kb", {"budget": 1500}),
    ("3 GB", {"budget": 3 * 10**9})])
def test_checkpoint_takes_snapshots_or_a_budget_in_bytes(text, policy):
    assert _checkpoint(text) == policy


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "12XB", "kB", "", "0B", "0.1B", "ten"])
def test_a_bad_checkpoint_is_an_argparse_error(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _checkpoint(text)
    code, out, err = run_cli("emit", RNN, "--checkpoint", text)
    assert code == 2 and not out
    assert "argument --checkpoint" in err and "memory budget (e.g. 64kB" in err


@pytest.mark.parametrize("policy", ["10", "3", "100B", "1KiB", "64kB", "1MB"])
def test_emitted_checkpointed_gradient_equals_the_store_all_one(policy, tmp_path):
    store, ckpt = tmp_path / "store.py", tmp_path / "ckpt.py"
    assert run_cli("emit", RNN, "--args", ARGS, "-o", str(store))[0] == 0
    code, _, err = run_cli("emit", RNN, "--args", ARGS, "--checkpoint", policy, "-o", str(ckpt))
    assert code == 0, err
    assert "checkpoint_plan(" not in store.read_text()
    # a budget that holds every state keeps no less by recomputing: the cost model stores
    stored = policy in ("1KiB", "64kB", "1MB")
    assert ("checkpoint_plan(" in ckpt.read_text()) is not stored
    args = eval(ARGS, {"np": np})
    np.testing.assert_allclose(load_gradient(ckpt)(*args), load_gradient(store)(*args),
                               rtol=1e-12)


def test_a_small_budget_recomputes_and_keeps_less():
    # h is 3 floats (24 bytes): 100 bytes hold 4 snapshots of the 20 steps
    code, text, _ = run_cli("emit", RNN, "--args", ARGS, "--checkpoint", "100B")
    assert code == 0 and "checkpoint_plan(len(_range), 4)" in text
    total = {}
    for policy in (None, "100B"):
        extra = ["--checkpoint", policy] if policy else []
        code, report, err = run_cli("memory", RNN, "--args", ARGS, *extra)
        assert code == 0, err
        total[policy] = report.splitlines()[-1].split()[-2:]
    assert total[None] == ["504", "B"] and total["100B"] == ["144", "B"]
