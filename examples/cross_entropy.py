"""Cross-entropy loss: softmax, then the negative log-likelihood of the target T:

    s[i] = e^x[i] / (1[j] e^x[j])        c = -log s[T]

with the target T as a one-hot t (s[T] = s[i] t[i]).  By hand (docs/notation.md):
∂l/∂x[n] = ∂l/∂c (s[n] - δ[T,n]).

Written literally this overflows at logits ±1000; einvjp rewrites the
quotient of exponentials under the log into logsumexp form, so value and
gradient stay finite.
"""

import numpy as np

import einvjp

PROGRAM = einvjp.compile("""
    s[i] = exp(x[i]) / (1[j] exp(x[j]))
    c = -log(s[i] t[i])
""")


def inputs(rng):
    return {"x": rng.normal(size=5), "t": np.eye(5)[2]}


def reference(xp, x, t):
    s = xp.exp(x) / xp.exp(x).sum()
    return -xp.log((s * t).sum())


def closed_form(dc, x, t):
    s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    return {"x": dc * (s - t)}


def main():
    print(PROGRAM.derivative("x"))
    x = np.array([1000.0, -1000.0, 0.0, 3.0])
    t = np.eye(4)[1]
    c = PROGRAM(x=x, t=t)
    with np.errstate(over="ignore"):  # ∂c/∂t[0] = -e^2000 is rightly infinite
        g = PROGRAM.vjp(1.0, x=x, t=t)["x"]
    print("c at logits ±1000:", c, " ∂c/∂x:", g)
    assert np.isfinite(c) and np.all(np.isfinite(g))
    np.testing.assert_allclose(c, 2000.0)
    np.testing.assert_allclose(g, closed_form(1.0, x, t)["x"], atol=1e-12)


if __name__ == "__main__":
    main()
