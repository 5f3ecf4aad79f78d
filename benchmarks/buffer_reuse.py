#!/usr/bin/env python
"""Buffer reuse (issue 16, adjoint/passes/buffers.py): the gradient of an elementwise
chain next to f and to the in-place gradient a careful person writes by hand.

    OPENBLAS_NUM_THREADS=1 python benchmarks/buffer_reuse.py

Two functions of x with 10^6 elements: sum(tanh(x)), whose gradient needs one buffer,
and sum(tanh(x) ** 2) (run.py's `tanh` workload), whose gradient needs two. The
contenders run interleaved in shuffled order, 61 rounds; the table shows the medians
of wall and CPU time, and tracemalloc's peak of one call.
"""
from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"

import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import adjoint  # noqa: E402


def sum_tanh(x):
    return np.sum(np.tanh(x))


def sum_tanh_in_place(x):
    t = np.tanh(x)
    t *= t
    np.subtract(1.0, t, out=t)
    return t


def tanh_sq(x):
    return np.sum(np.tanh(x) ** 2)


def tanh_sq_in_place(x):
    t = np.tanh(x)
    u = t * t
    np.subtract(1.0, u, out=u)
    t *= u
    t *= 2.0
    return t


def peak(fn, x) -> int:
    tracemalloc.start()
    fn(x)
    out = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out


def main(rounds: int = 61) -> None:
    x = np.random.default_rng(0).normal(size=1_000_000)
    cache = tempfile.mkdtemp()
    rows = []
    for f, hand in ((sum_tanh, sum_tanh_in_place), (tanh_sq, tanh_sq_in_place)):
        grad = adjoint.grad(f, cache_dir=cache)
        np.testing.assert_allclose(grad(x), hand(x), rtol=1e-12)
        rows.append((f.__name__, {"f": f, "hand, in place": hand, "adjoint": grad}))
    samples = {(name, c): ([], []) for name, cs in rows for c in cs}
    calls = [(name, c, fn) for name, cs in rows for c, fn in cs.items()]
    for _ in range(rounds):
        random.shuffle(calls)
        for name, c, fn in calls:
            w, p = time.perf_counter(), time.process_time()
            fn(x)
            samples[name, c][0].append(time.perf_counter() - w)
            samples[name, c][1].append(time.process_time() - p)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| f | contender | wall | / f | CPU | / f | peak memory | / hand |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, cs in rows:
        wall = {c: statistics.median(samples[name, c][0]) for c in cs}
        cpu = {c: statistics.median(samples[name, c][1]) for c in cs}
        mem = {c: peak(fn, x) for c, fn in cs.items()}
        for c in cs:
            print(f"| {name} | {c} | {wall[c] * 1e3:.2f} ms | {wall[c] / wall['f']:.2f} | "
                  f"{cpu[c] * 1e3:.2f} ms | {cpu[c] / cpu['f']:.2f} | {mem[c] / 2**20:.1f} MiB | "
                  f"{mem[c] / mem['hand, in place']:.2f} |")


if __name__ == "__main__":
    main()
