"""A ~50-line numeric model for the compile-time benchmark: an embedding, layer norm,
one self-attention head, a gated unit, a small time-stepping loop with a branch,
and a Huber loss with L2 regularisation. `python benchmarks/compile_model.py
--cache-dir DIR` compiles (or loads) its gradient and prints timings as JSON; the
benchmark runs it twice in fresh processes: first on an empty cache folder (a
compile), then again on the same folder (a load from the disk cache).
"""
from __future__ import annotations

import numpy as np

WRT = (0, 1, 2, 3, 4, 5, 6, 7)


def model(W_in, b_in, W_q, W_k, W_v, W_out, gamma, beta, X, y, dt, n_steps):
    # embedding
    H = np.tanh(X @ W_in + b_in)
    # layer norm over features
    mu = np.mean(H, axis=1, keepdims=True)
    D = H - mu
    var = np.mean(D ** 2, axis=1, keepdims=True)
    Hn = gamma * D / np.sqrt(var + 1e-5) + beta
    # one attention head
    Q = Hn @ W_q
    K = Hn @ W_k
    V = Hn @ W_v
    S = Q @ K.T / np.sqrt(Q.shape[1])
    S = S - np.max(S, axis=1, keepdims=True)
    P = np.exp(S)
    P = P / np.sum(P, axis=1, keepdims=True)
    Z = Hn + P @ V
    # gated unit
    G = 1.0 / (1.0 + np.exp(-Z))
    Z = Z * G
    # a damped oscillator driven by the features, explicit Euler steps
    drive = np.mean(Z, axis=0)
    u = 0.0 * drive
    v = 0.0 * drive
    for k in range(n_steps):
        acc = drive - u - 0.2 * v
        if k % 4 == 3:
            acc = acc - 0.05 * u ** 3
        v = v + dt * acc
        u = u + dt * v
    energy = np.sum(0.5 * v ** 2 + 0.5 * u ** 2)
    # readout
    pred = Z @ W_out + 0.01 * energy
    resid = pred - y
    a = np.abs(resid)
    huber = np.where(a < 1.0, 0.5 * resid ** 2, a - 0.5)
    data = np.mean(huber)
    reg = np.sum(W_in ** 2) + np.sum(W_q ** 2) + np.sum(W_k ** 2)
    reg = reg + np.sum(W_v ** 2) + np.sum(W_out ** 2)
    if data > 10.0:
        data = 10.0 + np.log(data - 9.0)
    return data + 1e-3 * reg


def make_args():
    r = np.random.default_rng(1)
    n, d, h = 32, 16, 24
    X = r.standard_normal((n, d))
    y = r.standard_normal(n)
    return (r.standard_normal((d, h)) / 4, 0.1 * r.standard_normal(h),
            r.standard_normal((h, h)) / 5, r.standard_normal((h, h)) / 5,
            r.standard_normal((h, h)) / 5, r.standard_normal(h) / 5,
            1.0 + 0.1 * r.standard_normal(h), 0.1 * r.standard_normal(h),
            X, y, 0.05, 20)


def _probe(cache_dir: str) -> dict:
    """Import adjoint, build and call the gradient; timings of each step, in seconds."""
    import time
    t0 = time.perf_counter()
    import adjoint
    import adjoint.api as api
    t1 = time.perf_counter()
    generated = []
    real_run = api.run

    def counting_run(job, first="lower", last="emit"):  # instrumentation: a compile here?
        if first == "observe":
            generated.append(1)
        return real_run(job, first, last)

    api.run = counting_run
    args = make_args()
    t2 = time.perf_counter()
    g = adjoint.grad(model, WRT, cache_dir=cache_dir)
    t3 = time.perf_counter()
    g(*args)
    t4 = time.perf_counter()
    steady = []
    for _ in range(20):
        s = time.perf_counter()
        g(*args)
        steady.append(time.perf_counter() - s)
    steady.sort()
    return {"import_s": t1 - t0, "grad_s": t3 - t2, "first_call_s": t4 - t3,
            "steady_call_s": steady[len(steady) // 2], "generated": bool(generated),
            "first_gradient_s": (t4 - t2) - steady[len(steady) // 2]}


if __name__ == "__main__":
    import argparse
    import json
    p = argparse.ArgumentParser()
    p.add_argument("--cache-dir", required=True)
    print(json.dumps(_probe(p.parse_args().cache_dir)))
