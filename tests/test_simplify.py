"""The simplification passes: stable forms however a constant is written,
no cancellation that NumPy would not do, and derivation work linear in depth."""

import numpy as np
import pytest

import einvjp
import einvjp.simplify as simplify

E = einvjp.exp

# (name, program, scale): the program is scale · softmax(x) over its only axis.
SCALED_SOFTMAX = [
    ("text 2 1[j]", "y[i] = exp(x[i]) / (2 1[j] exp(x[j]))", 0.5),
    ("text 1[j] ... 2", "y[i] = exp(x[i]) / (1[j] exp(x[j]) 2)", 0.5),
    ("text sum * 2", "y[i] = exp(x[i]) / (sum(exp(x[j]), j) * 2)", 0.5),
    ("text named sum", "s = 2 1[j] exp(x[j])\ny[i] = exp(x[i]) / s", 0.5),
    ("text sum read scaled", "s = 1[j] exp(x[j])\ny[i] = exp(x[i]) / (3 s)", 1 / 3),
    ("text mean", "y[i] = exp(x[i]) / (1[j] exp(x[j]) / J)", 4.0),
    ("text -2", "y[i] = exp(x[i]) / (-2 1[j] exp(x[j]))", -0.5),
    ("traced 2 * sum", lambda x: E(x) / (2 * E(x).sum()), 0.5),
    ("traced sum * 2", lambda x: E(x) / (E(x).sum() * 2), 0.5),
    ("traced 0.5 *", lambda x: 0.5 * E(x) / E(x).sum(), 0.5),
    ("traced sum of 2 e", lambda x: E(x) / (E(x) * 2).sum(), 0.5),
    ("traced s + s", lambda x: (lambda s: E(x) / (s + s))(E(x).sum()), 0.5),
    ("traced mean", lambda x: E(x) / E(x).mean(), 4.0),
]

# (name, program, log c): the program is log c + logsumexp(x).
SCALED_LOGSUMEXP = [
    ("text 2 1[j]", "y = log(2 1[j] exp(x[j]))", np.log(2)),
    ("text sum * 3", "y = log(sum(exp(x[j]), j) * 3)", np.log(3)),
    ("text / J", "y = log(1[j] exp(x[j]) / J)", -np.log(4)),
    ("traced sum * 3", lambda x: einvjp.log(E(x).sum() * 3), np.log(3)),
    ("traced 3 * sum", lambda x: einvjp.log(3 * E(x).sum()), np.log(3)),
    ("traced mean", lambda x: einvjp.log(E(x).mean()), -np.log(4)),
    ("traced s + s", lambda x: (lambda s: einvjp.log(s + s))(E(x).sum()), np.log(2)),
]

LARGE = [np.array([0.0, 400.0, -3.0, 1.0]), np.array([0.0, 800.0, -800.0, 799.0]),
         np.array([-1000.0, -1001.0, -1002.0, -999.5])]


