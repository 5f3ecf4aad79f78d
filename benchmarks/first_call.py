"""The first call of a gradient on a long loop (issue 16): compiling, observing the
call's kinds and the gradient's own run, against T(f).

Each measurement is a new process with an empty cache folder:
- T(f): the median of f over 5 calls;
- first: `adjoint.grad(f)` and its first call;
- compile: the same at a tiny size (10 steps), less its steady call: the code is the
  same, so this is the compile time without the long observation (after one such
  compile that warms the process: the first imports the compiler's modules);
- steady: the median of 3 later calls.
The target: first <= 3 T(f) + compile. Wall and CPU (process_time) are both given.

    OPENBLAS_NUM_THREADS=1 python benchmarks/first_call.py [--n 1000000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, statistics, sys, tempfile, time
import numpy as np
sys.path.insert(0, {here!r})
import workloads as W
import adjoint

name, n = sys.argv[1], int(sys.argv[2])
f = {{w.key: w for w in W.WORKLOADS}}[name].f
rng = np.random.default_rng(0)
def args_of(n):
    if name == "sin_loop":
        return (1.0, 1.0, n)
    if name == "rnn":
        H = 32
        return (rng.standard_normal((H, H)) * (0.9 / np.sqrt(H)),
                0.5 * rng.standard_normal((n, H)), np.zeros(H))
    if name == "hmm":
        K = 8
        return (np.log(rng.dirichlet(np.ones(K))), np.log(rng.dirichlet(np.ones(K), size=K)),
                rng.standard_normal((n, K)))
    return (1.0 + 0.01 * rng.standard_normal(n),)

def clocks():
    return time.perf_counter(), time.process_time()

def since(t):
    w, c = clocks()
    return w - t[0], c - t[1]

def median_of(call, k):
    runs = []
    for _ in range(k):
        t = clocks(); call(); runs.append(since(t))
    return tuple(statistics.median(r[i] for r in runs) for i in range(2))

small, big = args_of(10), args_of(n)
wrt = (0,)
adjoint.grad(f, wrt=wrt, cache_dir=tempfile.mkdtemp())(*small)  # imports, warm caches
g = adjoint.grad(f, wrt=wrt, cache_dir=tempfile.mkdtemp())
t = clocks(); g(*small); first_small = since(t)
steady_small = median_of(lambda: g(*small), 5)
compile_ = tuple(a - b for a, b in zip(first_small, steady_small))
tf = median_of(lambda: f(*big), 5)
g = adjoint.grad(f, wrt=wrt, cache_dir=tempfile.mkdtemp())
t = clocks(); g(*big); first = since(t)
steady = median_of(lambda: g(*big), 3)
print(json.dumps(dict(tf=tf, first=first, compile=compile_, steady=steady)))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    opts = parser.parse_args()
    names = opts.only or ["sin_loop", "product", "rosenbrock", "rnn", "hmm"]
    sizes = {"rnn": opts.n // 100, "hmm": opts.n // 100}  # steps of a matrix loop
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_NUM_THREADS="1")
    results: dict = {name: [] for name in names}
    for _ in range(opts.rounds):  # interleaved: one process per workload per round
        for name in names:
            out = subprocess.run([sys.executable, "-c", CHILD.format(here=HERE), name,
                                  str(sizes.get(name, opts.n))],
                                 capture_output=True, text=True, env=env,
                                 cwd=tempfile.gettempdir())  # PYTHONPATH picks adjoint
            if out.returncode:
                sys.exit(f"{name}: {out.stderr}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"load average at end: {os.getloadavg()}")
    print("| workload | steps | T(f) | first call | compile | first / T(f) | "
          "(first - compile) / T(f) | same, CPU | steady / T(f) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        runs = results[name]

        def med(key, clock=0):
            return statistics.median(r[key][clock] for r in runs)

        rest = [(r["first"][c] - r["compile"][c]) / r["tf"][c] for r in runs for c in (0,)]
        rest_cpu = [(r["first"][1] - r["compile"][1]) / r["tf"][1] for r in runs]
        print(f"| {name} | {sizes.get(name, opts.n):,} | {med('tf'):.3f} s | "
              f"{med('first'):.3f} s | {med('compile') * 1e3:.0f} ms | "
              f"{statistics.median(r['first'][0] / r['tf'][0] for r in runs):.2f} | "
              f"{statistics.median(rest):.2f} | {statistics.median(rest_cpu):.2f} | "
              f"{statistics.median(r['steady'][0] / r['tf'][0] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
