"""The summation scope rule of index-notation text: a label not on the left is
summed over the smallest product (two or more factors) holding all its
occurrences in its top-level term, or over the term.  Each case is checked,
value and every gradient, against the same formula written in jax.numpy
(float64)."""

import numpy as np
import pytest

import einvjp

jax = pytest.importorskip("jax")
jnp = jax.numpy

rng = np.random.default_rng(7)
X2 = np.array([1.0, 2.0])
M = rng.normal(size=(3, 3))
SPD = M @ M.T + 3 * np.eye(3)


def _mats():
    return {"b": rng.normal(size=(3, 3)) + 4 * np.eye(3), "c": rng.normal(size=(3, 3)) * 0.3}


CASES = [
    ("y = 1 (x[i] + 2 x[i])", {"x": X2}, lambda x: jnp.sum(x + 2 * x)),
    ("y = (x[i] - 2 x[i])^2", {"x": X2}, lambda x: jnp.sum((x - 2 * x) ** 2)),
    ("y = x[i] + 2 x[i]", {"x": X2}, lambda x: jnp.sum(x) + jnp.sum(2 * x)),
    ("y = (x[i] + 2 x[i])", {"x": X2}, lambda x: jnp.sum(x) + jnp.sum(2 * x)),
    ("y[j] = (a[i] + b[j])", {"a": X2, "b": rng.normal(size=3)},
     lambda a, b: jnp.sum(a) + 2 * b),
    ("y[j] = a[i] + b[j]", {"a": X2, "b": rng.normal(size=3)},
     lambda a, b: jnp.sum(a) + b),
    ("y = exp(x[j])", {"x": X2}, lambda x: jnp.sum(jnp.exp(x))),
    ("y = sqrt(x[i] x[i])", {"x": X2}, lambda x: jnp.sqrt(jnp.sum(x * x))),
    ("y = (x[i] x[i])^0.5", {"x": X2}, lambda x: jnp.sqrt(jnp.sum(x * x))),
    ("y = tanh(x[i]) (x[i] + 1)", {"x": X2}, lambda x: jnp.sum(jnp.tanh(x) * (x + 1))),
    ("y = exp(x[i] + 1) / 2", {"x": X2}, lambda x: jnp.sum(jnp.exp(x + 1) / 2)),
    ("L = (logsumexp(z[b,c], c) - t[b,c] z[b,c]) / B",
     {"z": rng.normal(size=(4, 3)), "t": np.eye(3)[[0, 1, 2, 0]]},
     lambda z, t: jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.sum(t * z, axis=1))),
    ("L = (u[b] - t[b,c] z[b,c]) / B",
     {"u": rng.normal(size=4), "t": rng.normal(size=(4, 3)), "z": rng.normal(size=(4, 3))},
     lambda u, t, z: jnp.mean(u - jnp.sum(t * z, axis=1))),
    ("y = 2 (u[b] + t[b,c] z[b,c])",
     {"u": rng.normal(size=4), "t": rng.normal(size=(4, 3)), "z": rng.normal(size=(4, 3))},
     lambda u, t, z: 2 * jnp.sum(u + jnp.sum(t * z, axis=1))),
    ("y = det(b[i,j] - 2 c[i,j])", _mats(), lambda b, c: jnp.linalg.det(b - 2 * c)),
    ("y = logdet(x[i,k] x[j,k] + e[i,j])", {"x": rng.normal(size=(3, 4)), "e": SPD},
     lambda x, e: jnp.linalg.slogdet(x @ x.T + e)[1]),
    ("y = logdet(x[i,k] x[j,k] + delta[i,j])", {"x": rng.normal(size=(3, 4))},
     lambda x: jnp.linalg.slogdet(x @ x.T + jnp.eye(3))[1]),
    ("y[i,j] = inv(a[i,j] + 2 delta[i,j])", {"a": SPD},
     lambda a: jnp.linalg.inv(a + 2 * jnp.eye(3))),
    ("y[i] = x[i,j] / (x[i,k] x[i,k])", {"x": rng.normal(size=(2, 3))},
     lambda x: jnp.sum(x, 1) / jnp.sum(x * x, 1)),
    ("y[i] = exp(x[i]) / (1[j] exp(x[j]))", {"x": rng.normal(size=3)},
     lambda x: jax.nn.softmax(x)),
    ("y[i] = exp(x[i]) / (2 1[j] exp(x[j]))", {"x": rng.normal(size=3)},
     lambda x: jax.nn.softmax(x) / 2),
    ("y[b] = x[b,j] w[j] + (x[b,j] + 1) v[j]",
     {"x": rng.normal(size=(2, 3)), "w": rng.normal(size=3), "v": rng.normal(size=3)},
     lambda x, w, v: x @ w + (x + 1) @ v),
    ("y[b] = (x[b,j] + u[k]) v[j]",
     {"x": rng.normal(size=(2, 3)), "u": rng.normal(size=4), "v": rng.normal(size=3)},
     lambda x, u, v: jnp.einsum("bjk,j->b", x[:, :, None] + u[None, None, :], v)),
    ("y[b] = max(x[b,j] w[j])", {"x": rng.normal(size=(2, 3)), "w": rng.normal(size=3)},
     lambda x, w: jnp.max(x * w, axis=1)),
    ("y = max(x[b,j], j) + logsumexp(x[b,j], j)", {"x": rng.normal(size=(2, 3))},
     lambda x: jnp.sum(jnp.max(x, 1)) + jnp.sum(jax.nn.logsumexp(x, axis=1))),
    ("y = softmax(x[b,j], j) w[j]", {"x": rng.normal(size=(2, 3)), "w": rng.normal(size=3)},
     lambda x, w: jnp.sum(jax.nn.softmax(x, axis=1) * w)),
    ("y[j] = softmax(x[b,j] + w[j], b)", {"x": rng.normal(size=(2, 3)), "w": rng.normal(size=3)},
     lambda x, w: jnp.sum(jax.nn.softmax(x + w, axis=0), axis=0)),
    ("y[j,k] = solve(a[i,j], b[i,k])", {"a": SPD, "b": rng.normal(size=(3, 2))},
     lambda a, b: jnp.linalg.solve(a, b)),
    ("y = det(a[b,i,j])", {"a": rng.normal(size=(2, 3, 3)) + 3 * np.eye(3)},
     lambda a: jnp.sum(jnp.linalg.det(a))),
    ("y = det(a[i,j] - 0.1 tanh(sum(0.5 u[j,m], m)))",
     {"a": M + 4 * np.eye(3), "u": rng.normal(size=(3, 2))},
     lambda a, u: jnp.linalg.det(a - 0.1 * jnp.tanh(0.5 * u.sum(1))[None, :])),
    ("y = max(logsumexp(x[b,c], c))", {"x": rng.normal(size=(2, 3))},
     lambda x: jnp.max(jax.nn.logsumexp(x, axis=1))),
    ("y = x[k] / (z[j] 1[j])", {"x": np.ones(0), "z": np.zeros(2)},  # Σ over nothing of inf
     lambda x, z: jnp.sum(x / jnp.sum(z))),
    ("y = sqrt(x[k] w[k]) + w[j]", {"x": np.ones(0), "w": np.ones(0)},
     lambda x, w: jnp.sqrt(jnp.sum(x * w)) + jnp.sum(w)),
    ("y[p] = delta[p,q] x[q] + x[r] 1[p]", {"x": X2},
     lambda x: x + jnp.sum(x)),
    # A delta outside a call renames the call's result, never the labels the call acts on.
    ("y[i] = delta[i,j] solve(a[i,j], v[i])", {"a": SPD, "v": rng.normal(size=3)},
     lambda a, v: jnp.linalg.solve(a, v)),
    ("y[i] = delta[i,j] solve(a[k,j], b[k,i])", {"a": SPD, "b": M},
     lambda a, b: jnp.diag(jnp.linalg.solve(a, b))),
    ("y[i] = delta[i,j] inv(a[i,j])", {"a": SPD}, lambda a: jnp.diag(jnp.linalg.inv(a))),
    ("y[i] = delta[i,j] softmax(x[i,j], j)", {"x": M},
     lambda x: jnp.diag(jax.nn.softmax(x, axis=1))),
    ("y[i] = delta[i,j] sum(x[i,j], i)", {"x": M}, lambda x: jnp.sum(x, 0)),
    ("y[i] = delta[i,j] max(x[i,j], i)", {"x": M}, lambda x: jnp.max(x, 0)),
    ("y[i] = 2 delta[i,j] log_softmax(x[i,j] + v[j], j) x[i,k]", {"x": M, "v": rng.normal(size=3)},
     lambda x, v: 2 * jnp.diag(jax.nn.log_softmax(x + v, axis=1)) * jnp.sum(x, 1)),
]


