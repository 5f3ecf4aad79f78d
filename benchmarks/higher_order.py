"""The cost of a Hessian-vector product against the gradient it differentiates.

    OPENBLAS_NUM_THREADS=1 python benchmarks/higher_order.py

An HVP is forward mode over the reverse sweep: it should cost a small constant
times one gradient, whatever the number of inputs, where a Hessian column by
finite differences of gradients costs two gradients and a full Hessian n of them.
Writes benchmarks/HIGHER_ORDER.md.
"""
import os

for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import adjoint  # noqa: E402


def mlp(W1, W2, X, Y):
    h = np.tanh(X @ W1)
    logits = h @ W2
    z = logits - np.max(logits, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1))


def rnn(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


RUNS = 61


def main() -> str:
    rng, order = np.random.default_rng(0), np.random.default_rng(1)
    workloads = [
        ("MLP 64x128x10, batch 128", mlp,
         (rng.normal(size=(64, 128)) * 0.1, rng.normal(size=(128, 10)) * 0.1,
          rng.normal(size=(128, 64)), np.eye(10)[rng.integers(0, 10, 128)])),
        ("RNN 200 steps, hidden 64", rnn,
         (rng.normal(size=(64, 64)) / 8, rng.normal(size=(200, 64)), rng.normal(size=64))),
        ("RNN 200 steps, hidden 256", rnn,
         (rng.normal(size=(256, 256)) / 16, rng.normal(size=(200, 256)), rng.normal(size=256))),
        ("Rosenbrock, n = 1000, scalar loop", rosenbrock, (rng.random(1000) + 0.5,)),
    ]
    lines = ["# Hessian-vector products: cost against the gradient", "",
             "Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/higher_order.py`  ",
             f"Machine: {platform.machine()}, Python {platform.python_version()}, NumPy "
             f"{np.__version__}; medians of {RUNS} interleaved runs, each round in a "
             "random order, in CPU time of the one thread (BLAS runs on it too): on a "
             "shared machine, time spent waiting for another process does not count.", "",
             "| workload | inputs | T(f) | T(grad) | T(hvp) | T(hvp)/T(grad) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, f, args in workloads:
        g, h = adjoint.grad(f), adjoint.hvp(f)
        v = rng.normal(size=np.shape(args[0]))
        hv = h(*args, v)
        eps = 1e-6
        moved = [list(args), list(args)]
        moved[0][0], moved[1][0] = args[0] + eps * v, args[0] - eps * v
        assert np.allclose(hv, (g(*moved[0]) - g(*moved[1])) / (2 * eps), rtol=1e-4, atol=1e-6)
        times = {"f": [], "grad": [], "hvp": []}
        calls = [("f", lambda: f(*args)), ("grad", lambda: g(*args)),
                 ("hvp", lambda: h(*args, v))]
        for _ in range(RUNS):
            # in an order drawn each round: the call after another runs on its caches
            for k in order.permutation(len(calls)):
                key, call = calls[k]
                t0 = time.thread_time()
                call()
                times[key].append(time.thread_time() - t0)
        tf, tg, th = (statistics.median(times[k]) for k in ("f", "grad", "hvp"))
        lines.append(f"| {name} | {np.size(args[0])} | {tf * 1e3:.2f} ms | {tg * 1e3:.2f} ms | "
                     f"{th * 1e3:.2f} ms | {th / tg:.2f} |")
    lines += ["", "Every HVP is first checked against central differences of two gradients. "
              "One HVP costs a small constant times one gradient, independent of the number "
              "of inputs; a full Hessian (adjoint.hessian) costs one HVP per input."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = main()
    print(text)
    (Path(__file__).parent / "HIGHER_ORDER.md").write_text(text)
