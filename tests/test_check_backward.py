"""einvjp.testing.check_backward: one line catches a wrong hand-written backward
(torch autograd.Function, jax.custom_vjp, a NumPy pair), with a message naming
the operand, the first wrong index, both entries and the shapes."""

import pathlib
import re

import numpy as np
import pytest

import einvjp
from conftest import jax_fast_x64
from einvjp.testing import check_backward

torch = pytest.importorskip("torch")
from hand_written import (BatchedMatmul, DetachedBackward, Multiply,  # noqa: E402
                          MultiplyFirstOnly, NoGraphBackward, OnceDifferentiable, ScaleColumns,
                          Trace, TraceOfSquare, TraceOfSquareNoTwo, TraceOnes,
                          TransposedGradient, TransposedReshaped)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_right_function_passes():
    check_backward(BatchedMatmul.apply, "bij,jk->bik", examples=40)
    check_backward(BatchedMatmul.apply, "bij,jk->bik", exact=False, examples=20)
    check_backward(Trace.apply, "ii->", examples=20)
    check_backward(ScaleColumns.apply, "ij,j->ij", [(2, 3), (3,)])  # the sizes hide the bug
    check_backward(Multiply.apply, "ij,ij->ij", broadcast=True, examples=40)
    check_backward(MultiplyFirstOnly.apply, "ij,ij->ij", examples=40)  # no size 1 against more


def test_a_transposed_gradient_is_caught():
    # torch itself rejects a gradient of the wrong shape, naming the operand's index
    with pytest.raises(AssertionError, match=r"(?s)fn's backward raised RuntimeError: .* invalid "
                                             r"gradient at index 1 - got \[(\d), (\d)\] but "
                                             r"expected shape compatible with \[\2, \1\].*"
                                             r"equation 'bij,jk->bik'"):
        check_backward(TransposedGradient.apply, "bij,jk->bik")
    with pytest.raises(AssertionError) as err:
        check_backward(TransposedReshaped.apply, "bij,jk->bik")
    message = str(err.value)
    assert re.match(r"check_backward: the gradient of operand 1 is wrong at index \(\d+, \d+\): "
                    r"expected -?\d\.0, got -?\d\.0; \d+ of \d+ entries differ\n", message)
    assert "equation 'bij,jk->bik'" in message and "shapes (" in message
    assert "operand 1 = [[" in message and "cotangent of the output = " in message


def test_a_wrong_trace_names_the_off_diagonal_entry():
    with pytest.raises(AssertionError, match=r"gradient of operand 0 is wrong at index \(0, 1\): "
                                             r"expected 0\.0, got [1-3]\.0"):
        check_backward(TraceOnes.apply, "ii->")


def test_a_missing_factor_of_two_is_caught_exactly():
    trace_of_square = einvjp.compile("t = x[i,j] x[j,i]")
    check_backward(TraceOfSquare.apply, trace_of_square, exact=True, examples=30)
    with pytest.raises(AssertionError, match=r"(?s)gradient of input 'x' is wrong at index "
                                             r"\(0, 0\): expected (-?\d+)\.0, got .*program\n"
                                             r"    t = x\[i,j\] x\[j,i\]"):
        check_backward(TraceOfSquareNoTwo.apply, trace_of_square, exact=True)


def test_a_gradient_wrong_only_at_equal_sizes_is_caught():
    with pytest.raises(AssertionError, match=r"(?s)gradient of operand 1 is wrong at index.*"
                                             r"shapes \((\d), \1\), \(\1,\)"):
        check_backward(ScaleColumns.apply, "ij,j->ij")


def test_a_gradient_wrong_only_at_size_one_broadcasting_is_caught():
    with pytest.raises(AssertionError, match=r"gradient of operand [01] is wrong at index"):
        check_backward(MultiplyFirstOnly.apply, "ij,ij->ij", broadcast=True)
    with pytest.raises(AssertionError, match=r"gradient of operand 0 is wrong at index \(0, 0\)"):
        check_backward(MultiplyFirstOnly.apply, "ij,ij->ij", [(2, 1), (2, 3)])


