"""`adjoint emit --standalone` writes a module that imports only numpy, is the same
file byte for byte whichever folder it is emitted from, and computes what
adjoint.grad computes, in a process where adjoint cannot be imported."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap

import numpy as np

MODEL = textwrap.dedent("""
    import numpy as np

    import adjoint


    def rnn(W, xs, h0):
        h = h0
        for t in adjoint.checkpointed(range(xs.shape[0]), snapshots=3):
            h = np.tanh(W @ h + xs[t])
        return np.sum(h * h)


    def damped(x):
        return np.sum(adjoint.stop_gradient(np.abs(x)) * x * x)
    """)

RUN = textwrap.dedent("""
    import sys
    sys.modules["adjoint"] = None  # any import of adjoint fails
    import numpy as np
    rng = np.random.default_rng(0)
    W, xs, h0 = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(10, 3)), rng.normal(size=3)
    ns = {}
    exec(open("rnn_grad.py").read(), ns)
    np.save("rnn.npy", ns["rnn_grad"](W, xs, h0))
    ns = {}
    exec(open("damped_grad.py").read(), ns)
    np.save("damped.npy", ns["damped_grad"](np.array([1.0, -2.0, 0.5])))
    """)


def emit(folder, target: str) -> str:
    out = subprocess.run([sys.executable, "-m", "adjoint", "emit", target, "--standalone"],
                         capture_output=True, text=True, cwd=folder, check=True)
    return out.stdout


def test_standalone_files_run_without_adjoint_and_do_not_depend_on_the_folder(tmp_path):
    import adjoint
    folders = [tmp_path / "a", tmp_path / "b" / "deeper"]
    texts = []
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "model.py").write_text(MODEL)
        texts.append({name: emit(folder, f"model.py:{name}") for name in ("rnn", "damped")})
    assert texts[0] == texts[1]  # byte for byte
    work = folders[0]
    for name, text in texts[0].items():
        imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
        assert imports == ["import numpy as np"], imports
        (work / f"{name}_grad.py").write_text(text)
    (work / "run.py").write_text(RUN)
    subprocess.run([sys.executable, "run.py"], cwd=work, check=True)
    spec = importlib.util.spec_from_file_location("standalone_model", work / "model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    rng = np.random.default_rng(0)
    W, xs, h0 = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(10, 3)), rng.normal(size=3)
    np.testing.assert_allclose(np.load(work / "rnn.npy"), adjoint.grad(model.rnn)(W, xs, h0),
                               rtol=1e-12)
    np.testing.assert_allclose(np.load(work / "damped.npy"),
                               adjoint.grad(model.damped)(np.array([1.0, -2.0, 0.5])))
    shutil.rmtree(tmp_path)


HELPERS = textwrap.dedent("""
    import numpy as np


    def joined(x):
        return np.sum(np.tanh(np.concatenate([x, x ** 2])))


    def stacked(L):
        return np.sum(np.stack(L) ** 2)


    def contracted(x):
        return np.einsum('i,i->', x, x ** 2)


    def selected(x):
        return np.sum(np.select([x > 1, x < 0], [x ** 2, x * 3.0], default=0.5))
    """)


def test_standalone_files_paste_what_their_helpers_read(tmp_path):
    # round 7, K7m: split_like was pasted without the private helpers it calls (_size,
    # _like), einsum's without _LETTERS, select's without unbroadcast: NameError
    import pickle

    import adjoint
    (tmp_path / "helpers_model.py").write_text(HELPERS)
    spec = importlib.util.spec_from_file_location("helpers_model", tmp_path / "helpers_model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    x = np.array([0.3, -0.7, 1.2])
    cases = {"joined": (x,), "stacked": ([x, 2.0 * x],), "contracted": (x,), "selected": (x,)}
    for name, args in cases.items():
        (tmp_path / f"{name}_grad.py").write_text(
            adjoint.source(getattr(model, name), args=args, standalone=True))
    (tmp_path / "args.pkl").write_bytes(pickle.dumps(cases))
    run = ("import sys, pickle\nsys.modules['adjoint'] = None\nimport numpy as np\n"
           "cases = pickle.load(open('args.pkl', 'rb'))\nout = {}\nfor name, args in cases.items():\n"
           "    ns = {}\n    exec(open(name + '_grad.py').read(), ns)\n"
           "    out[name] = ns[name + '_grad'](*args)\npickle.dump(out, open('out.pkl', 'wb'))\n")
    (tmp_path / "run.py").write_text(run)
    subprocess.run([sys.executable, "run.py"], cwd=tmp_path, check=True)
    got = pickle.loads((tmp_path / "out.pkl").read_bytes())
    for name, args in cases.items():
        want = adjoint.grad(getattr(model, name))(*args)
        for g, w in zip(got[name] if name == "stacked" else [got[name]],
                        want if name == "stacked" else [want]):
            np.testing.assert_allclose(g, w, rtol=1e-12)
