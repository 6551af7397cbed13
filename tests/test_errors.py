"""Bad input: one test per error.  Each asserts the exception's type (an
EinvjpError, itself a ValueError, never a bare NumPy error), that the message
names the operand / label / sizes, and where the caret points."""

import numpy as np
import pytest

import einvjp
from einvjp import (BroadcastError, CotangentError, EinvjpError, EquationSyntaxError,
                    LabelSizeError, MissingSizeError, OperandCountError, RankError,
                    WrtError)

ones = np.ones


def raises(kind, fn, *args, **kwargs):
    """Call fn, expecting exactly an einvjp error of type `kind`."""
    with pytest.raises(kind) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, EinvjpError) and isinstance(err, ValueError)
    return err


def caret(err, equation, column):
    """The last two lines are the equation and a caret under `column`."""
    lines = str(err).split("\n")
    assert lines[-2] == "    " + equation, str(err)
    assert lines[-1] == "    " + " " * column + "^", str(err)
    assert err.position == column and err.equation == equation


def test_error_hierarchy():
    for kind in (EquationSyntaxError, OperandCountError, RankError, LabelSizeError,
                 BroadcastError, MissingSizeError, CotangentError, WrtError,
                 einvjp.BackendError, einvjp.ProgramError):
        assert issubclass(kind, EinvjpError)
    assert issubclass(EinvjpError, ValueError)


# --- syntax ---

def test_invalid_character():
    err = raises(EquationSyntaxError, einvjp.einsum, "ij,j!->i", ones((2, 3)), ones((3, 3)))
    assert "'!'" in str(err) and "operand 1" in str(err)
    caret(err, "ij,j!->i", 4)


def test_invalid_character_in_output():
    err = raises(EquationSyntaxError, einvjp.einsum, "ij->i2", ones((2, 3)))
    assert "'2'" in str(err) and "output" in str(err)
    caret(err, "ij->i2", 5)


def test_invalid_non_ascii_letter():
    # Labels are ASCII letters and characters from U+00C0 on (opt_einsum.get_symbol's).
    err = raises(EquationSyntaxError, einvjp.einsum, "iµ->i", ones((2, 3)))
    assert "'µ'" in str(err)
    caret(err, "iµ->i", 1)


def test_comma_in_output():
    err = raises(EquationSyntaxError, einvjp.einsum, "i->i,j", ones(3))
    assert "','" in str(err)
    caret(err, "i->i,j", 4)


def test_arrow_twice():
    err = raises(EquationSyntaxError, einvjp.einsum, "ij->j->i", ones((2, 3)))
    assert "'->'" in str(err) and "twice" in str(err)
    caret(err, "ij->j->i", 5)


@pytest.mark.parametrize("eq, column", [("i..j->i", 1), ("i.->i", 1), (".i->i", 0),
                                        ("ij->i..", 5)])
def test_malformed_ellipsis(eq, column):
    err = raises(EquationSyntaxError, einvjp.einsum, eq, ones((2, 3)))
    assert "ellipsis" in str(err) and "'...'" in str(err)
    caret(err, eq, column)


def test_two_ellipses_in_one_operand():
    err = raises(EquationSyntaxError, einvjp.einsum, "i,...i...->i", ones(3), ones((2, 3)))
    assert "operand 1" in str(err) and "more than one ellipsis" in str(err)
    caret(err, "i,...i...->i", 6)


def test_two_ellipses_in_output():
    err = raises(EquationSyntaxError, einvjp.einsum, "...i->......", ones(3))
    assert "output" in str(err) and "more than one ellipsis" in str(err)
    caret(err, "...i->......", 9)


def test_equation_not_a_string():
    err = raises(EquationSyntaxError, einvjp.einsum, 3, ones(3))
    assert "int" in str(err)


# --- binding to shapes ---

def test_too_few_operands():
    eq = "ij,jk->ik"
    err = raises(OperandCountError, einvjp.einsum, eq, ones((2, 3)))
    assert "2 operand term(s)" in str(err) and "1 operand(s)" in str(err)
    # The caret stands where the missing operand's term ends the inputs.
    assert err.position in (3, eq.index("->")), str(err)
    caret(err, eq, err.position)


