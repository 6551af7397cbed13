"""The differential fuzzer for programs, fast profile: random programs
(einvjp.testing.programs) written as index-notation text and as traced
Python, checked forward and for every input's gradient against jax float64
and torch autograd of an independent reference, and printed → compiled
again.  `python bench/fuzz.py --programs 5000` is the long run.  Plus the
hand-written programs whose scope and printing went wrong once."""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp.testing import check_program, programs

jax = pytest.importorskip("jax")
pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import logsumexp  # noqa: E402


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(programs(max_statements=5), st.integers(0, 2**16))
def test_random_program_agrees_with_jax_and_torch(rp, seed):
    failures = check_program(rp, seed)
    assume(failures is not None)  # the reference is not finite there
    assert not failures, f"{rp!r}\nseed={seed}\n" + "\n".join(
        f"[{check}] {msg}" for check, msg in failures)


# --- hand-written programs: (source, reference over jax.numpy, inputs) ---

def _x_over_row_sums(x):
    return x / x.sum(1, keepdims=True)


_R = np.random.default_rng(7)
_B, _C = 3, 4
_Z, _T = _R.normal(size=(_B, _C)), _R.uniform(size=(_B, _C))
_M = 0.3 * _R.uniform(-1, 1, (3, 3)) + 4 * np.eye(3)
_S = _R.uniform(-0.1, 0.1, (3, 3))
_X = _R.normal(size=(3, 2))

CASES = {
    "sum in a product": ("y = 1 (x[i] + 2 x[i])", lambda x: jnp.sum(x + 2 * x),
                         {"x": np.array([1.0, 2.0])}, 9.0),
    "sum in a power": ("y = (x[i] - 2 x[i])^2", lambda x: jnp.sum((x - 2 * x) ** 2),
                       {"x": np.array([1.0, 2.0])}, 5.0),
    "cross-entropy": ("L = (logsumexp(z[b,c], c) - t[b,c] z[b,c]) / B",
                      lambda z, t: jnp.mean(logsumexp(z, axis=1) - jnp.sum(t * z, axis=1)),
                      {"z": _Z, "t": _T}, None),
    "sum over a product": ("y = 2 (u[b] + t[b,c] z[b,c])",
                           lambda u, t, z: 2 * jnp.sum(u + jnp.sum(t * z, axis=1)),
                           {"u": _R.normal(size=_B), "t": _T, "z": _Z}, None),
    "det of a sum": ("y = det(b[i,j] - 2 c[i,j])", lambda b, c: jnp.linalg.det(b - 2 * c),
                     {"b": _M, "c": _S}, None),
    "logdet of a Gram matrix": ("y = logdet(x[i,k] x[j,k] + e[i,j])",
                                lambda x, e: jnp.linalg.slogdet(x @ x.T + e)[1],
                                {"x": _X, "e": _M}, None),
    "traced row normalisation": (_x_over_row_sums, _x_over_row_sums,
                                 {"x": _R.uniform(0.5, 2, (2, 3))}, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_written_program(name):
    source, reference, values, expected = CASES[name]
    prog = einvjp.compile(source)
    with jax.enable_x64(True):
        y, pullback = jax.vjp(lambda *a: reference(**dict(zip(values, a))),
                              *[jnp.asarray(v) for v in values.values()])
        ct = np.random.default_rng(0).normal(size=np.shape(y))
        want = dict(zip(values, (np.asarray(g) for g in pullback(jnp.asarray(ct)))))
    if expected is not None:
        assert float(y) == pytest.approx(expected)
    np.testing.assert_allclose(prog(**values), np.asarray(y), rtol=1e-10)
    got = prog.vjp(ct, **values)
    for n in values:
        np.testing.assert_allclose(got[n], want[n], rtol=1e-9, atol=1e-12, err_msg=n)
    printed = str(prog.graph(**values))
    again = einvjp.compile(printed)
    np.testing.assert_allclose(again(**{n: values[n] for n in again.input_names}), np.asarray(y),
                               rtol=1e-10, err_msg=printed)
