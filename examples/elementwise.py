"""An elementwise function: y[i] = f(x[i]).

By hand: ∂l/∂x[p] = ∂l/∂y[p] f'(x[p]); for sin, f' is cos.
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("y[i] = sin(x[i])")


def inputs(rng):
    return {"x": rng.normal(size=5)}


def reference(xp, x):
    return xp.sin(x)


def closed_form(dy, x):
    return {"x": dy * np.cos(x)}


def main():
    d = PROGRAM.derivative("x")
    print(d)
    assert str(d) == "∂l/∂x[p] = ∂l/∂y[p] cos(x[p])"
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=5), rng.normal(size=5)
    np.testing.assert_allclose(PROGRAM.vjp(dy, x=x)["x"], closed_form(dy, x)["x"])


if __name__ == "__main__":
    main()
