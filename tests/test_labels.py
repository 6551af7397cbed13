"""Any number of labels and NumPy's interleaved form.

Labels: every `opt_einsum.get_symbol(i)` (checked to i = 10,000) in `einsum`,
`vjp`, `derive` and `plan`, on numpy, torch and jax: a 64-site MPS chain of
129 operands whose labels run past the 52 ASCII letters, and a contraction
labelled `get_symbol(10000)`.  Values against `opt_einsum.contract` (numpy) in
float64; gradients against torch autograd and `jax.vjp` over
`opt_einsum.contract` with the torch/jax backend (which contracts pairwise in
letters the libraries accept).

Interleaved form: values against `numpy.einsum` (integer labels; its
interleaved form or the equivalent string), hypothesis-drawn from
`einsum_cases`; the errors name the operand, the label as given and the sizes.
"""

import numpy as np
import opt_einsum as oe
import pytest
from conftest import jax_fast_x64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp import EinvjpError, EquationSyntaxError, LabelSizeError, MissingSizeError, RankError
from einvjp.equation import parse
from einvjp.testing import einsum_cases, random_operands

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
sym = oe.get_symbol


def mps(n_sites, bond=3, phys=2, offset=0):
    """A chain: a boundary vector, then x_k[p_k] contracted with
    A_k[l_k, p_k, l_{k+1}], out the last bond; labels numbered from `offset`;
    2n+1 operands."""
    bonds = [sym(offset + k) for k in range(n_sites + 1)]
    physical = [sym(offset + n_sites + 1 + k) for k in range(n_sites)]
    terms, shapes = [bonds[0]], [(bond,)]
    for k in range(n_sites):
        terms += [physical[k], bonds[k] + physical[k] + bonds[k + 1]]
        shapes += [(phys,), (bond, phys, bond)]
    return ",".join(terms) + "->" + bonds[-1], shapes


def operands(shapes, seed=0):
    rng = np.random.default_rng(seed)
    # Scaled so that a long chain stays O(1).
    return [rng.standard_normal(s) / np.sqrt(np.prod(s[:1]) or 1) for s in shapes]


MPS_EQ, MPS_SHAPES = mps(64, offset=40)
BIG = sym(10000)


def test_mps_equation_has_labels_past_the_ascii_letters():
    labels = {c for c in MPS_EQ if c not in ",->"}
    assert len(MPS_SHAPES) == 129 and len(labels) == 129
    assert any(not c.isascii() for c in labels)


def test_get_symbol_10000_numpy():
    eq = f"a{BIG},{BIG}{sym(9999)}->{sym(9999)}a"
    x, y = operands([(2, 3), (3, 4)])
    np.testing.assert_allclose(einvjp.einsum(eq, x, y), (x @ y).T)
    gx, gy = einvjp.vjp(eq, (x, y), np.ones((4, 2)))
    np.testing.assert_allclose(gx, np.ones((2, 4)) @ y.T)
    np.testing.assert_allclose(gy, x.T @ np.ones((2, 4)))
    d = einvjp.derive(eq, wrt=1)
    assert d.equation == f"{sym(9999)}a,a{BIG}->{BIG}{sym(9999)}"
    p = einvjp.plan(eq, [(2, 3), (3, 4)])
    assert [idx.size for idx in p.ge.out] == [4, 2]


def test_derive_with_more_labels_than_free_letters():
    n = 70  # every one of derive's 52 free letters is taken
    eq = "".join(sym(i) for i in range(n)) + "->" + "".join(sym(i) for i in reversed(range(n)))
    d = einvjp.derive(eq)
    assert len(set(d.free)) == n and not {f.name for f in d.free} & set(eq)
    assert str(d).count(",") == 2 * (n - 1)


def test_mps_numpy_values_and_gradients():
    ops = operands(MPS_SHAPES)
    ref = oe.contract(MPS_EQ, *ops)
    np.testing.assert_allclose(einvjp.einsum(MPS_EQ, *ops), ref, rtol=1e-10)
    grads = einvjp.vjp(MPS_EQ, ops, np.ones(3))
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(o, requires_grad=True) for o in ops]
    oe.contract(MPS_EQ, *ts, backend="torch").sum().backward()
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert len(einvjp.plan(MPS_EQ, MPS_SHAPES).steps) >= 128


def test_mps_torch_autograd():
    torch = pytest.importorskip("torch")
    ops = operands(MPS_SHAPES, seed=1)
    mine = [torch.tensor(o, requires_grad=True) for o in ops]
    ref = [torch.tensor(o, requires_grad=True) for o in ops]
    y = einvjp.einsum(MPS_EQ, *mine)
    y_ref = oe.contract(MPS_EQ, *ref, backend="torch")
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    (3.0 * y).sum().backward()
    (3.0 * y_ref).sum().backward()
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    grads = einvjp.vjp(MPS_EQ, [t.detach() for t in mine], torch.full((3,), 3.0, dtype=torch.float64))
    for g, b in zip(grads, ref):
        torch.testing.assert_close(g, b.grad, rtol=1e-9, atol=1e-12)


