"""A corpus of programs to differentiate. Each is plain Python/NumPy; the tests
compare adjoint's gradient with central finite differences (CASES below)."""
import math

import numpy as np
import numpy as npx  # numpy under another alias must resolve too
from numpy import exp as np_exp

# ---------------------------------------------------------------- straight-line


def neuron(w, x, b, t):
    z = w * x + b
    y = 1.0 / (1.0 + np.exp(-z))
    return 0.5 * (y - t) ** 2


def scalar_math(x, y):
    a = math.sin(x) * math.exp(y) + math.log(1.0 + x * x)
    b = math.sqrt(a * a + 1.0) / math.cosh(y)
    return a * b + math.atan2(x, y) + abs(x - y) + x ** 3


def aliases(x):
    return npx.sum(np_exp(x) * np.tanh(x))


def logistic_regression(w, X, y, lam):
    z = X @ w
    p = 1.0 / (1.0 + np.exp(-z))
    eps = 1e-12
    nll = -np.mean(y * np.log(p + eps) + (1.0 - y) * np.log(1.0 - p + eps))
    return nll + lam * np.sum(w * w)


def softmax_xent(W, X, labels_onehot):
    logits = X @ W
    m = np.max(logits, axis=1, keepdims=True)
    z = logits - m
    logsum = np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(labels_onehot * (z - logsum)) / X.shape[0]


def mlp(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    z = logits - np.max(logits, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1))


def broadcasting(a, b, c):
    # (3, 1) with (4,) with scalar: every binary op broadcasts
    return np.sum((a * b + c) ** 2 / (1.0 + b * b)) + np.sum(a - c * b)


def norms(x, A):
    return np.linalg.norm(x) + np.sum(A.T @ x) + np.linalg.norm(A) ** 2


def reductions(x):
    return np.sum(np.mean(x, axis=0) ** 2) + np.max(x) - np.min(x, axis=1).sum() + np.var(x)


def shapes(x):
    y = x.reshape(2, 3)
    z = np.concatenate([y, y * 2.0], axis=0)
    return np.sum(z[:, None, :] * np.ones((1, 2, 1))) + np.sum(y.T @ y)


# ---------------------------------------------------------------- branches


def branch(x, y):
    if x > 0:
        z = x * y
    else:
        z = x + y
    return z * z


def elif_chain(x):
    if x < -1.0:
        y = -x
    elif x < 1.0:
        y = x * x
    else:
        y = 2.0 * x - 1.0
    return y * math.sin(x)


def conditional_expression(x, y):
    z = x * y if x > y else x - y
    return z ** 2 + (x if x > 0 and y > 0 else y)


def int_branch(x, n):
    if n % 2 == 0:
        return x * n
    return x / n


# ---------------------------------------------------------------- loops


def sum_squares(x):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * x[i]
    return s


def product(x):
    p = 1.0
    for i in range(len(x)):
        p = p * x[i]
    return p


def scalar_loop(x, n):
    y = x
    for i in range(n):
        y = math.sin(y) * 1.1 + 0.1 * x
    return y


def range_forms(x):
    s = 0.0
    for i in range(1, len(x), 2):
        s = s + x[i] * x[i - 1]
    for i in range(len(x) - 1, -1, -1):
        s = s * 0.9 + x[i]
    for i in range(0):
        s = s + 100.0 * x[0]
    return s


def iterate_array(x, w):
    s = 0.0
    for xi in x:
        s = s + w * xi * xi
    for i, xi in enumerate(x):
        s = s + i * xi
    for a, b in zip(x, x[1:]):
        s = s + a * b
    return s


def nested_loops(A):
    s = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            row = row + A[i, j] * (j + 1.0)
        s = s + row * row
    return s


def newton_sqrt(a):
    x = a
    while abs(x * x - a) > 1e-12:
        x = 0.5 * (x + a / x)
    return x


def rnn(W, U, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + U @ xs[t])
    return np.sum(h * h)


def branch_in_loop(x):
    s = 0.0
    for i in range(len(x)):
        if x[i] > 0:
            s = s + x[i] * x[i]
        else:
            s = s - 3.0 * x[i]
    return s