@pytest.mark.parametrize("text,inputs,oracle", CASES, ids=[c[0] for c in CASES])
def test_scope_rule(text, inputs, oracle, jax_x64):
    prog = einvjp.compile(text)
    names = prog.input_names
    args = [jnp.asarray(inputs[n]) for n in names]
    want, pullback = jax.vjp(oracle, *args)
    got = prog(**inputs)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-12)
    ct = rng.normal(size=np.shape(want))
    grads = prog.vjp(ct, **inputs)
    for n, g in zip(names, pullback(jnp.asarray(ct))):
        np.testing.assert_allclose(grads[n], np.asarray(g), rtol=1e-8, atol=1e-10,
                                   err_msg=f"gradient of {n}")


def test_scope_values_of_the_issue():
    x = np.array([1.0, 2.0])
    assert einvjp.compile("y = 1 (x[i] + 2 x[i])")(x=x) == 9.0
    assert einvjp.compile("y = (x[i] - 2 x[i])^2")(x=x) == 5.0


def test_solve_needs_the_row_label():
    with pytest.raises(einvjp.ProgramError, match="row label 'i'") as err:
        einvjp.compile("y[j,k] = solve(a[i,j], b[j,k])")(a=SPD, b=np.ones((3, 2)))
    assert "^" in str(err.value)


