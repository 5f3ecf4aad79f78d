"""The benchmark workloads: each function in plain Python/NumPy, with a hand-written
NumPy gradient as the reference.

The hand-written gradients are what a careful person writes: vectorised code for
the vectorised workloads, and for the loop workloads a forward loop that keeps
what the backward loop needs, then the backward loop (the same style as f).

Peer versions of f (autograd, JAX, tangent-ad) live in peers_*.py; they compute
the same function with the peer's own NumPy namespace.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


# ------------------------------------------------------------------ 1. sum(tanh(x)**2)

def tanh_sq(x):
    return np.sum(np.tanh(x) ** 2)


def tanh_sq_grad(x):
    t = np.tanh(x)
    return 2.0 * t * (1.0 - t * t)


# ------------------------------------------------------------------ 2. logistic regression + L2

def logreg(w, X, y, lam):
    z = X @ w
    return np.sum(np.logaddexp(0.0, -y * z)) / X.shape[0] + lam * np.sum(w * w)


def logreg_grad(w, X, y, lam):
    z = X @ w
    p = 1.0 / (1.0 + np.exp(y * z))  # d logaddexp(0, s)/ds at s = -y z
    return X.T @ (-y * p) / X.shape[0] + (2.0 * lam) * w


# ------------------------------------------------------------------ 3. 2-layer MLP, softmax CE

def mlp(W1, b1, W2, b2, X, Y):
    h = np.maximum(X @ W1 + b1, 0.0)
    logits = h @ W2 + b2
    m = np.max(logits, axis=1, keepdims=True)
    z = logits - m
    lse = np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * (z - lse)) / X.shape[0]


def mlp_grad(W1, b1, W2, b2, X, Y):
    a = X @ W1 + b1
    h = np.maximum(a, 0.0)
    logits = h @ W2 + b2
    e = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    p = e / np.sum(e, axis=1, keepdims=True)
    d = (p - Y) / X.shape[0]  # Y is one-hot
    dW2 = h.T @ d
    db2 = np.sum(d, axis=0)
    da = (d @ W2.T) * (a > 0)
    dW1 = X.T @ da
    db1 = np.sum(da, axis=0)
    return dW1, db1, dW2, db2


# ------------------------------------------------------------------ 4. scalar math.sin loop

def sin_loop(x, a, n):
    for i in range(n):
        x = math.sin(x) * a
    return x


def sin_loop_grad(x, a, n):
    xs = []
    for i in range(n):
        xs.append(x)
        x = math.sin(x) * a
    x_bar = 1.0
    a_bar = 0.0
    for xi in reversed(xs):
        a_bar += x_bar * math.sin(xi)
        x_bar = x_bar * a * math.cos(xi)
    return x_bar, a_bar


# ------------------------------------------------------------------ 5. RNN, 200 steps

def rnn(W, x, h):
    for t in range(x.shape[0]):
        h = np.tanh(W @ h + x[t])
    return np.sum(h ** 2)


def rnn_grad(W, x, h):
    """BPTT; the outer products of all steps are one matmul at the end (accumulating
    np.outer(z_bar, h) step by step costs about twice as much at H=128, T=200)."""
    T = x.shape[0]
    Hs = np.empty((T + 1, h.shape[0]))
    Hs[0] = h
    for t in range(T):
        h = np.tanh(W @ h + x[t])
        Hs[t + 1] = h
    Z = np.empty_like(x)
    h_bar = 2.0 * h
    for t in range(T - 1, -1, -1):
        z_bar = h_bar * (1.0 - Hs[t + 1] ** 2)
        Z[t] = z_bar
        h_bar = W.T @ z_bar
    return Z.T @ Hs[:-1]


# ------------------------------------------------------------------ 6. HMM forward algorithm (log space)

def hmm(log_pi, log_A, log_B):
    alpha = log_pi + log_B[0]
    for t in range(1, log_B.shape[0]):
        s = alpha[:, None] + log_A
        m = np.max(s, axis=0)
        alpha = m + np.log(np.sum(np.exp(s - m), axis=0)) + log_B[t]
    m = np.max(alpha)
    return m + np.log(np.sum(np.exp(alpha - m)))


def hmm_grad(log_pi, log_A, log_B):
    """Reverse mode by hand: the forward keeps each step's normalised transition weights
    P_t (K x K), the backward is one matvec per step. (Forward-backward in log space,
    keeping only T x K, needs about 8x less memory here and about 1.5x the time.)"""
    T, K = log_B.shape
    alpha = log_pi + log_B[0]
    Ps = []
    for t in range(1, T):
        s = alpha[:, None] + log_A
        m = np.max(s, axis=0)
        e = np.exp(s - m)
        z = np.sum(e, axis=0)
        Ps.append(e / z)
        alpha = m + np.log(z) + log_B[t]
    e = np.exp(alpha - np.max(alpha))
    a_bar = e / np.sum(e)
    g = np.empty((T, K))
    for t in range(T - 1, 0, -1):
        g[t] = a_bar
        a_bar = Ps[t - 1] @ a_bar
    g[0] = a_bar
    return g


# ------------------------------------------------------------------ 7. product of n terms

def product(x):
    p = 1.0
    for i in range(len(x)):
        p = p * x[i]
    return p


def product_grad(x):
    n = len(x)
    prefix = []
    p = 1.0
    for i in range(n):
        prefix.append(p)
        p = p * x[i]
    g = np.empty(n)
    s = 1.0
    for i in range(n - 1, -1, -1):
        g[i] = prefix[i] * s
        s = s * x[i]
    return g


# ------------------------------------------------------------------ 8. Rosenbrock, scalar indexing

def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def rosenbrock_grad(x):
    g = np.zeros_like(x)
    for i in range(len(x) - 1):
        xi = x[i]
        d = x[i + 1] - xi * xi
        g[i] += -400.0 * d * xi - 2.0 * (1.0 - xi)
        g[i + 1] += 200.0 * d
    return g


# ------------------------------------------------------------------ the table

@dataclass
class Workload:
    key: str
    title: str
    kind: str  # "vec" or "loop"
    f: Callable
    hand: Callable
    wrt: tuple
    make_args: Callable  # (quick: bool) -> tuple of args
    size: Callable  # (quick: bool) -> str
    notes: list = field(default_factory=list)


def _rng():
    return np.random.default_rng(0)


def _args_tanh(quick):
    return (_rng().standard_normal(10 ** 5 if quick else 10 ** 6),)


def _args_logreg(quick):
    r = _rng()
    n, d = (500, 100) if quick else (2000, 500)
    X = r.standard_normal((n, d)) / np.sqrt(d)
    y = np.where(r.standard_normal(n) > 0, 1.0, -1.0)
    w = r.standard_normal(d)
    return (w, X, y, 0.1)


def _mlp_dims(quick):
    return (64, 256, 128, 10) if quick else (256, 784, 512, 10)


def _args_mlp(quick):
    r = _rng()
    n, d, hdim, c = _mlp_dims(quick)
    X = r.standard_normal((n, d))
    Y = np.eye(c)[r.integers(0, c, n)]
    W1 = r.standard_normal((d, hdim)) / np.sqrt(d)
    b1 = 0.1 * r.standard_normal(hdim)
    W2 = r.standard_normal((hdim, c)) / np.sqrt(hdim)
    b2 = 0.1 * r.standard_normal(c)
    return (W1, b1, W2, b2, X, Y)


def _loop_n(quick):
    return 200 if quick else 1000


def _args_sin(quick):
    return (1.0, 1.0, _loop_n(quick))


def _rnn_T(quick):
    return 20 if quick else 200


def _args_rnn(quick):
    r = _rng()
    H, T = 128, _rnn_T(quick)
    W = r.standard_normal((H, H)) * (0.9 / np.sqrt(H))
    x = 0.5 * r.standard_normal((T, H))
    return (W, x, np.zeros(H))


def _hmm_T(quick):
    return 20 if quick else 200


def _args_hmm(quick):
    r = _rng()
    T, K = _hmm_T(quick), 32
    log_pi = np.log(r.dirichlet(np.ones(K)))
    log_A = np.log(r.dirichlet(np.ones(K), size=K))
    log_B = r.standard_normal((T, K))
    return (log_pi, log_A, log_B)


def _args_product(quick):
    return (1.0 + 0.01 * _rng().standard_normal(_loop_n(quick)),)


def _args_rosen(quick):
    return (1.0 + 0.1 * _rng().standard_normal(_loop_n(quick)),)


WORKLOADS = [
    Workload("tanh", "sum(tanh(x)**2)", "vec", tanh_sq, tanh_sq_grad, (0,), _args_tanh,
             lambda q: f"n={10 ** 5 if q else 10 ** 6:,}"),
    Workload("logreg", "logistic regression + L2", "vec", logreg, logreg_grad, (0,), _args_logreg,
             lambda q: "X 500x100" if q else "X 2000x500"),
    Workload("mlp", "2-layer MLP, softmax CE", "vec", mlp, mlp_grad, (0, 1, 2, 3), _args_mlp,
             lambda q: "batch {}, {}->{}->{}".format(*_mlp_dims(q))),
    Workload("sin_loop", "scalar math.sin loop", "loop", sin_loop, sin_loop_grad, (0, 1), _args_sin,
             lambda q: f"{_loop_n(q)} steps"),
    Workload("rnn", "RNN tanh(W@h + x[t])", "loop", rnn, rnn_grad, (0,), _args_rnn,
             lambda q: f"T={_rnn_T(q)}, H=128"),
    Workload("hmm", "HMM forward (log space)", "loop", hmm, hmm_grad, (2,), _args_hmm,
             lambda q: f"T={_hmm_T(q)}, K=32"),
    Workload("product", "product p = p * x[i]", "loop", product, product_grad, (0,), _args_product,
             lambda q: f"n={_loop_n(q)}"),
    Workload("rosenbrock", "Rosenbrock, scalar indexing", "loop", rosenbrock, rosenbrock_grad, (0,),
             _args_rosen, lambda q: f"n={_loop_n(q)}"),
]
