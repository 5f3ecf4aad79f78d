"""The command line's options: `--checkpoint` as a snapshot count or a memory budget."""
import argparse
import contextlib
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

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
    # h is 3 floats (24 bytes): 100 bytes hold 4 states; the plan keeps up to snapshots + 1
    # of them and the loop keeps its final state: 2 snapshots (4 were planned: 144 bytes)
    code, text, _ = run_cli("emit", RNN, "--args", ARGS, "--checkpoint", "100B")
    assert code == 0 and "checkpoint_plan(len(_range), 2)" in text
    total = {}
    for policy in (None, "100B"):
        extra = ["--checkpoint", policy] if policy else []
        code, report, err = run_cli("memory", RNN, "--args", ARGS, *extra)
        assert code == 0, err
        total[policy] = report.splitlines()[-1].split()[-2:]
    assert total[None] == ["504", "B"] and total["100B"] == ["96", "B"]  # within 100 B


# ---------------------------------------------------------------- emitted files and their facts

def _emitted(tmp_path, target, *extra):
    out = tmp_path / f"emitted_{len(list(tmp_path.iterdir()))}.py"
    code, _, err = run_cli("emit", target, *extra, "-o", str(out))
    assert code == 0, err
    namespace = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    return out.read_text(), namespace


@pytest.mark.parametrize("name", ["reductions", "product", "sum_squares"])
def test_emit_without_args_is_generic(tmp_path, name):
    from adjoint.testing import numeric_grad
    from tests import programs as P
    text, ns = _emitted(tmp_path, f"tests/programs.py:{name}")
    assert "Specialised" not in text and "assert" not in text
    f, grad = getattr(P, name), ns[f"{name}_grad"]
    rng = np.random.default_rng(5)
    shapes = [(3, 4), (5, 2), (1, 6)] if name == "reductions" else [(3,), (7,), (1,)]
    for shape in shapes:
        x = rng.normal(size=shape)
        np.testing.assert_allclose(grad(x), numeric_grad(f, (x,)), rtol=1e-6, atol=1e-8)


def test_emit_with_args_checks_them_on_entry(tmp_path):
    from adjoint.testing import numeric_grad
    from tests import programs as P
    text, ns = _emitted(tmp_path, "tests/programs.py:reductions", "--args", "np.ones((3, 4))")
    header = text.splitlines()[1]
    assert header.startswith("# Specialised for x.shape == (3, 4), x.dtype.kind == 'f'")
    assert "adjoint emit programs.py:reductions --args ..." in header
    grad = ns["reductions_grad"]
    x = np.random.default_rng(6).normal(size=(3, 4))
    np.testing.assert_allclose(grad(x), numeric_grad(P.reductions, (x,)), rtol=1e-6, atol=1e-8)
    for wrong in (np.ones((4, 3)), np.ones((3, 4), dtype=int), 1.0):
        with pytest.raises(ValueError, match=r"this gradient was generated for "
                           r"x.shape == \(3, 4\), x.dtype.kind == 'f'; regenerate it with: "
                           r"adjoint emit programs.py:reductions --args"):
            grad(wrong)


def test_emit_with_an_int_argument_checks_its_value(tmp_path):
    from tests import programs as P
    text, ns = _emitted(tmp_path, "tests/programs.py:scalar_loop", "--args", "0.3, 20")
    grad = ns["scalar_loop_grad"]
    assert grad(0.3, 20) == pytest.approx(adjoint_grad(P.scalar_loop)(0.3, 20), rel=1e-12)
    with pytest.raises(ValueError, match="n == 20"):
        grad(0.3, 5)


def adjoint_grad(f):
    import adjoint
    return adjoint.grad(f)


def test_source_with_args_is_checked_only_when_the_code_holds_a_fact():
    import adjoint
    from tests import programs as P
    assert "assert" not in adjoint.source(P.product)
    text = adjoint.source(P.product, args=(np.ones(5),), mode="vjp")
    assert "def product_fwd(x):\n    \"\"\"" in text and "    if not (isinstance(x, np.ndarray)" in text


# ---------------------------------------------------------------- safe writes and usage errors

NEURON = "examples/neuron.py:loss"
NEURON_ARGS = "0.5, 1.5, 0.1, 1.0"


