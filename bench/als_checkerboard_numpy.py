"""Time per iteration of the course notebook's alternating minimization
(update_left / update_right with np.linalg.lstsq per row) on the rank-2
checkerboard 40x70 at 25 % density, to compare with
`cargo run --release -p lowrank --example checkerboard`.
Usage: /tmp/peers-venv/bin/python bench/als_checkerboard_numpy.py"""
import time
import numpy as np

def update_right(A, S, X):
    m, n = A.shape
    _, k = X.shape
    Y = np.zeros((n, k))
    for i in range(n):
        si = S[:, i]
        Y[i, :] = np.linalg.lstsq(X[si], A[si, i], rcond=None)[0]
    return Y

def update_left(A, S, Y):
    return update_right(A.T, S.T, Y)

A = np.zeros((40, 70))
for i in range(40):
    for j in range(70):
        A[i, j] += -3.0 if i % 2 == 0 else 3.0
        A[i, j] += 1.0 if j % 2 == 0 else -1.0
rng = np.random.default_rng(0)
S = rng.uniform(0, 1, A.shape) <= 0.25
X = rng.normal(0, 1, (40, 2)); Y = rng.normal(0, 1, (70, 2))
iters = 50
t = time.perf_counter()
for _ in range(iters):
    X = update_left(A, S, Y)
    Y = update_right(A, S, X)
dt = (time.perf_counter() - t) / iters
print(f"numpy lstsq loop: {dt * 1e6:.0f} us / iteration; rel err after {iters}: "
      f"{np.linalg.norm(A - X @ Y.T) / np.linalg.norm(A):.2e}")
