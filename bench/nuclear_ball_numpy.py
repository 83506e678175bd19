"""The course notebook's nuclear-norm-ball example (seed 000, "Comparison with
gradient descent and nuclear norm projection", `example2`), ported verbatim to a
script: projected gradient descent with the dense SVD projection, 40 steps of
0.2, n = 1000, rank 10, half the entries observed. Only change: `np.alltrue`
(removed in NumPy 2) is `np.all`. Times `gradient_descent` (the notebook's loop)
and prints one JSON line with the time and the objective / distance curves.

    /tmp/peers-venv/bin/python bench/nuclear_ball_numpy.py [--n 1000] [--steps 40] [--seed 0]
"""
import argparse
import json
import time

import numpy as np


def simplex_projection(vector):
    """Projection onto the unit simplex (the notebook's, gist daien/1272551)."""
    if np.sum(vector) <= 1 and np.all(vector >= 0):
        return vector
    u = np.sort(vector)[::-1]
    cssv = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, len(u) + 1) > (cssv - 1))[0][-1]
    theta = (cssv[rho] - 1) / (rho + 1.0)
    return np.maximum(vector - theta, 0)


def nuclear_projection(matrix):
    """Projection onto nuclear norm unit ball."""
    U, s, V = np.linalg.svd(matrix, full_matrices=False)
    s = simplex_projection(s)
    return U.dot(np.diag(s).dot(V))


def gradient_descent(init, steps, grad, proj=lambda x: x):
    """Projected gradient descent (the notebook's, keeping every iterate)."""
    xs = [init]
    for step in steps:
        xs.append(proj(xs[-1] - step * grad(xs[-1])))
    return xs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    np.random.seed(a.seed)
    n, k = a.n, a.rank
    # random rank-10 matrix normalized to have nuclear norm 1
    U = np.random.normal(0, 1, (n, k))
    U = np.linalg.qr(U)[0]
    L = np.diag(np.random.uniform(0, 1, k))
    L /= np.sum(L)
    A = U.dot(L.dot(U.T))
    S = np.random.randint(0, 2, (n, n))
    B = np.multiply(A, S)

    def mc_objective(B, S, X):
        return 0.5 * np.linalg.norm(B - np.multiply(X, S), "fro") ** 2

    def mc_gradient(B, S, X):
        return np.multiply(X, S) - B

    t0 = time.perf_counter()
    X0 = np.random.normal(0, 1, (n, n))
    X0 = nuclear_projection(X0.dot(X0.T))
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    Xs = gradient_descent(X0, [a.lr] * a.steps, lambda X: mc_gradient(B, S, X), nuclear_projection)
    t_loop = time.perf_counter() - t0
    obj = [mc_objective(B, S, X) for X in Xs]
    dist = [np.linalg.norm(A - X, "fro") ** 2 for X in Xs]
    print(json.dumps(dict(impl="numpy (notebook example2)", n=n, rank=k, steps=a.steps, lr=a.lr,
                          loop_s=round(t_loop, 4), init_s=round(t_init, 4), per_step_s=round(t_loop / a.steps, 5),
                          objective_first=obj[0], objective_last=obj[-1], dist_first=dist[0], dist_last=dist[-1],
                          nuclear_norm_last=float(np.linalg.svd(Xs[-1], compute_uv=False).sum()),
                          objective=obj, dist=dist, numpy=np.__version__)))


if __name__ == "__main__":
    main()