def one_line_error(code, out, err, *words):
    assert code == 2 and not out, (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_emit_refuses_to_overwrite_its_source(tmp_path, monkeypatch):
    src = tmp_path / "model.py"
    src.write_text((Path("examples/neuron.py")).read_text())
    before = src.read_text()
    code, out, err = run_cli("emit", f"{src}:loss", "-o", str(src))
    one_line_error(code, out, err, "would overwrite the source", "choose another file")
    # the same file under another spelling, and through a link
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    one_line_error(*run_cli("emit", "model.py:loss", "-o", "sub/../model.py"), "overwrite")
    (tmp_path / "link.py").symlink_to(src)
    one_line_error(*run_cli("emit", "model.py:loss", "-o", "link.py"), "overwrite")
    one_line_error(*run_cli("explain", "model.py:loss", "--html", "model.py"), "--html")
    assert src.read_text() == before


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_usual_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        for argv, name in [(("emit", NEURON, "--args", NEURON_ARGS), "g.py"),
                           (("explain", NEURON, "--args", NEURON_ARGS, "--html"), "e.html")]:
            out = tmp_path / name
            code, _, err = run_cli(*argv, *([] if argv[-1] == "--html" else ["-o"]), str(out))
            assert code == 0, err
            assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
            # an existing file keeps its mode, as open(path, 'w') keeps it
            out.chmod(0o640)
            assert run_cli(*argv, *([] if argv[-1] == "--html" else ["-o"]), str(out))[0] == 0
            assert stat.S_IMODE(out.stat().st_mode) == 0o640
    finally:
        os.umask(old)


@pytest.mark.parametrize("argv, words", [
    (("emit", NEURON, "-o", "no/such/folder/g.py"), ["no such folder: no/such/folder"]),
    (("explain", NEURON, "--html", "no/such/e.html"), ["--html", "no such folder"]),
    (("ir", NEURON, "--svg", "no/such/g.svg"), ["--svg", "no such folder"]),
    (("emit", NEURON, "--args", "0.5, 1.5"), ["--args gives 2 arguments", "loss(w, x, b, t)",
                                              "missing a required argument: 'b'"]),
    (("emit", NEURON, "--args", "1, 2, 3, 4, 5"), ["--args gives 5 arguments"]),
    (("check", NEURON, "--args", "0.5"), ["--args gives 1 argument "]),
    (("memory", NEURON, "--args", "0.5, 1.5, 0.1"), ["--args gives 3 arguments"]),
    (("emit", NEURON, "--args", "0.5, 1.5, 0.1,"), ["--args gives 3 arguments"]),
    (("emit", NEURON, "--args", "np.ones(3"), ["--args", "SyntaxError"]),
    (("emit", NEURON, "--args", "ones(3)"), ["--args", "NameError"]),
    (("emit", NEURON, "--wrt", "w,zz"), ["--wrt zz", "no parameter `zz`", "w, x, b, t"]),
    (("check", NEURON, "--args", NEURON_ARGS, "--wrt", "v"), ["no parameter `v`"]),
    (("emit", NEURON, "--wrt", "4"), ["--wrt 4", "no parameter at position 4"]),
    (("emit", "examples/no_such_file.py:loss"), ["no such file"]),
    (("emit", "examples/neuron.py:nothing"), ["has no function 'nothing'"]),
    (("emit", "examples/neuron.py"), ["expected FILE.py:FUNC"]),
])
def test_a_mistake_in_the_command_is_one_line_and_status_2(argv, words, tmp_path):
    one_line_error(*run_cli(*argv), *words)


def test_the_installed_command_reports_a_mistake_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "adjoint", "emit", NEURON, "-o",
                           str(tmp_path / "missing" / "g.py")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.startswith("adjoint emit: error: -o ") and done.stderr.count("\n") == 1


def test_version_and_help():
    from adjoint import __version__
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"adjoint {__version__}"
    code, out, _ = run_cli("--help")
    assert code == 0
    listed = out.split("positional arguments:")[1]
    for command in ("emit", "check", "memory", "ir", "explain", "cache"):
        assert f"\n    {command} " in listed, out
    assert "adjoint check examples/neuron.py:loss" in out  # the examples are shown


def test_cache_info_and_clear(tmp_path, monkeypatch):
    import adjoint
    cache = tmp_path / "cache"
    monkeypatch.setenv("ADJOINT_CACHE_DIR", str(cache))
    from tests import programs as P
    adjoint.grad(P.product)(np.arange(1.0, 5.0))
    (cache / "notes.txt").write_text("not adjoint's")  # never counted nor removed
    files = sorted(p for p in cache.iterdir() if p.suffix in (".py", ".idx"))  # modules, index
    size = sum(p.stat().st_size for p in files)
    code, out, _ = run_cli("cache", "info")
    assert code == 0
    assert f"folder: {cache}\n" in out and f"files:  {len(files)}\n" in out
    assert f"bytes:  {size} bytes" in out and "cap:    209715200 bytes (200.0 MiB)" in out
    code, out, _ = run_cli("cache", "clear")
    assert code == 0 and out == f"removed {len(files)} files ({size} bytes) from {cache}\n"
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]
    assert "files:  0\n" in run_cli("cache", "info")[1]