def test_mps_jax_vjp():
    jax = pytest.importorskip("jax")
    with jax_fast_x64():
        ops = [jax.numpy.asarray(o) for o in operands(MPS_SHAPES, seed=2)]
        y, pull = jax.vjp(lambda *xs: einvjp.einsum(MPS_EQ, *xs), *ops)
        y_ref, pull_ref = jax.vjp(lambda *xs: oe.contract(MPS_EQ, *xs, backend="jax"), *ops)
        np.testing.assert_allclose(y, y_ref, rtol=1e-10)
        ct = jax.numpy.asarray([0.5, -1.0, 2.0])
        for g, r in zip(pull(ct), pull_ref(ct)):
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)
        for g, r in zip(einvjp.vjp(MPS_EQ, ops, ct), pull_ref(ct)):
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lib", ["torch", "jax"])
def test_get_symbol_10000_on_autodiff_backends(lib):
    eq = f"{BIG}ÀÀ,À{sym(5000)}->{sym(5000)}{BIG}"  # a diagonal, then a product
    x, y = operands([(2, 3, 3), (3, 4)], seed=3)
    ct = np.random.default_rng(4).standard_normal((4, 2))
    ref = np.einsum("aii,ib->ba", x, y)
    gx = np.einsum("ba,ib->ai", ct, y)[:, :, None] * np.eye(3)
    gy = np.einsum("ba,aii->ib", ct, x)
    if lib == "torch":
        torch = pytest.importorskip("torch")
        tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
        out = einvjp.einsum(eq, tx, ty)
        out.backward(torch.tensor(ct))
        got = [out.detach().numpy(), tx.grad.numpy(), ty.grad.numpy()]
    else:
        jax = pytest.importorskip("jax")
        with jax_fast_x64():
            out, pull = jax.vjp(lambda a, b: einvjp.einsum(eq, a, b), x, y)
            got = [np.asarray(out)] + [np.asarray(g) for g in pull(ct)]
    for g, r in zip(got, [ref, gx, gy]):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


@settings(max_examples=100, **SETTINGS)
@given(einsum_cases(max_operands=4, extensions=False), st.integers(52, 20000),
       st.integers(0, 2**32 - 1))
def test_relabelled_past_ascii_matches_numpy(case, start, seed):
    """A numpy equation, its letters replaced (in order, so that the implicit
    output keeps its order) by symbols from get_symbol(start) on."""
    eq, shapes, _ = case
    letters = sorted({c for c in eq if c.isalpha()})
    rename = {c: sym(start + 7 * k) for k, c in enumerate(letters)}
    ops = random_operands(shapes, seed=seed)
    got = einvjp.einsum("".join(rename.get(c, c) for c in eq), *ops)
    np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)


# --- the interleaved form ---

def interleave(eq, ops, label):
    """The interleaved arguments of a string equation, each letter given as
    `label(letter)`."""
    spec = parse(eq)
    conv = lambda t: [Ellipsis if lab == "..." else label(lab) for lab in t.labels]  # noqa: E731
    args = [x for op, t in zip(ops, spec.inputs) for x in (op, conv(t))]
    return args + ([conv(spec.output)] if spec.explicit else [])


@settings(max_examples=150, **SETTINGS)
@given(einsum_cases(max_operands=4, extensions=False), st.integers(0, 2**32 - 1),
       st.sampled_from(["int", "tuple", "str"]))
def test_interleaved_matches_numpy(case, seed, kind):
    eq, shapes, _ = case
    ops = random_operands(shapes, seed=seed)
    label = {"int": ord, "tuple": lambda c: ("site", ord(c)), "str": lambda c: c * 2}[kind]
    got = einvjp.einsum(*interleave(eq, ops, label))
    np.testing.assert_allclose(got, np.einsum(eq, *ops), rtol=1e-10, atol=1e-12)
    if kind == "int":  # numpy's own interleaved form (labels below 52)
        small = interleave(eq, ops, lambda c: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           .index(c))
        if "..." not in eq or parse(eq).explicit:  # implicit order differs from ord's
            np.testing.assert_allclose(einvjp.einsum(*small), np.einsum(*small),
                                       rtol=1e-10, atol=1e-12)