def test_order_two_checks_the_double_backward():
    check_backward(BatchedMatmul.apply, "bij,jk->bik", order=2, examples=20)
    check_backward(DetachedBackward.apply, "bij,jk->bik", examples=20)  # right once
    with pytest.raises(AssertionError, match=r"order 2: the derivative of Σ <w, gradient> with "
                                             r"respect to operand 1 is wrong at index"):
        check_backward(DetachedBackward.apply, "bij,jk->bik", order=2)
    with pytest.raises(AssertionError, match=r"order 2: .* with respect to operand [01] is wrong"):
        check_backward(OnceDifferentiable.apply, "bij,jk->bik", order=2)
    with pytest.raises(AssertionError, match=r"(?s)order 2: .* with respect to operand 0 is wrong.*"
                                             r"fn's gradient of operand 1 is a constant to "
                                             r"autodiff"):
        check_backward(NoGraphBackward.apply, "bij,jk->bik", order=2)


LAYER_NORM = """
    m[b]    = x[b,h] / H
    mu[b,h] = x[b,h] - m[b]
    v[b]    = mu[b,h]^2 / H
    s[b]    = sqrt(v[b] + eps)
    y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]
"""


def torch_layer_norm(x, eps, gamma, beta):
    m = x.mean(-1, keepdim=True)
    s = torch.sqrt(((x - m) ** 2).mean(-1, keepdim=True) + eps)
    return (x - m) / s * gamma + beta


def torch_layer_norm_wrong(x, eps, gamma, beta):
    m = x.mean(-1, keepdim=True)
    s = torch.sqrt(((x - m) ** 2).mean(-1, keepdim=True) + eps).detach()
    return (x - m) / s * gamma + beta


def test_a_program_against_a_torch_function():
    layer_norm = einvjp.compile(LAYER_NORM)
    check_backward(torch_layer_norm, layer_norm, fixed={"eps": 1e-5}, examples=30)
    check_backward(torch_layer_norm, layer_norm, fixed={"eps": 1e-5}, order=2, examples=10)
    # eps differentiated too; h ≥ 1, as torch's mean over nothing has a NaN gradient
    check_backward(torch_layer_norm, layer_norm, domains={"eps": (0.1, 1)}, min_size=1,
                   examples=20)
    with pytest.raises(AssertionError, match=r"(?s)gradient of input 'x' is wrong at index.*"
                                             r"    s\[b\]    = sqrt\(v\[b\] \+ eps\).*"
                                             r"fixed \{'eps': 1e-05\}.*input 'gamma' = "):
        check_backward(torch_layer_norm_wrong, layer_norm, fixed={"eps": 1e-5})


def test_a_traced_program_takes_shapes():
    @einvjp.compile
    def gram(x):
        return einvjp.einsum("ij,kj->ik", x, x)

    f = lambda x: x @ x.T  # noqa: E731
    with pytest.raises(ValueError, match="give shapes= for a traced program"):
        check_backward(f, gram, backend="torch")
    check_backward(f, gram, {"x": (3, 2)}, backend="torch", exact=True, examples=10)
    with pytest.raises(AssertionError, match="gradient of input 'x'"):
        check_backward(lambda x: x @ x.T.detach(), gram, [(3, 2)], backend="torch")


def test_programs_with_two_outputs_and_a_matrix_function():
    two = einvjp.compile("""
        a[i] = x[i,j] w[j]
        b[j] = x[i,j] x[i,j]
        return a, b
    """)
    check_backward(lambda x, w: (x @ w, (x * x).sum(0)), two, backend="torch", exact=True,
                   examples=20)
    with pytest.raises(AssertionError, match=r"the output 'b' (has shape|is wrong)"):
        check_backward(lambda x, w: (x @ w, (x * x).sum(1)), two, backend="torch", exact=True)
    # drawn sizes inv does not take (i ≠ j) and singular matrices are skipped
    solve = einvjp.compile("y[i] = inv(a[i,j]) v[j]")
    check_backward(lambda a, v: torch.linalg.inv(a) @ v, solve, backend="torch", examples=20)


def test_output_only_labels_and_given_shapes():
    spread = lambda x: x[:, None].expand(-1, 3)  # noqa: E731
    check_backward(spread, "i->ij", sizes={"j": 3}, backend="torch", examples=20)
    with pytest.raises(AssertionError, match=r"the output has shape \(\d, 2\), expected "
                                             r"\(\d, 3\)"):
        check_backward(lambda x: x[:, None].expand(-1, 2), "i->ij", sizes={"j": 3},
                       backend="torch")


# --- jax and NumPy -----------------------------------------------------------------