def test_too_many_operands():
    err = raises(OperandCountError, einvjp.einsum, "ij->ij", ones((2, 3)), ones(3))
    assert "1 operand term(s)" in str(err) and "2 operand(s)" in str(err)


def test_no_operands():
    err = raises(OperandCountError, einvjp.einsum, "->")
    assert "0 operand(s)" in str(err)


def test_wrong_operand_count_in_vjp():
    err = raises(OperandCountError, einvjp.vjp, "ij,jk->ik", (ones((2, 3)),), ones((2, 4)))
    assert "1 operand(s)" in str(err)


def test_rank_mismatch():
    err = raises(RankError, einvjp.einsum, "ij,jk->ik", ones((2, 3)), ones(3))
    assert "operand 1" in str(err) and "(3,)" in str(err) and "2 label(s)" in str(err)
    caret(err, "ij,jk->ik", 3)


def test_rank_mismatch_with_ellipsis():
    err = raises(RankError, einvjp.einsum, "ij,...jk->ik", ones((2, 3)), ones(3))
    assert "operand 1" in str(err) and "(3,)" in str(err) and "'...'" in str(err)
    caret(err, "ij,...jk->ik", 3)


def test_rank_mismatch_too_many_dimensions():
    err = raises(RankError, einvjp.vjp, "i->", (ones((2, 3)),), np.array(1.0))
    assert "operand 0" in str(err) and "(2, 3)" in str(err)
    caret(err, "i->", 0)


def test_label_size_across_operands():
    err = raises(LabelSizeError, einvjp.einsum, "ij,jk->ik", ones((2, 3)), ones((4, 5)))
    msg = str(err)
    assert "'j'" in msg and "operand 1" in msg and "(4)" in msg and "operand 0" in msg \
        and "(3)" in msg
    caret(err, "ij,jk->ik", 3)


def test_label_size_within_one_operand():
    err = raises(LabelSizeError, einvjp.einsum, "ii->i", ones((2, 3)))
    msg = str(err)
    assert "'i'" in msg and "operand 0" in msg and "2" in msg and "3" in msg
    caret(err, "ii->i", 1)


def test_label_size_within_one_operand_size_one():
    # Size-1 broadcasting is between operands, not inside one (as numpy).
    err = raises(LabelSizeError, einvjp.einsum, "jii->j", ones((2, 1, 3)))
    assert "'i'" in str(err) and "operand 0" in str(err)
    caret(err, "jii->j", 2)


def test_label_size_against_sizes():
    err = raises(LabelSizeError, einvjp.einsum, "ij->i", ones((2, 3)), sizes={"j": 5})
    assert "'j'" in str(err) and "5" in str(err) and "operand 0" in str(err) \
        and "(3)" in str(err)
    caret(err, "ij->i", 1)


def test_impossible_ellipsis_broadcast():
    eq = "...i,...i->...i"
    err = raises(BroadcastError, einvjp.einsum, eq, ones((2, 3)), ones((4, 3)))
    msg = str(err)
    assert "operand 1" in msg and "(4,)" in msg and "operand 0" in msg and "(2,)" in msg
    caret(err, eq, 5)


def test_output_label_without_size():
    err = raises(MissingSizeError, einvjp.einsum, "i->ij", ones(3))
    assert "'j'" in str(err) and "sizes=" in str(err)
    caret(err, "i->ij", 4)


def test_output_label_without_size_in_vjp():
    err = raises(MissingSizeError, einvjp.vjp, "ab,bc->abd", (ones((2, 3)), ones((3, 4))),
                 ones((2, 3, 5)))
    assert "'d'" in str(err)
    caret(err, "ab,bc->abd", 9)


