"""einvjp.testing.shapes_for and check_linear: shapes that fit, the sizes
users' bugs hide in (0, 1, equal sizes), and the adjoint test catching a
wrong transpose exactly."""

import numpy as np
import pytest
from hypothesis import find, given, settings, strategies as st

import einvjp
from einvjp.testing import check_linear, shapes_for

EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "ii->i", "...ij,j->...i", "i,i->", "ab,cd->abcd",
             "abc,cba->"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(EQUATIONS).flatmap(lambda eq: st.tuples(st.just(eq), shapes_for(eq))))
def test_drawn_shapes_fit_the_equation(case):
    eq, shapes = case
    ops = [np.random.default_rng(0).standard_normal(s) for s in shapes]
    np.testing.assert_allclose(einvjp.einsum(eq, *ops), np.einsum(eq, *ops), atol=1e-12)


def test_sizes_users_bugs_hide_in():
    assert find(shapes_for("ij,jk->ik"), lambda s: s[0][1] == 0)
    assert find(shapes_for("ij,jk->ik"), lambda s: s[0][0] == 1)
    a, b = find(shapes_for("ij,jk->ik"), lambda s: s[0][0] == s[1][1] and s[0][0] > 1)
    assert a[0] == b[1]
    a, b = find(shapes_for("ij,jk->ik"), lambda s: len({*s[0], *s[1]}) == 3)
    assert a[1] == b[0]
    with pytest.raises(Exception):  # never more than max_size
        find(shapes_for("ij", max_size=3), lambda s: s[0][0] > 3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["ij,jk->ik", "bij,bjk->bik", "ij,jk->ki", "ii,i->i", "i,j->ij"])
       .flatmap(lambda eq: st.tuples(st.just(eq), shapes_for(eq, min_size=1))))
def test_einvjp_vjp_is_the_transpose_exactly(case):
    eq, shapes = case
    b = np.random.default_rng(1).integers(-3, 4, shapes[1]).astype(float)
    out = np.einsum(eq, np.zeros(shapes[0]), b).shape
    check_linear(lambda u: einvjp.einsum(eq, u, b),
                 lambda v: einvjp.vjp(eq, (np.zeros(shapes[0]), b), v, wrt=0)[0],
                 [shapes[0]], out)


def test_a_wrong_transpose_is_caught():
    a = np.arange(12.0).reshape(3, 4)
    with pytest.raises(AssertionError, match=r"<v, J u> = .* but <J\^T v, u>"):
        check_linear(lambda u: a @ u, lambda v: (a[::-1].T @ v), [(4,)], (3,))
    with pytest.raises(AssertionError, match=r"gradient 0 has shape \(3,\)"):
        check_linear(lambda u: a @ u, lambda v: v, [(4,)], (3,))
    with pytest.raises(AssertionError, match="gave 1 gradient"):
        check_linear(lambda u, w: a @ u + w, lambda v: (a.T @ v,), [(4,), (3,)], (3,))
    check_linear(lambda u, w: a @ u + w, lambda v: (a.T @ v, v), [(4,), (3,)], (3,))


def test_check_linear_on_torch_and_a_float_operator():
    torch = pytest.importorskip("torch")
    w = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4) / 3
    check_linear(lambda u: w @ u, lambda v: w.T @ v, [(4,)], (3,), exact=False,
                 to_array=torch.from_numpy)
    with pytest.raises(AssertionError):
        check_linear(lambda u: w @ u, lambda v: 1.001 * (w.T @ v), [(4,)], (3,), exact=False,
                     to_array=torch.from_numpy)