def breaks(x):
    s = 0.0
    for i in range(len(x)):
        if s > 2.0:
            break
        s = s + x[i] * x[i]
    return s


def continues(x):
    s = 0.0
    for i in range(len(x)):
        if x[i] < 0:
            continue
        s = s + math.exp(x[i])
    return s


def return_in_loop(x):
    s = 1.0
    for i in range(len(x)):
        s = s * x[i]
        if s > 5.0:
            return s * 2.0
    return s


def early_return(x):
    if x < 0:
        return -x * x
    y = x * 3.0
    return y * y


# ---------------------------------------------------------------- calls


def _affine(x, a, b=1.0):
    return a * x + b


def _stats(v):
    return np.mean(v), np.std(v)


def _deep(x):
    return _affine(x, 2.0) * _affine(x, a=3.0, b=0.5)


def calls(x):
    m, s = _stats(x)
    return _deep(m) + s * s + np.sum(_affine(x, 0.5))


# ---------------------------------------------------------------- subscripts and writes


def fill(x):
    n = x.shape[0]
    y = np.zeros(n)
    for i in range(n):
        y[i] = x[i] * x[i] + (y[i - 1] if i > 0 else 0.0)
    return np.sum(y * y)


def _set_first(v):
    v[0] = v[1] * 3.0  # writes into the caller's array
    return 0.0


def _fill_rows(chart, x):
    for i in range(1, chart.shape[0]):
        chart[i] = np.sin(chart[i - 1]) * x
    return None


def _collect(xs, v):
    xs.append(v * v)
    return len(xs)


def _first_large(v):
    for i in range(len(v)):
        if v[i] > 0.5:
            return v[i] * 2.0, v[i]  # a tuple returned from inside a loop
    return v[0], v[1]


def tuple_from_loop(x):
    a, b = _first_large(x)
    c, d = _first_large(x * 0.1)
    return a * b + c * d


def helper_writes(x):
    y = x * 1.0
    alias = y
    z = _set_first(y)
    chart = np.zeros((3, x.shape[0]))
    chart[0] = alias
    _fill_rows(chart, x)
    parts = []
    n = _collect(parts, x[0]) + _collect(parts, alias[2])
    return np.sum(y * alias) + z + np.sum(chart * chart) + parts[0] * parts[1] * n


def cell_recurrence(x):
    y = np.zeros(x.shape[0])
    y[0] = x[0]
    for i in range(1, x.shape[0]):
        y[i] = np.sin(x[i] * y[i - 1])  # one cell per step
    return np.sum(y)


def augmented_writes(x):
    y = x.copy()
    y[0] += 2.0 * x[1]
    y[1] -= x[2] * x[0]
    y[2] *= x[0]
    y[1:3] /= 2.0
    y += x
    return np.sum(y * y)


def slice_writes(A):
    B = np.zeros((3, 4))
    B[0, :] = A[1, :] * 2.0
    B[1:, 1:3] = A[:2, :2] ** 2
    B[:, -1] = A.sum(axis=1)
    return np.sum(B * A)


def aliasing(x):
    y = x * 1.0
    z = y
    z[0] = 5.0 * x[1]
    return np.sum(y * x)


def indexing(x, A):
    idx = np.array([0, 2, 2])
    mask = x > 0.2
    return (np.sum(x[idx] ** 2) + np.sum(x[mask]) + A[1, -1] * x[-1] +
            np.sum(A[::2, 1:] ** 2) + np.sum(x[None, :] * A[:, :4]))


def lists(x):
    out = []
    for i in range(len(x)):
        out.append(x[i] * (i + 1.0))
    total = 0.0
    for v in out:
        total = total + v * v
    return total + out[0] * out[-1]


def tuples(x, y):
    t = (x * y, x + y)
    a, b = t
    return a * b + t[0]


def inside(x):
    # the inside algorithm's chart pattern: chart[i, j] built from shorter spans
    n = x.shape[0]
    chart = np.zeros((n, n + 1))
    for i in range(n):
        chart[i, i + 1] = x[i]
    for width in range(2, n + 1):
        for i in range(n - width + 1):
            j = i + width
            total = 0.0
            for k in range(i + 1, j):
                total = total + chart[i, k] * chart[k, j]
            chart[i, j] = total
    return chart[0, n]