def test_a_jax_custom_vjp():
    jax = pytest.importorskip("jax")

    def matmul(bwd):
        @jax.custom_vjp
        def f(x, w):
            return x @ w
        f.defvjp(lambda x, w: (x @ w, (x, w)), bwd)
        return f

    right = matmul(lambda res, g: (g @ res[1].T, res[0].T @ g))
    halved = matmul(lambda res, g: (g @ res[1].T, res[0].T @ g / 2))
    stopped = matmul(lambda res, g: (g @ jax.lax.stop_gradient(res[1]).T, res[0].T @ g))
    with jax_fast_x64():  # XLA compiles each shape: its optimizations cost, not help
        check_backward(right, "ij,jk->ik", examples=20)
        check_backward(right, "ij,jk->ik", order=2, examples=4)
        with pytest.raises(AssertionError, match=r"gradient of operand 1 is wrong at index "
                                                 r"\(0, 0\): expected (-?\d)\.0, got -?\d\.5"):
            check_backward(halved, "ij,jk->ik")
        with pytest.raises(AssertionError, match="order 2: .* with respect to operand 1"):
            check_backward(stopped, "ij,jk->ik", [(2, 3), (3, 2)], order=2, examples=4)


def test_a_numpy_pair():
    forward = lambda x, w: np.einsum("bij,jk->bik", x, w)  # noqa: E731
    vjp = lambda g, x, w: (g @ w.T, np.einsum("bij,bik->jk", x, g))  # noqa: E731
    check_backward((forward, vjp), "bij,jk->bik", examples=30)
    with pytest.raises(AssertionError, match=r"gradient of operand 0 has shape \(\d+, \d+\), "
                                             r"expected \(\d+, \d+, \d+\)"):
        check_backward((forward, lambda g, x, w: (g.sum(0) @ w.T, vjp(g, x, w)[1])),
                       "bij,jk->bik")
    with pytest.raises(AssertionError, match="gradient of operand 1 is None"):
        check_backward((forward, lambda g, x, w: (g @ w.T, None)), "bij,jk->bik")
    with pytest.raises(AssertionError, match=r"1 gradient\(s\) for 2 operand\(s\)"):
        check_backward((forward, lambda g, x, w: g @ w.T), "bij,jk->bik")
    with pytest.raises(ValueError, match="no double backward"):
        check_backward((forward, vjp), "bij,jk->bik", order=2)


def test_the_library_is_told_from_fn():
    jax = pytest.importorskip("jax")
    from einvjp.testing_libraries import library as _library
    assert _library(BatchedMatmul.apply, None) == "torch"
    assert _library(lambda x: torch.sin(x), None) == "torch"
    assert _library(jax.custom_vjp(lambda x: x), None) == "jax"
    assert _library(jax.jit(lambda x: x), None) == "jax"
    assert _library((np.sin, np.cos), None) == "numpy"
    with pytest.raises(TypeError, match="pass backend='torch' or backend='jax'"):
        _library(lambda x: x, None)
    with pytest.raises(ValueError, match="backend is one of"):
        _library(np.sin, "cupy")


def test_errors_say_what_is_wrong():
    with pytest.raises(AssertionError, match=r"(?s)fn raised RuntimeError: .*"
                                             r"equation 'ij,jk->ik'"):
        check_backward(lambda x, w: w @ x, "ij,jk->ik", backend="torch")
    with pytest.raises(TypeError, match="an einsum equation or an einvjp program"):
        check_backward(BatchedMatmul.apply, 3)
    with pytest.raises(ValueError, match="fixed= names z, not inputs"):
        check_backward(torch_layer_norm, einvjp.compile(LAYER_NORM), fixed={"z": 1.0})
    with pytest.raises(ValueError, match=r"1 shape\(s\) for 2 operand\(s\)"):
        check_backward(BatchedMatmul.apply, "bij,jk->bik", [(2, 3, 4)])


def test_the_readme_example_runs():
    """The README's torch example (not a doctest: it needs torch) runs, and
    its failure message is the one check_backward gives."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Testing your own gradients"):text.index("## Command line")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    example = next(b for b in blocks if "autograd.Function" in b)
    env = {"__name__": "readme_example"}
    exec(compile(example, "README.md", "exec"), env)
    shown = re.search(r"```\n(AssertionError: .*?)```", section, re.S).group(1)
    with pytest.raises(AssertionError) as err:
        check_backward(TransposedReshaped.apply, "bij,jk->bik")
    assert "AssertionError: " + str(err.value) == shown.rstrip("\n")
