"""The workloads for tangent-ad: plain NumPy, the same code as workloads.py except
math.sin -> np.sin (tangent-ad has no adjoint for math.sin)."""
import numpy as np


def tanh_sq(x):
    return np.sum(np.tanh(x) ** 2)


def logreg(w, X, y, lam):
    z = X @ w
    return np.sum(np.logaddexp(0.0, -y * z)) / X.shape[0] + lam * np.sum(w * w)


def mlp(W1, b1, W2, b2, X, Y):
    h = np.maximum(X @ W1 + b1, 0.0)
    logits = h @ W2 + b2
    m = np.max(logits, axis=1, keepdims=True)
    z = logits - m
    lse = np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * (z - lse)) / X.shape[0]


def sin_loop(x, a, n):
    for i in range(n):
        x = np.sin(x) * a
    return x


def rnn(W, x, h):
    for t in range(x.shape[0]):
        h = np.tanh(W @ h + x[t])
    return np.sum(h ** 2)


def hmm(log_pi, log_A, log_B):
    alpha = log_pi + log_B[0]
    for t in range(1, log_B.shape[0]):
        s = alpha[:, None] + log_A
        m = np.max(s, axis=0)
        alpha = m + np.log(np.sum(np.exp(s - m), axis=0)) + log_B[t]
    m = np.max(alpha)
    return m + np.log(np.sum(np.exp(alpha - m)))


def product(x):
    p = 1.0
    for i in range(len(x)):
        p = p * x[i]
    return p


def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s