def _check_against_jax(jax, prog, closed_form, x, seed):
    """Value and VJP of `prog` at x against jax float64 of the closed form."""
    import jax.numpy as jnp
    rng = np.random.default_rng(seed)
    want, pullback = jax.vjp(closed_form, jnp.asarray(x))
    ct = rng.normal(size=np.shape(want))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow on the way
        got = prog(x=x)
        grad = prog.vjp(ct if np.ndim(want) else float(ct), x=x)["x"]
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(grad, np.asarray(pullback(jnp.asarray(ct))[0]),
                               rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("name,source,scale", SCALED_SOFTMAX, ids=[c[0] for c in SCALED_SOFTMAX])
@pytest.mark.parametrize("k", range(len(LARGE)))
def test_scaled_softmax_is_stable(jax_x64, name, source, scale, k):
    prog = einvjp.compile(source)
    _check_against_jax(jax_x64, prog, lambda x: scale * jax_x64.nn.softmax(x), LARGE[k], k)
    assert "softmax" in str(prog.graph(x=LARGE[k]))


@pytest.mark.parametrize("name,source,log_c", SCALED_LOGSUMEXP,
                         ids=[c[0] for c in SCALED_LOGSUMEXP])
@pytest.mark.parametrize("k", range(len(LARGE)))
def test_scaled_logsumexp_is_stable(jax_x64, name, source, log_c, k):
    prog = einvjp.compile(source)
    _check_against_jax(jax_x64, prog,
                       lambda x: log_c + jax_x64.scipy.special.logsumexp(x), LARGE[k], k)


def test_scaled_softmax_gradient_at_the_issue_point():
    """Σ_i y[i] = 1/2 whatever x is: its gradient is 0, not [~0, 0.5]."""
    prog = einvjp.compile("y[i] = exp(x[i]) / (2 1[j] exp(x[j]))")
    grad = prog.vjp(np.ones(2), x=np.array([0.0, 400.0]))["x"]
    np.testing.assert_allclose(grad, [0.0, 0.0], atol=1e-300)


NON_FINITE = np.array([1.5, np.inf, -np.inf, np.nan, -0.0, 1e300])


@pytest.mark.parametrize("source,reference", [
    ("y[i] = x[i] - x[i]", lambda x, z: x - x),
    ("y[i] = 2 x[i] - x[i] - x[i]", lambda x, z: 2 * x - x - x),
    ("y[i] = z[i] + (x[i] - z[i])", lambda x, z: z + (x - z)),
    ("y[i] = (x[i] - x[i]) z[i]", lambda x, z: (x - x) * z),
    (lambda x, z: x - x, lambda x, z: x - x),
    (lambda x, z: 3 * x - x * 3 + z, lambda x, z: 3 * x - x * 3 + z),
    (lambda x, z: (x + z) - (z + x), lambda x, z: (x + z) - (z + x)),
], ids=["x - x", "2x - x - x", "z + (x - z)", "(x - x) z", "traced x - x",
        "traced 3x - 3x + z", "traced (x + z) - (z + x)"])
def test_a_tensor_minus_itself_is_not_folded(jax_x64, source, reference):
    """u - u is 0 only where u is finite: NumPy's value (nan where u is inf
    or nan), and jax's gradient."""
    import jax.numpy as jnp
    x, z = NON_FINITE, np.array([-1.0, 2.0, 0.5, np.inf, np.nan, -np.inf])
    prog = einvjp.compile(source)
    with np.errstate(all="ignore"):
        want = reference(x, z)
        got = prog(x=x, z=z) if "z" in prog.input_names else prog(x=x)
    np.testing.assert_array_equal(got, want)
    ct = np.arange(1.0, NON_FINITE.size + 1)
    names = prog.input_names
    values = {"x": x, "z": z}
    _, pullback = jax_x64.vjp(lambda *a: reference(**{**values, **dict(zip(names, a))}),
                              *[jnp.asarray(values[n]) for n in names])
    with np.errstate(all="ignore"):
        grads = prog.vjp(ct, **{n: values[n] for n in names})
    for n, g in zip(names, pullback(jnp.asarray(ct))):
        np.testing.assert_array_equal(grads[n], np.asarray(g))


def _mlp(depth):
    lines, prev = [], "x[b,i]"
    for k in range(depth):
        lines.append(f"h{k}[b,o] = tanh({prev} w{k}[i,o] + c{k}[o])")
        prev = f"h{k}[b,i]"
    return "\n".join(lines + [f"y = {prev} {prev}"])


def _normalised_net(depth):
    """Layer norms (whose derivative has the cancellation Σ_h mu[b,h] = 0)
    between tanh layers."""
    lines, prev = [], "x"
    for k in range(depth):
        lines += [f"m{k}[b] = {prev}[b,h] / H", f"mu{k}[b,h] = {prev}[b,h] - m{k}[b]",
                  f"v{k}[b] = mu{k}[b,h]^2 / H",
                  f"z{k}[b,o] = tanh(mu{k}[b,h] / sqrt(v{k}[b] + 0.00001) w{k}[h,o])"]
        prev = f"z{k}"
    return "\n".join(lines + [f"y = {prev}[b,h] {prev}[b,h]"])


def _derivation_work(source, monkeypatch):
    """Products the cancellation pass distributes while deriving every
    gradient of `source` (sizes 3x4)."""
    calls = []
    distribute = simplify._distribute
    monkeypatch.setattr(simplify, "_distribute", lambda *a: calls.append(1) or distribute(*a))
    prog = einvjp.compile(source, sizes={"b": 3, "i": 4, "o": 4, "h": 4})
    g = prog.graph(**{n: np.ones((4, 4)) if n[0] == "w" else np.ones(4) if n[0] == "c"
                      else np.ones((3, 4)) for n in prog.input_names})
    g.gradients(tuple(prog.input_names))
    return len(calls)


@pytest.mark.parametrize("network", [_mlp, _normalised_net])
def test_derivation_work_is_linear_in_depth(network, monkeypatch):
    """Not a timing: the cancellation pass distributes about as many
    products per layer at depth 16 as at depth 8 (it explored every subset
    of the tanh layers' 1 - h^2 factors: 33k calls at depth 10)."""
    small, large = (_derivation_work(network(d), monkeypatch) for d in (8, 16))
    assert large <= 2 * small * 1.15 + 10, (small, large)


@pytest.mark.parametrize("coeff", ["1e-13", "1/3", "1000"])
def test_a_small_coefficient_is_not_a_cancellation(jax_x64, coeff):
    """Σ_h (z - m) = 0 drops one term of the product; the other term has
    coefficient `coeff`, however small, and stays."""
    import jax.numpy as jnp
    prog = einvjp.compile(f"m[b] = z[b,h] / H\ny[b] = {coeff} (x[b,h] + c[b]) (z[b,h] - m[b])")
    rng = np.random.default_rng(1)
    values = {"x": rng.normal(size=(2, 3)), "z": rng.normal(size=(2, 3)), "c": rng.normal(size=2)}
    scale = eval(coeff)

    def reference(x, z, c):
        return scale * ((x + c[:, None]) * (z - z.mean(1, keepdims=True))).sum(1)
    names = prog.input_names
    want, pullback = jax_x64.vjp(lambda *a: reference(**dict(zip(names, a))),
                                 *[jnp.asarray(values[n]) for n in names])
    np.testing.assert_allclose(prog(**values), np.asarray(want), rtol=1e-12)
    ct = rng.normal(size=2)
    grads = prog.vjp(ct, **values)
    for n, g in zip(names, pullback(jnp.asarray(ct))):
        np.testing.assert_allclose(grads[n], np.asarray(g), rtol=1e-10, atol=1e-14 * scale)


@pytest.mark.parametrize("source,closed_form", [
    ("y[b,i] = exp(x[b,i]) / (2 1[j] exp(x[b,j]))",
     lambda jax, x: 0.5 * jax.nn.softmax(x, axis=1)),
    ("y[b,i] = exp(x[b,i]) / (3 1[a] exp(x[a,i]))",
     lambda jax, x: jax.nn.softmax(x, axis=0) / 3),
    ("y[b,i] = log(exp(x[b,i]) / (2 1[j] exp(x[b,j])))",
     lambda jax, x: jax.nn.log_softmax(x, axis=1) - np.log(2)),
    ("y = -t[b,i] log(exp(x[b,i]) / (1[j] exp(x[b,j]) / I)) / B",
     lambda jax, x: -(T * (jax.nn.log_softmax(x, axis=1) + np.log(3))).sum() / 2),
], ids=["rows", "columns", "log", "cross entropy, mean"])
def test_scaled_softmax_over_one_axis(jax_x64, source, closed_form):
    x = np.array([[0.0, 800.0, -3.0], [-900.0, 2.0, 3.0]])
    prog = einvjp.compile(source)
    inputs = {"x": x, "t": T} if "t" in prog.input_names else {"x": x}
    want, pullback = jax_x64.vjp(lambda x: closed_form(jax_x64, x), x)
    ct = np.random.default_rng(0).normal(size=np.shape(want))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = prog(**inputs)
        grad = prog.vjp(ct if np.ndim(want) else float(ct), **inputs)["x"]
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(grad, np.asarray(pullback(ct)[0]), rtol=1e-10, atol=1e-300)


T = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
