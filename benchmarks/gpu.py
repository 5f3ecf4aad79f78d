#!/usr/bin/env python
"""Gradients on a CUDA GPU: adjoint's generated code on CuPy arrays against JAX `jit` on
the same GPU (issue 18), for the vectorised workloads and the RNN of workloads.py.

    python benchmarks/gpu.py [--rounds 30]

Each gradient is checked against the hand-written NumPy one first; the contenders are
interleaved round-robin, each call followed by a device synchronisation, and the table
gives median wall times in ms (the first JAX call, which compiles, is not timed). On a
machine without CuPy, JAX's CUDA build or a GPU, it says which is missing and exits 0:
the machine the project is developed on has no GPU, so RESULTS.md has no numbers yet.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NAMES = ("tanh", "logreg", "mlp", "rnn")


def missing() -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "CuPy sees no CUDA GPU"
    except ImportError:
        return "CuPy is not installed (pip install 'adjoint[gpu]')"
    except Exception as e:  # CuPy without a CUDA driver
        return f"CuPy cannot reach a GPU: {e}"
    try:
        import jax
        if not any(d.platform == "gpu" for d in jax.devices()):
            return "JAX has no GPU device (pip install 'jax[cuda12]')"
    except (ImportError, RuntimeError) as e:
        return f"JAX cannot reach a GPU: {e}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    options = parser.parse_args()
    why = missing()
    if why:
        print(f"benchmarks/gpu.py: skipped, {why}")
        return 0
    import cupy
    import jax
    jax.config.update("jax_enable_x64", True)  # float64, as the NumPy workloads are
    import adjoint
    import peers_jax
    from workloads import WORKLOADS

    gpu = next(d for d in jax.devices() if d.platform == "gpu")
    print(f"{'workload':<10} {'size':<28} {'adjoint+CuPy ms':>16} {'JAX jit ms':>11} "
          f"{'ratio':>6}")
    for w in (w for w in WORKLOADS if w.key in NAMES):
        args = w.make_args(False)
        ours = adjoint.grad(w.f, wrt=w.wrt)
        theirs = jax.jit(jax.grad(getattr(peers_jax, w.f.__name__), argnums=w.wrt))
        on_cupy = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        on_jax = [jax.device_put(a, gpu) if isinstance(a, np.ndarray) else a for a in args]
        want = w.hand(*args)
        want = want if isinstance(want, tuple) else (want,)
        got_ours = ours(*on_cupy)
        got_ours = got_ours if isinstance(got_ours, tuple) else (got_ours,)
        for g, h in zip(got_ours, want):
            np.testing.assert_allclose(cupy.asnumpy(g), h, rtol=1e-8, atol=1e-10)
        for g, h in zip(theirs(*on_jax), want):
            np.testing.assert_allclose(np.asarray(g), h, rtol=1e-8, atol=1e-10)

        def run_ours():
            ours(*on_cupy)
            cupy.cuda.Device().synchronize()

        def run_theirs():
            jax.block_until_ready(theirs(*on_jax))

        times = {run_ours: [], run_theirs: []}
        for _ in range(options.rounds):
            for run in times:
                start = time.perf_counter()
                run()
                times[run].append(time.perf_counter() - start)
        a, j = (statistics.median(times[r]) * 1e3 for r in (run_ours, run_theirs))
        print(f"{w.key:<10} {w.size(False):<28} {a:>16.3f} {j:>11.3f} {a / j:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