def test_matrix_function_without_a_pair():
    with pytest.raises(einvjp.ProgramError, match="two labels of equal size") as err:
        einvjp.compile("y = det(x[i] x[i])")(x=X2)
    assert "^" in str(err.value)


ROUND_TRIP = [
    (lambda x: x / x.sum(1, keepdims=True), {"x": rng.normal(size=(2, 3))}),
    (lambda x, w: einvjp.tanh(x @ w).mean(), {"x": rng.normal(size=(2, 3)),
                                               "w": rng.normal(size=(3, 4))}),
    (lambda A, B: (A @ B).sum(0) * 2, {"A": rng.normal(size=(2, 3)), "B": rng.normal(size=(3, 4))}),
    (lambda x: einvjp.exp(x - x.max(1, keepdims=True)) / x.sum(), {"x": rng.normal(size=(2, 3))}),
    (lambda a: einvjp.inv(a @ a.T + 1.0), {"a": rng.normal(size=(2, 3))}),
    (lambda a: einvjp.det(a @ a.T) * a.sum(), {"a": rng.normal(size=(2, 3))}),
    (lambda x: ((x * x).sum()) ** 0.5, {"x": rng.normal(size=(2, 3))}),
    (lambda a, b: ((a + 0.5 * b) * b).sum(0) * (a - a.sum(1, keepdims=True)),
     {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=3)}),
    ("y = logdet(x[i,k] x[j,k] + delta[i,j])", {"x": rng.normal(size=(3, 4))}),
    ("s[i] = exp(x[i]) / (1[j] exp(x[j]))\nc = -log(s[i] t[i])",
     {"x": rng.normal(size=3), "t": np.eye(3)[1]}),
    ("y[i] = x[i] / 0 - x[j] / 0", {"x": np.array([1.0, -1.0, 0.0])}),
    ("y[i] = x[i] - 1/0 + 3", {"x": np.array([1.0, -1.0, 0.0])}),
    (lambda w, x: ((w ** 3.0) ** 2.0) * x ** (x ** 2.0), {"w": 1.3, "x": np.array([1.5, 2.0])}),
    ("y[i] = 1 / (x[i] z[i])", {"x": X2, "z": np.array([3.0, 0.5])}),
    ("y = 1 / (1 / x[i])", {"x": X2}),
    ("y[i] = (x[i,j] x[i,j])^-1", {"x": rng.normal(size=(2, 3))}),
    (lambda x: 1 / (x.sum(0) * 2).sum(), {"x": rng.uniform(1, 2, (2, 3))}),
    ("u = x[i]\nv = 2 u\nreturn u, v", {"x": X2}),
    ("u = x[i]\nv = 2 u\nreturn u", {"x": X2}),
    (lambda x: (x.sum(), 2 * x), {"x": X2}),
    # Σ_ba (v[b] - (W + h[a,a] exp(h[a,a]))): the diagonal label summed outside the product
    # that alone shows it
    (lambda v, w, h: 0.25 * einvjp.sum(
        einvjp.einsum("b->ba", v, sizes={"a": 3}) - einvjp.einsum(
            "aa->a", w.sum() + einvjp.einsum("ab,ab->ab", h, einvjp.exp(h))), axis=(0, 1)),
     {"v": rng.normal(size=2), "w": rng.normal(size=4), "h": rng.normal(size=(3, 3))}),
    # the diagonal of a structured result prints with a delta, not a[i,i] inside the call
    ("y[i] = delta[i,j] softmax(x[i,j], j)", {"x": M}),
    ("y[i] = 2 delta[i,j] inv(x[i,j]) x[i,k] + 1", {"x": SPD}),
    ("y[i] = delta[i,j] solve(a[i,j] - 2 x[i,j], v[i]) + det(a[j,i], j, i)",
     {"a": SPD, "x": 0.1 * M, "v": rng.normal(size=3)}),
    (lambda x: einvjp.einsum("ii->i", einvjp.softmax(x, axis=1)), {"x": M}),
    (lambda x: einvjp.einsum("ii->", einvjp.inv(x)), {"x": SPD}),
]