def hmm_forward(log_pi, log_A, log_B, obs):
    alpha = log_pi + log_B[:, obs[0]]
    for t in range(1, len(obs)):
        m = np.max(alpha)
        alpha = m + np.log(np.exp(alpha - m) @ np.exp(log_A)) + log_B[:, obs[t]]
    m = np.max(alpha)
    return m + np.log(np.sum(np.exp(alpha - m)))


def soft_dtw(x, y, gamma):
    n, m = x.shape[0], y.shape[0]
    R = np.full((n + 1, m + 1), 1e10)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = (x[i - 1] - y[j - 1]) ** 2
            a, b, c = -R[i - 1, j - 1] / gamma, -R[i - 1, j] / gamma, -R[i, j - 1] / gamma
            mx = max(max(a, b), c)
            softmin = -gamma * (mx + math.log(math.exp(a - mx) + math.exp(b - mx) +
                                              math.exp(c - mx)))
            R[i, j] = cost + softmin
    return R[n, m]


# ---------------------------------------------------------------- checkpoints
import adjoint  # noqa: E402


def _layer(x, W):
    h = np.tanh(W @ x)
    return h * h + x


def checkpointed_call(x, W):
    y = adjoint.checkpoint(_layer)(x, W)
    z = adjoint.checkpoint(_layer)(y, W)
    return np.sum(z ** 2)


@adjoint.checkpoint
def _decorated_layer(x, W):
    return np.sin(W @ x) + x


def checkpointed_decorator(x, W):
    s = 0.0
    for i in range(3):
        x = _decorated_layer(x, W)
        s = s + np.sum(x)
    return s


def rnn_checkpointed(W, xs, h0, k):
    h = h0
    for t in adjoint.checkpointed(range(xs.shape[0]), snapshots=3):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


# ---------------------------------------------------------------- rejected: views
def view_read_after_write(A):
    B = A * 1.0
    row = B[0]
    B[0, 1] = 5.0
    return np.sum(row * row)


def view_copy_is_fine(A):
    B = A * 1.0
    row = B[0].copy()
    B[0, 1] = 5.0
    return np.sum(row * row) + np.sum(B)


# ---------------------------------------------------------------- names like the compiler's
def hygiene(x, out_bar):
    x_bar = x * 2.0
    _t1 = npx.sin(x_bar)
    _tape = []
    for _k in range(3):
        _tape.append(_t1 * _k)
    adjoint = _tape[2] + x_bar * out_bar
    math = adjoint * 1.5  # noqa: F811  (a local named like a module)
    return npx.sum(math * x)


# ---------------------------------------------------------------- coverage goldens
def params_mlp(params, X, Y):
    """An MLP whose parameters are a dict: its gradient is a dict with the same keys."""
    h = np.tanh(X @ params["W1"] + params["b1"])
    err = h @ params["W2"] - Y
    return np.mean(err ** 2)


def comprehension(xs, w):
    """A list comprehension and a sum over a generator: loops in the gradient."""
    scores = [np.tanh(w * x) for x in xs]
    return sum(np.sum(s * s) for s in scores)


def _power(x, n):
    if n == 0:
        return 1.0
    return x * _power(x, n - 1)


def recursive_helper(x):
    """A recursive helper of constant depth: unrolled, its base case folded."""
    return np.sum(_power(np.sin(x), 3))


class Quadratic:
    def __init__(self, A):
        self.A = A

    def loss(self, x):
        return 0.5 * x @ self.A @ x + np.sum(np.cos(x))


import enum  # noqa: E402 (here: golden files hold the lines of the programs above)


class Gate(enum.IntEnum):
    FORGET = 0
    INPUT = 1
    OUTPUT = 2


class Norm(str, enum.Enum):
    L2 = "l2"
    L1 = "l1"


def gated(W, x, norm=Norm.L2):
    """Enum members as row indices and as a string option (round 23's F1: repr wrote
    <Gate.FORGET: 0> into the generated code)."""
    h = np.tanh(W[Gate.FORGET] * x) * W[Gate.INPUT] + W[Gate.OUTPUT]
    if norm == Norm.L2:
        return np.sum(h * h)
    return np.sum(np.abs(h))
