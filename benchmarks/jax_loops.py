"""The loop workloads in JAX, written as a JAX user writes loops: `lax.fori_loop` where f
indexes by i, `lax.scan` where f steps through the rows of an array, the gradient
`jax.jit(jax.grad(f))`, float64. (peers_jax.py has the same workloads as plain Python
loops, which tracing unrolls: fine at 1000 steps, not at 1e5.)

For the product and Rosenbrock, which index x[i], there are two natural forms: the
fori_loop that indexes as f does, and a scan over the slices of x. Both are here;
numba_loops.py times both and keeps the faster.

Import this module before jax is imported anywhere else: it pins XLA to one thread.
"""
from __future__ import annotations

import os

# one thread, as benchmarks/run.py does (the machine is shared)
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402


def sin_loop(x, a, n):
    return lax.fori_loop(0, n, lambda i, x: jnp.sin(x) * a, x)


def product(x):
    return lax.fori_loop(0, x.shape[0], lambda i, p: p * x[i], 1.0)


def product_scan(x):
    p, _ = lax.scan(lambda p, xi: (p * xi, None), 1.0, x)
    return p


def rosenbrock(x):
    def body(i, s):
        return s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return lax.fori_loop(0, x.shape[0] - 1, body, 0.0)


def rosenbrock_scan(x):
    def step(s, pair):
        xi, xn = pair
        return s + 100.0 * (xn - xi ** 2) ** 2 + (1.0 - xi) ** 2, None
    s, _ = lax.scan(step, 0.0, (x[:-1], x[1:]))
    return s


def rnn(W, x, h):
    def step(h, xt):
        return jnp.tanh(W @ h + xt), None
    h, _ = lax.scan(step, h, x)
    return jnp.sum(h ** 2)


def hmm(log_pi, log_A, log_B):
    def step(alpha, bt):
        s = alpha[:, None] + log_A
        m = jnp.max(s, axis=0)
        return m + jnp.log(jnp.sum(jnp.exp(s - m), axis=0)) + bt, None
    alpha, _ = lax.scan(step, log_pi + log_B[0], log_B[1:])
    m = jnp.max(alpha)
    return m + jnp.log(jnp.sum(jnp.exp(alpha - m)))


# workload key -> its JAX forms (name, f); static: the arguments that are trip counts
FORMS = {
    "sin_loop": [("fori_loop", sin_loop)],
    "product": [("fori_loop", product), ("scan", product_scan)],
    "rosenbrock": [("fori_loop", rosenbrock), ("scan", rosenbrock_scan)],
    "rnn": [("scan", rnn)],
    "hmm": [("scan", hmm)],
}
STATIC = {"sin_loop": (2,)}


def grad(key: str, form: str, wrt):
    """jax.jit(jax.grad(f, wrt)) of one workload's form; a trip count is static, so
    fori_loop has a known length and reverse mode goes through it."""
    f = dict(FORMS[key])[form]
    return jax.jit(jax.grad(f, wrt), static_argnums=STATIC.get(key, ()))


def device_args(key: str, args):
    """The arguments as JAX takes them: arrays on the device (once, outside the timing),
    the static trip count as it is."""
    static = STATIC.get(key, ())
    return tuple(a if i in static else jnp.asarray(a) for i, a in enumerate(args))