@pytest.mark.parametrize("source,inputs", ROUND_TRIP)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_printed_program_means_what_it_prints(source, inputs):
    prog = einvjp.compile(source)
    graph = prog.graph(**inputs)
    text = str(graph)
    again = einvjp.compile(text, sizes=graph.sizes)
    got, want = again(**{n: inputs[n] for n in again.input_names}), prog(**inputs)
    assert isinstance(got, tuple) == isinstance(want, tuple), text
    for g, w in zip(*((got, want) if isinstance(want, tuple) else ((got,), (want,)))):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=text)


def test_a_label_given_twice_to_a_function():
    with pytest.raises(einvjp.ProgramError, match="given to softmax twice") as err:
        einvjp.compile("y[i] = softmax(x[i], i, i)")(x=X2)
    assert "^" in str(err.value)


def test_errors_from_a_function_point_at_the_call():
    with pytest.raises(einvjp.ProgramError, match="size 0") as err:
        einvjp.compile("y = max(x[j], j)")(x=np.ones(0))
    lines = str(err.value).splitlines()
    assert lines[-1].index("^") == lines[-2].index("max")


def test_a_traced_value_kept_past_its_trace():
    kept = []
    prog = einvjp.compile(lambda x: kept.append(x) or 2 * x)
    prog(x=X2)
    with pytest.raises(einvjp.EinvjpError, match="outside the function"):
        kept[0] + np.ones(2)


def test_an_explicit_path_changed_in_place_is_planned_again():
    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    path = [(0, 1), (0, 1)]
    want = a @ b @ c
    np.testing.assert_allclose(einvjp.einsum("ij,jk,kl->il", a, b, c, optimize=path), want)
    path[0] = (1, 2)
    p = einvjp.plan("ij,jk,kl->il", [a.shape, b.shape, c.shape], optimize=path)
    np.testing.assert_allclose(einvjp.einsum("ij,jk,kl->il", a, b, c, optimize=path), want)
    assert "(1, 2)" in repr(getattr(p, "path", p)) or p is not einvjp.plan(
        "ij,jk,kl->il", [a.shape, b.shape, c.shape], optimize=[(0, 1), (0, 1)])


def test_printed_derivatives_name_letters_apart_from_inputs():
    prog = einvjp.compile("h = p[i,j] 0\ny = q x[i]")
    values = {"p": np.ones((2, 2)), "q": 2.0, "x": np.ones(3)}
    d = prog.derivative("p", **values)
    text = str(d)
    assert text.startswith("∂l/∂p[") and "q" not in text.split("=")[0]
    again = einvjp.compile(str(prog.derivative("x", **values)).replace("∂l/∂", "d_"),
                           sizes=prog.derivative("x", **values).sizes)
    np.testing.assert_allclose(again(d_y=1.5, q=2.0), [3.0, 3.0, 3.0])


def test_printed_derivative_keeps_a_subtracted_sum_in_parentheses():
    # d/dx sqrt(sigmoid(2 x - h)), h a sum of two sums: printed `2 x[p] - (A + B)`, not
    # `2 x[p] - A + B`
    def f(x, w, x2):
        h = einvjp.exp(einvjp.tanh(x2)).sum(0) + einvjp.exp(w).sum(0)
        return einvjp.sqrt(einvjp.sigmoid(2.0 * x - h)).sum(0)

    values = {"x": rng.normal(size=1), "w": rng.normal(size=2), "x2": rng.normal(size=(2, 1))}
    prog = einvjp.compile(f)
    d = prog.derivative("x", **values)
    again = einvjp.compile(str(d).replace("∂l/∂", "d_"), sizes=d.sizes)
    np.testing.assert_allclose(again(**{n: 1.0 if n == "d_y" else values[n]
                                        for n in again.input_names}),
                               prog.vjp(1.0, **values)["x"], rtol=1e-12)