@pytest.mark.parametrize("size", [-1, -2, 2.5, True, "2", None])
def test_invalid_output_size(size):
    # Not a bare numpy error, and not silently truncated; as NumPy's shapes, no bool.
    err = raises(LabelSizeError, einvjp.einsum, "i->ij", ones(3), sizes={"j": size})
    assert "'j'" in str(err) and str(size) in str(err)
    err = raises(LabelSizeError, einvjp.compile, "y[i,j] = x[i]", sizes={"j": size})
    assert "'j'" in str(err) and str(size) in str(err)


def test_numpy_integer_sizes():
    x = np.arange(3.0)
    want = np.repeat(x[:, None], 2, axis=1)
    np.testing.assert_array_equal(einvjp.einsum("i->ij", x, sizes={"j": np.int64(2)}), want)
    np.testing.assert_array_equal(einvjp.compile("y[i,j] = x[i]", sizes={"j": np.int32(2)})(x),
                                  want)


# --- vjp ---

def test_cotangent_of_wrong_shape():
    eq = "ij,jk->ik"
    err = raises(CotangentError, einvjp.vjp, eq, (ones((2, 3)), ones((3, 4))), ones((3, 3)))
    assert "(3, 3)" in str(err) and "(2, 4)" in str(err)
    # The caret points into (or just after) the output term.
    assert eq.index("->") + 2 <= err.position <= len(eq)
    caret(err, eq, err.position)


def test_cotangent_of_wrong_shape_implicit():
    err = raises(CotangentError, einvjp.vjp, "ij,jk", (ones((2, 3)), ones((3, 4))),
                 ones(8))
    assert "(8,)" in str(err) and "(2, 4)" in str(err)


def test_cotangent_missing_diagonal_dimension():
    err = raises(CotangentError, einvjp.vjp, "i->ii", (ones(3),), ones(3))
    assert "(3,)" in str(err) and "(3, 3)" in str(err)


@pytest.mark.parametrize("wrt", [2, -3, [0, 5], "a", 1.5])
def test_vjp_wrt_out_of_range(wrt):
    err = raises(WrtError, einvjp.vjp, "ij,jk->ik", (ones((2, 3)), ones((3, 4))),
                 ones((2, 4)), wrt=wrt)
    assert "wrt=" in str(err) and "2 operand(s)" in str(err)
    assert err.equation == "ij,jk->ik"


@pytest.mark.parametrize("wrt", [2, -3, "a", 1.5])
def test_derive_wrt_out_of_range(wrt):
    err = raises(WrtError, einvjp.derive, "ij,jk->ik", wrt=wrt)
    assert f"wrt={wrt!r}" in str(err) and "2 operand(s)" in str(err)
    assert err.equation == "ij,jk->ik"


def test_derive_wrong_number_of_names():
    err = raises(WrtError, einvjp.derive, "ij,jk->ik", wrt=0, names=("x",))
    assert "1 name(s)" in str(err) and "2 operand(s)" in str(err)


def test_derive_syntax_error():
    err = raises(EquationSyntaxError, einvjp.derive, "ij,jk->i!k")
    caret(err, "ij,jk->i!k", 8)


def test_bad_optimize_is_typed():
    ops = [ones((2, 3)), ones((3, 4)), ones((4, 5))]
    err = raises(EinvjpError, einvjp.einsum, "ab,bc,cd->ad", *ops, optimize="bogus")
    assert "bogus" in str(err)


# --- Traced functions: mistakes a user makes get a typed error naming what to use ----

def traced_error(kind, fn, *args):
    return raises(kind, einvjp.compile(fn), *args)


@pytest.mark.parametrize("fn,says", [
    (lambda x: np.exp(x), "use einvjp.exp"),
    (lambda x: np.tanh(x) + 1, "use einvjp.tanh"),
    (lambda x: np.sum(x, axis=0), "use einvjp.sum"),
    (lambda x: np.einsum("ij->i", x), "use einvjp.einsum"),
    (lambda x: np.reshape(x, (6,)), "einvjp.einsum"),
    (lambda x: np.asarray(x), "einvjp.einsum"),
    (lambda x: x[0], "cannot be indexed"),
    (lambda x: x.reshape(6), "no attribute 'reshape'"),
    (lambda x: float(x.sum()), "no Python number value"),
    (lambda x: [r for r in x], "cannot be iterated"),
])
def test_tracing_mistakes_name_the_einvjp_way(fn, says):
    err = traced_error(einvjp.TracingError, fn, ones((2, 3)))
    assert says in str(err)