def test_interleaved_examples():
    a, b = operands([(2, 3), (3, 4)])
    c = operands([(2, 5, 3)])[0]
    np.testing.assert_allclose(einvjp.einsum(a, [0, 1], b, [1, 2], [0, 2]), a @ b)
    np.testing.assert_allclose(einvjp.einsum(a, [0, 1], b, [1, 2]), a @ b)
    np.testing.assert_allclose(einvjp.einsum(a, [5, 1], b, [1, 0]), (a @ b).T)  # sorted
    np.testing.assert_allclose(einvjp.einsum(c, [0, ..., 1], [..., 0]), np.einsum(c, [0, ..., 1], [..., 0]))
    np.testing.assert_allclose(einvjp.einsum(c, [0, ..., 1]), np.einsum(c, [0, ..., 1]))
    np.testing.assert_allclose(einvjp.einsum(a, ["i", (0, "j")], b, [(0, "j"), None], ["i", None]),
                               a @ b)  # labels that do not sort together: as first seen
    out = einvjp.einsum(a, [0, 1], [1, 0, "k"], sizes={"k": 2})
    np.testing.assert_allclose(out, np.broadcast_to(a.T[:, :, None], (3, 2, 2)))
    many = list(range(1000, 1060))  # more labels than letters
    x = np.arange(2.0 ** 10).reshape((2,) * 10)
    got = einvjp.einsum(x, many[:10], many[9::-1])
    np.testing.assert_allclose(got, x.transpose(range(9, -1, -1)))


@pytest.mark.parametrize("lib", ["torch", "jax"])
def test_interleaved_autodiff_backends(lib):
    a, b = operands([(2, 3), (3, 4)], seed=5)
    ct = np.ones((2, 4))
    if lib == "torch":
        torch = pytest.importorskip("torch")
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        einvjp.einsum(ta, ["r", 10 ** 6], tb, [10 ** 6, "c"], ["r", "c"]).backward(torch.tensor(ct))
        ga, gb = ta.grad.numpy(), tb.grad.numpy()
    else:
        jax = pytest.importorskip("jax")
        with jax_fast_x64():
            _, pull = jax.vjp(lambda x, y: einvjp.einsum(x, ["r", 7], y, [7, "c"], ["r", "c"]), a, b)
            ga, gb = map(np.asarray, pull(ct))
    np.testing.assert_allclose(ga, ct @ b.T)
    np.testing.assert_allclose(gb, a.T @ ct)


def raises(kind, *args, **kwargs):
    with pytest.raises(kind) as info:
        einvjp.einsum(*args, **kwargs)
    assert isinstance(info.value, EinvjpError) and isinstance(info.value, ValueError)
    return str(info.value)


def caret(message, text, column):
    lines = message.splitlines()
    assert lines[-2] == "    " + text and lines[-1] == "    " + " " * column + "^", message


def test_interleaved_label_size_mismatch():
    a, b = np.ones((2, 3)), np.ones((4, 5))
    msg = raises(LabelSizeError, a, [0, "j"], b, ["j", 2], [0, 2])
    assert "label 'j'" in msg and "operand 1 (4)" in msg and "operand 0 (3)" in msg
    caret(msg, "[0, 'j'], ['j', 2] -> [0, 2]", 11)


def test_interleaved_repeated_label_sizes():
    msg = raises(LabelSizeError, np.ones((2, 3)), [7, 7])
    assert "label 7" in msg and "operand 0" in msg and "2 and 3" in msg


def test_interleaved_rank_mismatch():
    msg = raises(RankError, np.ones((2, 3)), [0, 1], np.ones(3), [1, 2], [0])
    assert "operand 1" in msg and "1 dimension(s) (3,)" in msg and "2 label(s)" in msg
    caret(msg, "[0, 1], [1, 2] -> [0]", 8)


def test_interleaved_unhashable_label():
    msg = raises(EquationSyntaxError, np.ones(3), [[0]])
    assert "[0]" in msg and "operand 0" in msg and "hashable" in msg


def test_interleaved_missing_label_list():
    msg = raises(EquationSyntaxError, np.ones(3), [0], np.ones(3))
    assert "ndarray" in msg and "list" in msg


def test_interleaved_two_ellipses():
    msg = raises(EquationSyntaxError, np.ones((2, 3)), [Ellipsis, 0, Ellipsis])
    assert "operand 0" in msg and "more than one ellipsis" in msg
    caret(msg, "[..., 0, ...]", 9)


def test_interleaved_output_label_without_size():
    msg = raises(MissingSizeError, np.ones(3), ["i"], ["i", "k"])
    assert "'k'" in msg and "sizes={'k': n}" in msg
    caret(msg, "['i'] -> ['i', 'k']", 15)


def test_interleaved_sizes_by_label_as_given():
    msg = raises(LabelSizeError, np.ones(3), [(1, 2)], [(1, 2)], sizes={(1, 2): 4})
    assert "sizes={(1, 2): 4}" in msg and "operand 0 (3)" in msg
    msg = raises(LabelSizeError, np.ones(3), [0], [0, 1], sizes={1: -1})
    assert "sizes={1: -1}" in msg