def test_a_bare_exponent_before_a_parenthesis_is_multiplied():
    q = 1.5
    prog = einvjp.compile("y = (1 + x[i]^2)^q * (x[i] + 1)")
    text = str(prog.graph(x=X2, q=q))
    np.testing.assert_allclose(einvjp.compile(text)(x=X2, q=q), prog(x=X2, q=q))


def test_a_broadcast_sum_of_scalar_sums_prints_as_separate_terms():
    # y[a] = 3 Σ_hb p[h,b] broadcast along a, plus Σ_b t[b]: the statement's terms keep their
    # own sums (a one-tensor around all of them would sum every term over h and b)
    def f(p, t, x):
        s = 1.5 * p.sum() + t.sum()
        return 3.0 * einvjp.einsum("->a", s, sizes={"a": 2}) + 1.5 * x.sum(0).sum(0)

    values = {"p": rng.normal(size=(3, 4)), "t": rng.normal(size=4), "x": rng.normal(size=(2, 3))}
    g = einvjp.compile(f).graph(**values)
    again = einvjp.compile(str(g), sizes=g.sizes)
    want = np.full(2, 4.5 * values["p"].sum() + 3 * values["t"].sum() + 1.5 * values["x"].sum())
    np.testing.assert_allclose(again(**values), want, rtol=1e-12, err_msg=str(g))


def test_a_sum_over_an_empty_label_that_only_a_one_tensor_carries_is_zero():
    x = np.array([1.0, 2.0])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(
            einvjp.compile("y[i] = 1[j] log(0 x[i])", sizes={"j": 0})(x=x), [0.0, 0.0])
        assert einvjp.compile("y = exp(1[j] log(0 x[i]))", sizes={"j": 0})(x=x) == 1.0


def test_a_traced_output_is_named_apart_from_the_inputs():
    def mse(x, y):
        return ((x - y) ** 2).sum()

    x, y = np.array([1.0, 2.0]), np.array([3.0, 0.5])
    prog = einvjp.compile(mse)
    d = prog.derivative("y", x=x, y=y)
    backward = str(d).replace("∂l/∂y_ (", "d_y_ * (").replace("∂l/∂", "d_")
    text = str(prog.graph(x=x, y=y)) + "\n" + backward + "\nreturn d_y"
    again = einvjp.compile(text, sizes=d.sizes)
    np.testing.assert_allclose(again(x=x, y=y, d_y_=1.0), prog.vjp(1.0, x=x, y=y)["y"])


def test_an_input_named_delta_is_not_printed_as_the_kronecker_delta():
    prog = einvjp.compile(lambda delta, x: delta * x)
    with pytest.raises(einvjp.ProgramError, match="Kronecker delta"):
        str(prog.graph(delta=np.ones((2, 2)), x=np.ones((2, 2))))


def test_softmax_of_an_integer_tensor_is_a_float_one():
    x = np.array([1, 2, 3])
    want = np.exp(x - 3) / np.exp(x - 3).sum()
    for fn in (einvjp.softmax, einvjp.log_softmax, einvjp.logsumexp):
        got = einvjp.compile(lambda x: fn(x, axis=0))(x=x)
        ref = {einvjp.softmax: want, einvjp.log_softmax: np.log(want),
               einvjp.logsumexp: np.log(np.exp(x).sum())}[fn]
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert einvjp.compile("y[c] = softmax(0 1[c], c)", sizes={"c": 4})().tolist() == [0.25] * 4


def test_a_printed_derivative_names_a_forward_tensor_as_the_printed_program_does(jax_x64):
    """An output computed by a named statement (`y = h4`) prints as `y`; the
    derivative read `h4`, which the printed program does not define."""
    from einvjp.testing import _derivative_text
    x = rng.uniform(-1, 1, (1, 4))
    prog = einvjp.compile("h4 = exp(tanh((x[m,i] / M) * tanh(x[m,i]) * 1[i]))\n"
                          "h5 = x[m,i] x[m,i]\ny = h4")
    text, sizes = _derivative_text(prog, "x", {"x": x})
    again = einvjp.compile(text, sizes=sizes)
    np.testing.assert_allclose(again(x=x, d_y=1.5), prog.vjp(1.5, x=x)["x"], rtol=1e-12)
    jx = jnp.asarray(x)
    want = jax.grad(lambda x: 1.5 * jnp.exp(jnp.tanh(jnp.sum(x * jnp.tanh(x)) / 1)))(jx)
    np.testing.assert_allclose(again(x=x, d_y=1.5), np.asarray(want), rtol=1e-12)
