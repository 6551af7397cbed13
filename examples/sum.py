"""Sum: y(x1, x2) = x1 + x2, i.e. y = 1[i] x[i].

By hand: ∂y/∂x = (1 1), so ∂l/∂x[p] = ∂l/∂y 1[p].
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y = 1[i] x[i]")
SCALARS = einvjp.compile("y = x1 + x2")


def inputs(rng):
    return {"x": rng.normal(size=2)}


def reference(xp, x):
    return x.sum()


def closed_form(dy, x):
    return {"x": dy * np.ones_like(x)}


def main():
    x = np.array([1.0, 2.0])
    print(PROGRAM.derivative("x"))
    np.testing.assert_array_equal(PROGRAM.vjp(1.0, x=x)["x"], [1.0, 1.0])
    g = SCALARS.vjp(1.0, x1=np.array(1.0), x2=np.array(2.0))
    assert float(g["x1"]) == float(g["x2"]) == 1.0
    print(SCALARS.derivative("x1"))


if __name__ == "__main__":
    main()
