"""`einvjp.contract_expression`: values against opt_einsum's
`contract_expression` and numpy.einsum, gradients against torch autograd and
jax.vjp (opt_einsum.contract on torch/jax) in float64, with random constant
positions; autodiff through `expr(...)` on torch and jax; typed errors."""

import numpy as np
import opt_einsum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp.testing import einsum_cases, random_operands

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])

# (equation, shapes, constant positions): chains, a constant pair joined
# first, constants that the path cannot join, everything constant.
CASES = [
    ("ij,jk,kl->il", [(4, 2), (2, 3), (3, 5)], [1]),
    ("ij,jk,kl->il", [(4, 2), (2, 3), (3, 5)], [1, 2]),
    ("ij,jk,kl,lm->im", [(2, 3), (3, 4), (4, 5), (5, 2)], [0, 3]),
    ("ab,bc,cd,de->ae", [(3, 3), (3, 4), (4, 2), (2, 3)], [1, 2]),
    ("ab,bc,cd->ad", [(3, 3), (3, 4), (4, 2)], [0, 1, 2]),
    ("i,ij,jk,k->", [(3,), (3, 4), (4, 5), (5,)], [1, 2]),
    ("ij,jk,kl->il", [(4, 2), (2, 3), (3, 5)], []),
    ("bi,ij,bj->b", [(2, 3), (3, 3), (2, 3)], [1]),
    ("ii,ij->j", [(3, 3), (3, 4)], [0]),
    ("...ij,jk->...ik", [(2, 3, 4), (4, 5)], [1]),
]


def _split(shapes, ops, constants):
    args = [ops[k] if k in constants else shapes[k] for k in range(len(shapes))]
    variables = [ops[k] for k in range(len(shapes)) if k not in constants]
    return args, variables


