"""Memory against recomputation: an RNN-like loop under every checkpoint policy.

    OPENBLAS_NUM_THREADS=1 python benchmarks/checkpointing.py [--quick]

n = 1000 steps of h = tanh(W @ h + xs[t]) with a state of 128 floats. For the
gradient with respect to W, it measures peak memory (tracemalloc) and time with
every state stored, and with k in {4, 10, 32} binomial snapshots; it counts the
steps the backward sweep recomputes and compares them with the revolve optimum
from the closed form. Writes benchmarks/CHECKPOINTING.md.
"""
import os

for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import adjoint  # noqa: E402
from adjoint.checkpoint.schedule import cost, plan  # noqa: E402


def rnn(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


def peak_bytes(fn, *args) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(quick: bool) -> str:
    n, width = (200, 64) if quick else (1000, 128)
    reps = 5 if quick else 15
    rng = np.random.default_rng(0)
    W = rng.normal(size=(width, width)) / np.sqrt(width)
    xs, h0 = rng.normal(size=(n, width)), rng.normal(size=width)
    policies = [None, 4, 10, 32]
    grads = {k: adjoint.grad(rnn, checkpoint=k) for k in policies}
    reference = grads[None](W, xs, h0)
    for k, g in grads.items():
        assert np.allclose(g(W, xs, h0), reference, rtol=1e-12, atol=1e-12), k
    times = {k: [] for k in policies}
    t_f = []
    for _ in range(reps):  # interleaved, so drift on a shared machine hits all alike
        t0 = time.perf_counter()
        rnn(W, xs, h0)
        t_f.append(time.perf_counter() - t0)
        for k in policies:
            t0 = time.perf_counter()
            grads[k](W, xs, h0)
            times[k].append(time.perf_counter() - t0)
    f_time = statistics.median(t_f)
    state = h0.nbytes
    base_peak = peak_bytes(grads[None], W, xs, h0)
    rows = []
    for k in policies:
        peak = base_peak if k is None else peak_bytes(grads[k], W, xs, h0)
        t = statistics.median(times[k])
        if k is None:
            rows.append(("store all", peak, "-", "-", None, t))
            continue
        p = plan(n, k)
        optimum = cost(n, k - 1) - (n - 1)
        bound = 1 + (n + p.recomputed) / n  # forward passes the schedule implies, + reverse
        rows.append((f"k = {k}", peak, p.recomputed, optimum, bound, t))
    lines = [
        "# Checkpointing: memory against recomputation",
        "",
        f"Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/checkpointing.py"
        f"{' --quick' if quick else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}; medians of {reps} interleaved runs.",
        "",
        f"RNN loop h = tanh(W @ h + xs[t]), n = {n} steps, state of {width} floats "
        f"({state} bytes); gradient with respect to W. T(f) = {f_time * 1e3:.2f} ms.",
        "",
        "| policy | peak memory | recomputed steps | revolve optimum | passes implied | "
        "time | T/T(f) | bound T/T(f) | T / bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    t_store = statistics.median(times[None])
    for name, peak, rec, opt, passes, t in rows:
        # the store-all gradient plus one forward step per extra step the plan runs
        limit = None if passes is None else t_store + (passes - 1) * f_time
        lines.append(f"| {name} | {peak / 1024:.0f} KiB | {rec} | {opt} | "
                     f"{'-' if passes is None else f'{passes:.2f}'} | {t * 1e3:.2f} ms | "
                     f"{t / f_time:.2f} | {'-' if limit is None else f'{limit / f_time:.2f}'} | "
                     f"{'-' if limit is None else f'{t / limit:.2f}'} |")
    lines += [
        "",
        "Peak memory is tracemalloc's peak during one gradient call. Stored states are "
        f"{n} x {state} B = {n * state / 1024:.0f} KiB with store-all; with k snapshots the "
        "plan holds at most k + 1 states. `recomputed steps` counts the steps the backward "
        "sweep runs again; `revolve optimum` is R(n, k) - (n - 1) from the binomial closed "
        "form (the forward sweep itself supplies the first n - 1 steps of the schedule). "
        "`passes implied` is 1 (forward) + (n + recomputed) / n (each reversed step runs "
        "forward once more inside its adjoint, plus the recomputation). The `bound` is the "
        "time the schedule implies: the store-all gradient plus one run of f for each pass "
        "beyond its single forward sweep, T(store all) + (passes - 1) T(f); what is left "
        "above it is the cost of calling a step function per step.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    text = main(quick)
    print(text)
    if not quick:
        (Path(__file__).parent / "CHECKPOINTING.md").write_text(text)
