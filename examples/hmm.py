"""Forward-backward is backprop of the forward algorithm.

A hidden Markov model with K states: initial log-probabilities log_pi (K,),
transition log-probabilities log_A (K, K), and, for one observed sequence, a
T x K matrix of per-step emission scores log_E[t, k] = log p(x_t | z_t = k).
The forward algorithm computes the log-likelihood log Z = log p(x_1..x_T):

    alpha_1 = log_pi + log_E[0]
    alpha_t = log(exp(alpha_{t-1}) @ A) + log_E[t]          (in log space)
    log Z   = logsumexp(alpha_T)

(the code below subtracts max(alpha) before exponentiating, so nothing
overflows; `adjoint.stop_gradient` says that shift carries no gradient -- it
cancels exactly -- which keeps the generated code short).

Differentiate log Z with respect to the emission scores. log_E[t, k] enters
only as a summand of alpha_t[k], so d log Z / d log_E[t, k] = alpha_bar_t[k];
and for a sum over paths, the derivative of the log of the sum with respect to
one log-factor is the share of the paths that use it:

    d log Z / d log_E[t, k] = p(z_t = k | x)          the posterior marginals.

The reverse sweep of the forward algorithm (examples/generated/hmm_grad.py) is
the backward algorithm: its loop runs t = T..2 and carries

    alpha_bar = A @ (alpha_bar / _t5) * _t6

a matrix-vector product with A (rather than A's transpose, as the forward
step has), i.e. the beta recursion, already multiplied by the forward
quantities: alpha_bar_t = exp(alpha_t + beta_t - log Z). Nobody wrote a
backward pass; it fell out of the chain rule, with the same O(T K^2) cost.
In the same way the gradient with respect to log_A is the expected number of
transitions i -> j (the "xi" quantities of Baum-Welch).

This script checks both against a forward-backward written by hand.
"""
import numpy as np

from _common import Checks, write_generated  # first: finds adjoint in a checkout
from adjoint import stop_gradient


def log_likelihood(log_E, log_pi, log_A):
    A = np.exp(log_A)
    alpha = log_pi + log_E[0]
    for t in range(1, log_E.shape[0]):
        m = stop_gradient(np.max(alpha))
        alpha = np.log(np.exp(alpha - m) @ A) + m + log_E[t]
    m = stop_gradient(np.max(alpha))
    return np.log(np.sum(np.exp(alpha - m))) + m


def logsumexp(v, axis=None):
    m = np.max(v, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(v - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else float(out.reshape(()))


def forward_backward(log_E, log_pi, log_A):
    """The textbook algorithm, by hand: posteriors p(z_t | x) and expected transitions."""
    T, K = log_E.shape
    alpha, beta = np.zeros((T, K)), np.zeros((T, K))
    alpha[0] = log_pi + log_E[0]
    for t in range(1, T):
        alpha[t] = logsumexp(alpha[t - 1][:, None] + log_A, axis=0) + log_E[t]
    for t in range(T - 2, -1, -1):
        beta[t] = logsumexp(log_A + log_E[t + 1] + beta[t + 1], axis=1)
    log_Z = logsumexp(alpha[-1])
    posterior = np.exp(alpha + beta - log_Z)
    xi = np.zeros((K, K))
    for t in range(1, T):
        xi += np.exp(alpha[t - 1][:, None] + log_A + log_E[t] + beta[t] - log_Z)
    return log_Z, posterior, xi


def main():
    import adjoint

    check = Checks()
    rng = np.random.default_rng(0)
    T, K = 12, 4
    log_pi = np.log(rng.dirichlet(np.ones(K)))
    log_A = np.log(rng.dirichlet(np.ones(K), size=K))  # rows sum to one
    log_B = np.log(rng.dirichlet(np.ones(6), size=K))  # K states, 6 symbols
    obs = rng.integers(0, 6, size=T)
    log_E = log_B[:, obs].T  # (T, K): log p(x_t | z_t = k)

    args = (log_E, log_pi, log_A)
    path = write_generated(adjoint.source(log_likelihood, args=args), "hmm_grad", "hmm.py")
    print(f"generated gradient: {path.relative_to(path.parents[2])}\n")

    log_Z, posterior, xi = forward_backward(*args)
    value, (dE, dA) = adjoint.value_and_grad(log_likelihood, wrt=(0, 2))(*args)
    check("forward algorithm == hand-written log Z", np.isclose(value, log_Z, rtol=1e-12))
    check("d log Z / d log_E == posterior marginals p(z_t = k | x)",
          np.allclose(dE, posterior, rtol=1e-10, atol=1e-12),
          f"max difference {np.max(np.abs(dE - posterior)):.1e}")
    check("each row of the gradient is a distribution (sums to 1)",
          np.allclose(dE.sum(axis=1), 1.0))
    check("d log Z / d log_A == expected transition counts (Baum-Welch xi)",
          np.allclose(dA, xi, rtol=1e-10, atol=1e-12),
          f"max difference {np.max(np.abs(dA - xi)):.1e}")
    print("\nposterior p(z_t = k | x) for t = 1..4 (rows), from the gradient:")
    print(np.array2string(dE[:4], precision=3, suppress_small=True))
    check.done()


if __name__ == "__main__":
    main()
