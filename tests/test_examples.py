"""The worked examples (examples/*.py): run as scripts, and their VJPs
checked against the closed forms derived by hand, float64 central
differences, torch autograd and jax.vjp."""

import importlib.util
import pathlib

import numpy as np
import pytest

from test_program import check_vjp

ROOT = pathlib.Path(__file__).resolve().parents[1] / "examples"
NAMES = ["sum", "broadcast", "elementwise", "matmul", "inverse", "cross_entropy",
         "layer_norm", "linear", "two_layer"]


def load(name):
    spec = importlib.util.spec_from_file_location(f"einvjp_example_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=NAMES)
def example(request):
    return load(request.param)


def _case(example, seed=0):
    rng = np.random.default_rng(seed)
    inputs = example.inputs(rng)
    out = example.PROGRAM(**inputs)
    dy = rng.normal(size=np.shape(out))
    return inputs, out, dy


def _arrays(inputs):
    return [n for n, v in inputs.items() if isinstance(v, np.ndarray)]


def test_example_runs_as_a_script(example, capsys):
    example.main()
    assert "∂l/∂" in capsys.readouterr().out


def test_example_matches_its_closed_form(example):
    inputs, out, dy = _case(example)
    got = example.PROGRAM.vjp(dy, **inputs)
    for name, want in example.closed_form(dy, **inputs).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-10, atol=1e-12, err_msg=name)


def test_example_matches_finite_differences(example):
    inputs, _, _ = _case(example, seed=1)
    check_vjp(example.PROGRAM, inputs, np.random.default_rng(2))


def test_example_value_matches_numpy_reference(example):
    inputs, out, _ = _case(example)
    np.testing.assert_allclose(out, example.reference(np, **inputs), rtol=1e-12, atol=1e-12)


def test_example_matches_torch_autograd(example):
    torch = pytest.importorskip("torch")
    inputs, out, dy = _case(example)
    tensors = {n: torch.tensor(v, requires_grad=True) if isinstance(v, np.ndarray) else v
               for n, v in inputs.items()}
    ref = example.reference(torch, **tensors)
    ref.backward(torch.as_tensor(dy, dtype=ref.dtype))
    got = example.PROGRAM.vjp(dy, **inputs)
    for name in _arrays(inputs):
        np.testing.assert_allclose(got[name], tensors[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    # The program itself runs on torch tensors and is differentiable by autograd.
    again = {n: torch.tensor(v, requires_grad=True) if isinstance(v, np.ndarray) else v
             for n, v in inputs.items()}
    y = example.PROGRAM(**again)
    y.backward(torch.as_tensor(dy, dtype=y.dtype))
    for name in _arrays(inputs):
        np.testing.assert_allclose(again[name].grad.numpy(), got[name], rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_example_matches_jax_vjp(example):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    inputs, out, dy = _case(example)
    names = _arrays(inputs)
    with jax.enable_x64(True):
        def f(*arrays):
            return example.reference(jnp, **dict(inputs, **dict(zip(names, arrays))))
        _, pullback = jax.vjp(f, *[jnp.asarray(inputs[n]) for n in names])
        want = pullback(jnp.asarray(dy))
    got = example.PROGRAM.vjp(dy, **inputs)
    for name, w in zip(names, want):
        np.testing.assert_allclose(got[name], np.asarray(w), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