def test_unknown_attribute_keeps_hasattr_false():
    seen = []
    einvjp.compile(lambda x: seen.append(hasattr(x, "reshape")) or x)(ones(2))
    assert seen == [False]


def test_numpy_operators_on_traced_values_still_trace():
    k = np.array([1.0, 2.0, 3.0])
    prog = einvjp.compile(lambda x: (k * x + k - x / k) @ k + (k > x) + (k == x) + (k @ x))
    x = np.array([3.0, 2.0, 0.5])
    np.testing.assert_allclose(prog(x), (k * x + k - x / k) @ k + (k > x) + (k == x) + (k @ x))


def test_torch_function_on_a_traced_value():
    torch = pytest.importorskip("torch")
    err = traced_error(einvjp.TracingError, lambda x: torch.tanh(x), torch.ones(2))
    assert "torch.tanh" in str(err) and "use einvjp.tanh" in str(err)
    k = torch.tensor([1.0, 2.0])  # a closed-over tensor in an operator: a constant
    prog = einvjp.compile(lambda x: k * x + k)
    np.testing.assert_allclose(prog(torch.tensor([3.0, 4.0])).numpy(), [4.0, 10.0])


METHODS_OUT_OF_RANGE = [lambda x: x.sum(axis=2), lambda x: x.mean(axis=-3),
                        lambda x: x.max(axis=(0, 2)), lambda x: x.min(axis=5)]
FUNCTIONS_OUT_OF_RANGE = [
    lambda x: einvjp.sum(x, axis=2), lambda x: einvjp.mean(x, 2),
    lambda x: einvjp.max(x, axis=-3), lambda x: einvjp.min(x, axis=2),
    lambda x: einvjp.softmax(x, axis=2), lambda x: einvjp.log_softmax(x, axis=-3),
    lambda x: einvjp.logsumexp(x, axis=2)]


def traced_and_eager(call, functions):
    """The traced program, and the call itself on arrays when it is an einvjp function."""
    return [einvjp.compile(call)] + ([call] if call in functions else [])


@pytest.mark.parametrize("call", METHODS_OUT_OF_RANGE + FUNCTIONS_OUT_OF_RANGE)
def test_axis_out_of_range(call):
    """As NumPy's AxisError, not wrapped around (axis % ndim)."""
    for run in traced_and_eager(call, FUNCTIONS_OUT_OF_RANGE):
        err = raises(einvjp.AxisError, run, ones((2, 3)))
        assert "out of bounds for an array of dimension 2" in str(err)
        assert isinstance(err, IndexError)  # as NumPy's AxisError


FUNCTIONS_TWICE = [lambda x: einvjp.logsumexp(x, axis=(0, -2)),
                   lambda x: einvjp.softmax(x, axis=(1, 1))]


@pytest.mark.parametrize("call", [lambda x: x.sum(axis=(0, 0)),
                                  lambda x: x.mean(axis=(1, -1))] + FUNCTIONS_TWICE)
def test_axis_given_twice(call):
    for run in traced_and_eager(call, FUNCTIONS_TWICE):
        assert "given twice" in str(raises(einvjp.AxisError, run, ones((2, 3))))


def test_axis_of_numpy_integer_type_is_an_axis():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(einvjp.compile(lambda x: x.sum(axis=np.int64(-1)))(x),
                               x.sum(-1))
    assert "integer" in str(raises(einvjp.AxisError, einvjp.sum, x, axis=1.0))