@pytest.mark.parametrize("eq,shapes,constants", CASES)
def test_values_match_opt_einsum(eq, shapes, constants):
    ops = random_operands(shapes, seed=1)
    args, variables = _split(shapes, ops, constants)
    expr = einvjp.contract_expression(eq, *args, constants=constants)
    if variables:  # opt_einsum's own expression fails when every operand is constant
        ref = opt_einsum.contract_expression(eq, *args, constants=constants)
        np.testing.assert_allclose(expr(*variables), ref(*variables), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(expr(*variables), np.einsum(eq, *ops), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eq,shapes,constants", CASES)
def test_gradients_match_torch_autograd(eq, shapes, constants):
    torch = pytest.importorskip("torch")
    ops = random_operands(shapes, seed=2)
    args, variables = _split(shapes, ops, constants)
    expr = einvjp.contract_expression(eq, *args, constants=constants)
    ct = np.random.default_rng(3).standard_normal(np.shape(np.einsum(eq, *ops)))
    grads = expr.vjp(variables, ct)
    tensors = [torch.tensor(x, requires_grad=k not in constants) for k, x in enumerate(ops)]
    out = opt_einsum.contract(eq, *tensors, backend="torch")
    wanted = [t for k, t in enumerate(tensors) if k not in constants]
    expected = torch.autograd.grad(out, wanted, torch.tensor(ct)) if wanted else ()
    assert len(grads) == len(wanted)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-10, atol=1e-12)
    # torch tensors in, torch autograd through expr(...)
    texpr = einvjp.contract_expression(
        eq, *[torch.tensor(ops[k]) if k in constants else shapes[k] for k in range(len(ops))],
        constants=constants)
    tvars = [torch.tensor(x, requires_grad=True) for x in variables]
    y = texpr(*tvars)
    np.testing.assert_allclose(y.detach().numpy(), np.einsum(eq, *ops), rtol=1e-12, atol=1e-12)
    if tvars:
        y.backward(torch.tensor(ct))
        for t, e in zip(tvars, expected):
            np.testing.assert_allclose(t.grad.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)
    # and expr.vjp on torch tensors
    for g, e in zip(texpr.vjp([t.detach() for t in tvars], torch.tensor(ct)), expected):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eq,shapes,constants", CASES[:6])
def test_jax_grad_and_jit(eq, shapes, constants, jax_x64):
    jax, jnp = jax_x64, pytest.importorskip("jax.numpy")
    ops = random_operands(shapes, seed=4)
    args, variables = _split(shapes, ops, constants)
    expr = einvjp.contract_expression(eq, *args, constants=constants)
    jvars = [jnp.asarray(x) for x in variables]
    ct = jnp.asarray(np.random.default_rng(5).standard_normal(np.shape(np.einsum(eq, *ops))))

    def reference(*xs):
        it = iter(xs)
        full = [jnp.asarray(ops[k]) if k in constants else next(it) for k in range(len(ops))]
        return opt_einsum.contract(eq, *full, backend="jax")

    if not jvars:
        np.testing.assert_allclose(jax.jit(expr)(), np.einsum(eq, *ops), rtol=1e-12)
        return
    y, pull = jax.vjp(reference, *jvars)
    expected = pull(ct)
    np.testing.assert_allclose(jax.jit(expr)(*jvars), y, rtol=1e-12, atol=1e-12)
    got = jax.jit(lambda *xs: jax.vjp(expr, *xs)[1](ct))(*jvars)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    g0 = jax.jit(jax.grad(lambda *xs: jnp.sum(jnp.sin(expr(*xs)))))(*jvars)
    e0 = jax.grad(lambda *xs: jnp.sum(jnp.sin(reference(*xs))))(*jvars)
    np.testing.assert_allclose(g0, e0, rtol=1e-10, atol=1e-12)
    for g, e in zip(expr.vjp(jvars, ct), expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@settings(max_examples=120, **SETTINGS)
@given(einsum_cases(max_operands=5, extensions=False, broadcast=False), st.data())
def test_generated_equations(case, data):
    """Random equations and random constant positions: values against
    numpy.einsum, gradients against torch autograd over opt_einsum.contract."""
    torch = pytest.importorskip("torch")
    eq, shapes, _ = case
    n = len(shapes)
    constants = sorted(data.draw(st.sets(st.integers(0, n - 1)), label="constants"))
    ops = random_operands(shapes, seed=data.draw(st.integers(0, 2**32 - 1)))
    args, variables = _split(shapes, ops, constants)
    expr = einvjp.contract_expression(eq, *args, constants=constants)
    expected = np.einsum(eq, *ops)
    np.testing.assert_allclose(expr(*variables), expected, rtol=1e-10, atol=1e-10)
    ct = np.random.default_rng(0).standard_normal(np.shape(expected))
    tensors = [torch.tensor(x, requires_grad=k not in constants) for k, x in enumerate(ops)]
    wanted = [t for k, t in enumerate(tensors) if k not in constants]
    grads = expr.vjp(variables, ct)
    assert len(grads) == len(wanted)
    if wanted:
        out = opt_einsum.contract(eq, *tensors, backend="torch")
        ref = torch.autograd.grad(out, wanted, torch.tensor(ct), allow_unused=True)
        for g, e, x in zip(grads, ref, wanted):
            e = np.zeros(x.shape) if e is None else e.numpy()
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-10)


def test_constants_are_folded_once_and_cached_per_backend():
    torch = pytest.importorskip("torch")
    a, b = np.ones((3, 100)), np.ones((100, 2))  # the path joins a and b first
    expr = einvjp.contract_expression("ij,jk,kl->il", (5, 3), a, b, constants=[1, 2])
    assert len(expr._folded) == 1 and expr._folded[0].shape == (3, 2)
    assert expr._plan.n == 2  # one operand and the folded constants
    x = np.ones((5, 3))
    np.testing.assert_allclose(expr(x), np.full((5, 2), 300.0))
    first = expr._constants(einvjp.backend.load("torch"), [torch.ones(5, 3)])
    again = expr._constants(einvjp.backend.load("torch"), [torch.ones(5, 3)])
    assert first[0] is again[0] and isinstance(first[0], torch.Tensor)
    assert expr(torch.ones(5, 3, dtype=torch.float64)).shape == (5, 2)
    # where the path joins a variable first, the constants stay apart
    expr = einvjp.contract_expression("ij,jk,kl->il", (2, 3), np.ones((3, 4)),
                                      np.ones((4, 5)), constants=[1, 2])
    assert len(expr._folded) == 2


def test_wrt_and_memory_limit():
    expr = einvjp.contract_expression("ij,jk,kl->il", (2, 3), np.ones((3, 4)), (4, 5),
                                      constants=[1])
    x, y = np.ones((2, 3)), np.ones((4, 5))
    gx, gy = expr.vjp((x, y), np.ones((2, 5)), wrt=1)
    assert gx is None and gy.shape == (4, 5)
    with pytest.raises(einvjp.EinvjpError, match="positive number of bytes"):
        einvjp.contract_expression("ij,jk->ik", (2, 3), (3, 4), memory_limit=0)
    with pytest.raises(einvjp.WrtError):
        expr.vjp((x, y), np.ones((2, 5)), wrt=2)


def test_repr():
    expr = einvjp.contract_expression("ij,jk->ik", np.ones((2, 3)), (3, 4), constants=[0])
    assert repr(expr) == "<ContractExpression('ij,jk->ik', constants=[0], shapes=[(3, 4)])>"


def test_errors_name_operand_label_and_sizes():
    expr = einvjp.contract_expression("ij,jk,kl->il", (2, 3), np.ones((3, 4)), (4, 5),
                                      constants=[1])
    with pytest.raises(einvjp.LabelSizeError) as err:
        expr(np.ones((2, 3)), np.ones((4, 6)))
    assert "label 'l' in operand 2 (argument 1) is 6, but it was planned with 5" in str(err.value)
    assert str(err.value).endswith("\n    ij,jk,kl->il\n" + " " * 11 + "^")  # under l
    with pytest.raises(einvjp.RankError, match="operand 0"):
        expr(np.ones(2), np.ones((4, 5)))
    with pytest.raises(einvjp.OperandCountError, match="takes 2 operand"):
        expr(np.ones((2, 3)))
    with pytest.raises(einvjp.CotangentError):
        expr.vjp((np.ones((2, 3)), np.ones((4, 5))), np.ones((2, 4)))
    with pytest.raises(einvjp.OperandCountError, match="position"):
        einvjp.contract_expression("ij,jk->ik", (2, 3), (3, 4), constants=[2])
    with pytest.raises(einvjp.LabelSizeError, match="label 'j'"):
        einvjp.contract_expression("ij,jk->ik", (2, 3), np.ones((4, 4)), constants=[1])
    with pytest.raises(einvjp.SignatureError, match="not a shape"):
        einvjp.contract_expression("ij,jk->ik", (2, 3), np.ones((3, 4)))
