"""The functions of the README's tour; tests/test_readme.py checks the README shows their
generated code exactly as the compiler writes it."""
import numpy as np
import adjoint


def loss(w, x, b, t):
    z = w * x + b
    y = 1.0 / (1.0 + np.exp(-z))
    return 0.5 * (y - t) ** 2


def product(x):
    p = 1.0
    for i in range(len(x)):
        p = p * x[i]
    return p


def branch(x, y):
    if x > 0:
        z = x * y
    else:
        z = x + y
    return z * z


def rnn(W, xs, h0):
    h = h0
    for t in adjoint.checkpointed(range(xs.shape[0]), snapshots=10):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


def mlp(params, x, y):
    h = np.tanh(x @ params["W1"] + params["b1"])
    err = h @ params["W2"] - y
    return np.mean(err ** 2)


def sgd_loss(params, x, y):
    new = {k: w - 0.1 * w for k, w in params.items()}
    return mlp(new, x, y)
