"""Broadcast: y1(x) = x, y2(x) = x, i.e. y[i] = 1[i] x.

By hand: ∂y/∂x = (1 1)ᵀ, so ∂l/∂x = ∂l/∂y[i] 1[i] (the one-tensor sums).
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y[i] = 1[i] x", sizes={"i": 2})


def inputs(rng):
    return {"x": np.array(rng.normal())}


def reference(xp, x):
    return x * xp.ones(2, dtype=x.dtype)


def closed_form(dy, x):
    return {"x": np.sum(dy)}


def main():
    print(PROGRAM.derivative("x"))
    np.testing.assert_array_equal(PROGRAM(x=np.array(3.0)), [3.0, 3.0])
    assert float(PROGRAM.vjp(np.array([1.0, 2.0]), x=np.array(3.0))["x"]) == 3.0


if __name__ == "__main__":
    main()
