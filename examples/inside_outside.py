"""Outside is backprop of inside: expected rule counts of a PCFG as a gradient.

A probabilistic context-free grammar in Chomsky normal form with K nonterminals
(0 is the start symbol S) has binary rules A -> B C with weights
binary[A, B, C] and lexical rules A -> w with weights lexical[A, w]. The inside
algorithm sums the weights of all parse trees of a sentence w_1..w_n bottom-up
over spans:

    chart[i, i+1, A] = lexical[A, w_{i+1}]
    chart[i, j, A]   = sum_{i<k<j} sum_{B,C} binary[A, B, C] chart[i, k, B] chart[k, j, C]
    Z                = chart[0, n, S]

(the loop below writes the inner sums as `(binary @ chart[k, j]) @ chart[i, k]`).
The weights are given in log space, log_binary and log_lexical, and the program
returns log Z. A tree's weight is a product of rule weights, so
w(tree) = exp(sum_r count_r(tree) log w_r), and

    d log Z / d log w_r = sum_tree w(tree) count_r(tree) / Z = E[count_r]

the expected number of times rule r is used in a parse of the sentence: the
quantity the E step of inside-outside (EM for PCFGs) computes. Classically one
derives a separate "outside" recursion for it. Here it falls out of the reverse
sweep (examples/generated/inside_outside_grad.py): `chart_bar[i, j, A]` is the
outside weight of span (i, j) labelled A, divided by Z, and it flows top-down
from the root span, through the same three nested loops reversed: each span's
outside weight `total_bar` is passed down to its two children
(`chart_bar[...] += total_bar @ ...`), and the rule gradient accumulates
outside x inside x inside (`binary_bar += ...`), which times the rule's weight
(the final `* binary`) is exactly the outside algorithm's expected count.

This script checks the gradient against brute force: it enumerates every parse
tree of a short sentence, weighs it, counts its rules, and averages.
"""
import itertools

import numpy as np


def log_partition(log_binary, log_lexical, sentence):
    binary = np.exp(log_binary)
    lexical = np.exp(log_lexical)
    n, K = len(sentence), binary.shape[0]
    chart = np.zeros((n, n + 1, K))
    for i in range(n):
        chart[i, i + 1] = lexical[:, sentence[i]]
    for width in range(2, n + 1):
        for i in range(n - width + 1):
            j = i + width
            total = np.zeros(K)
            for k in range(i + 1, j):
                total = total + (binary @ chart[k, j]) @ chart[i, k]
            chart[i, j] = total
    return np.log(chart[0, n, 0])


def parses(i, j, A, sentence, K):
    """Every parse of sentence[i:j] rooted in A, as a list of rules: ("lex", A, w)
    and ("bin", A, B, C)."""
    if j == i + 1:
        yield [("lex", A, sentence[i])]
        return
    for k in range(i + 1, j):
        for B, C in itertools.product(range(K), repeat=2):
            for left in parses(i, k, B, sentence, K):
                for right in parses(k, j, C, sentence, K):
                    yield [("bin", A, B, C)] + left + right


def expected_counts_by_enumeration(log_binary, log_lexical, sentence):
    K = log_binary.shape[0]
    trees = list(parses(0, len(sentence), 0, sentence, K))
    log_w = np.array([sum(log_binary[r[1:]] if r[0] == "bin" else log_lexical[r[1:]]
                          for r in tree) for tree in trees])
    p = np.exp(log_w - np.max(log_w))
    p /= p.sum()
    binary_counts, lexical_counts = np.zeros_like(log_binary), np.zeros_like(log_lexical)
    for prob, tree in zip(p, trees):
        for r in tree:
            if r[0] == "bin":
                binary_counts[r[1:]] += prob
            else:
                lexical_counts[r[1:]] += prob
    log_Z = np.log(np.sum(np.exp(log_w - np.max(log_w)))) + np.max(log_w)
    return len(trees), log_Z, binary_counts, lexical_counts


def main():
    from _common import Checks, write_generated  # first: finds adjoint in a checkout
    import adjoint

    check = Checks()
    rng = np.random.default_rng(0)
    K, V = 3, 5  # nonterminals, vocabulary
    log_binary = rng.normal(size=(K, K, K)) - 1.0
    log_lexical = rng.normal(size=(K, V)) - 1.0
    sentence = np.array([3, 0, 4, 0])  # a word used twice: its counts add up

    args = (log_binary, log_lexical, sentence)
    path = write_generated(adjoint.source(log_partition, wrt=(0, 1), args=args),
                           "inside_outside_grad", "inside_outside.py")
    print(f"generated gradient: {path.relative_to(path.parents[2])}\n")

    log_Z, (d_binary, d_lexical) = adjoint.value_and_grad(log_partition, wrt=(0, 1))(*args)
    n_trees, log_Z_enum, binary_counts, lexical_counts = \
        expected_counts_by_enumeration(*args)
    check(f"inside log Z == log of the sum over all {n_trees} parse trees",
          np.isclose(log_Z, log_Z_enum, rtol=1e-12))
    check("d log Z / d log binary[A, B, C] == expected count of A -> B C",
          np.allclose(d_binary, binary_counts, rtol=1e-9, atol=1e-12),
          f"max difference {np.max(np.abs(d_binary - binary_counts)):.1e}")
    check("d log Z / d log lexical[A, w] == expected count of A -> w",
          np.allclose(d_lexical, lexical_counts, rtol=1e-9, atol=1e-12),
          f"max difference {np.max(np.abs(d_lexical - lexical_counts)):.1e}")
    n = len(sentence)
    check(f"every parse has n - 1 = {n - 1} binary and n = {n} lexical rules "
          "(so do the expected counts)",
          np.isclose(d_binary.sum(), n - 1) and np.isclose(d_lexical.sum(), n))
    print("\nexpected count of each preterminal A (rows) over the words (columns):")
    print(np.array2string(d_lexical, precision=3, suppress_small=True))
    check.done()


if __name__ == "__main__":
    main()