@pytest.mark.parametrize("call,says", [
    (lambda x: einvjp.where(x > 0, x), "einvjp.where(condition, x, y)"),
    (lambda x: einvjp.exp(x, x), "einvjp.exp(x)"),
    (lambda x: einvjp.maximum(x), "einvjp.maximum(x, y)"),
    (lambda x: einvjp.sum(x, 0, False, 3), "einvjp.sum(x, axis=None, keepdims=False)"),
    (lambda x: einvjp.softmax(x, axes=0), "einvjp.softmax(x, axis=-1)"),
    (lambda x: einvjp.inv(x, 1), "einvjp.inv(x)"),
    (lambda x: einvjp.solve(x), "einvjp.solve(a, b)"),
    (lambda x: einvjp.logsumexp(x, 0, False, x), "b=None")])
def test_wrong_arguments_say_the_signature(call, says):
    for run in (einvjp.compile(call), call):  # traced and eager
        err = raises(einvjp.SignatureError, run, np.eye(2))
        assert says in str(err) and isinstance(err, TypeError)


@pytest.mark.parametrize("method", ["jacobian", "hessian"])
def test_jacobian_and_hessian_of_what_is_not_an_array_input(method):
    prog = einvjp.compile("y = x[i] x[i] s")
    call = getattr(prog, method)
    err = raises(einvjp.ProgramError, call, "q", x=ones(2), s=2.0)
    assert "'q'" in str(err) and "the inputs are x, s" in str(err)
    err = raises(einvjp.ProgramError, call, "s", x=ones(2), s=2.0)
    assert "Python number" in str(err) and "0-d array" in str(err)
    err = raises(einvjp.ProgramError, call, "x", x=np.arange(2), s=2.0)
    assert "dtype int" in str(err)
    # as the error says, a 0-d array is differentiated: ∂y/∂s = x·x, ∂²y/∂s² = 0
    np.testing.assert_allclose(call("s", x=np.array([1.0, 2.0]), s=np.asarray(2.0)),
                               5.0 if method == "jacobian" else 0.0)


@pytest.mark.parametrize("path,says", [
    ([(0, 5)], "position(s) [5] out of range"), ([(0,)], "leaves 3 operands"),
    ([(0, 1)], "leaves 2 operands"), ([("a", "b")], "not a tuple of operand positions"),
    ([5], "not a tuple"), ([(0, 0), (0, 1)], "given twice"), ([(), (0, 1, 2)], "empty step"),
    ([(1, 2), (0, 2)], "out of range"), (3.5, "not a path method")])
def test_malformed_explicit_path(path, says):
    ops = [ones((2, 3)), ones((3, 4)), ones((4, 5))]
    for call in (lambda: einvjp.einsum("ab,bc,cd->ad", *ops, optimize=path),
                 lambda: einvjp.vjp("ab,bc,cd->ad", ops, ones((2, 5)), optimize=path),
                 lambda: einvjp.plan("ab,bc,cd->ad", [o.shape for o in ops], optimize=path)):
        assert says in str(raises(EinvjpError, call))


def test_explicit_paths_that_contract_everything_are_taken():
    ops = [np.arange(6.0).reshape(2, 3), np.ones((3, 4)), np.arange(20.0).reshape(4, 5)]
    want = ops[0] @ ops[1] @ ops[2]
    for path in ([(1, 2), (0, 1)], ["einsum_path", (0, 1), (0, 1)], [(0, 1, 2)],
                 np.einsum_path("ab,bc,cd->ad", *ops)[0]):
        np.testing.assert_allclose(einvjp.einsum("ab,bc,cd->ad", *ops, optimize=path), want)
    np.testing.assert_allclose(einvjp.einsum("ab,bc->ac", *ops[:2], optimize=[(0, 1)]),
                               ops[0] @ ops[1])


@pytest.mark.parametrize("n", [1, 2])
def test_bad_optimize_name_with_few_operands(n):
    ops = [ones((2, 2))] * n
    eq = "ab,bc->ac" if n == 2 else "ab->b"
    assert "nonsense" in str(raises(EinvjpError, einvjp.einsum, eq, *ops, optimize="nonsense"))
