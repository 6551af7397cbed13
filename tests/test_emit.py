"""Emitted source (`Program.source`, `einvjp emit`): each module is run in a
Python where einvjp and opt_einsum cannot be imported (JAX imports
opt_einsum itself: for it, only einvjp), and its forward and
gradients are compared in float64 with JAX autodiff of a reference written
by hand (with torch's gradcheck on the autograd.Function); random programs
against einvjp itself."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp.cli import LAYER_NORM, main
from einvjp.emit_helpers import EmitError
from einvjp.testing import programs

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import logsumexp  # noqa: E402

LIBRARIES = ("numpy", "torch", "jax")

# Run as `python -I runner.py DIR LIBRARY CASE...`: the emitted modules in DIR,
# einvjp and opt_einsum blocked, results written to DIR/CASE.out.npz.
RUNNER = '''
import importlib, json, sys
import numpy as np


class Blocked:
    names = {"einvjp", "cotengra"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is not importable here")


sys.meta_path.insert(0, Blocked())
folder, library, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, folder)
try:
    import einvjp  # noqa: F401
    report = {"einvjp importable": True}
except ImportError:
    report = {"einvjp importable": False}
if library == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
if library == "torch":
    import torch
Blocked.names.add("opt_einsum")  # after the library: JAX imports it itself
for case in cases:
    data = np.load(f"{folder}/{case}.in.npz")
    meta = json.loads(str(data["meta"]))
    arrays = [data[n] for n in meta["inputs"]]
    cts = [data[f"ct{k}"] for k in range(meta["outputs"])]
    module = importlib.import_module(f"{case}_{library}")
    out = {}
    if library == "numpy":
        ys = module.forward(*arrays)
        grads = module.vjp(cts[0] if len(cts) == 1 else tuple(cts), *arrays)
    elif library == "jax":
        f = getattr(module, case)
        ys, pullback = jax.vjp(f, *[jnp.asarray(a) for a in arrays])
        grads = pullback(jnp.asarray(cts[0]) if len(cts) == 1 else
                         tuple(jnp.asarray(c) for c in cts))
    else:
        f = getattr(module, case)
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        ys = f(*ts)
        outs = list(ys) if isinstance(ys, tuple) else [ys]
        torch.autograd.backward(outs, [torch.tensor(c) for c in cts])
        grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in ts]
        ys = tuple(y.detach() for y in outs) if isinstance(ys, tuple) else ys.detach()
        report[case + " gradcheck"] = bool(torch.autograd.gradcheck(f, ts))
        # only the last input asks for a gradient: backward computes that one
        last = [torch.tensor(a, requires_grad=k == len(ts) - 1) for k, a in enumerate(arrays)]
        outs = f(*last)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        torch.autograd.backward(outs, [torch.tensor(c) for c in cts])
        out["last"] = (torch.zeros_like(last[-1]) if last[-1].grad is None
                       else last[-1].grad).numpy()
    ys = ys if isinstance(ys, tuple) else (ys,)
    out.update({f"y{k}": np.asarray(y) for k, y in enumerate(ys)})
    out.update({f"g{k}": np.asarray(g) for k, g in enumerate(grads)})
    np.savez(f"{folder}/{case}.out.npz", **out)
report["einvjp loaded"] = any(m.split(".")[0] == "einvjp" for m in sys.modules)
print(json.dumps(report))
'''


def run_isolated(folder, library, cases):
    """Runs the emitted modules of `cases` in `python -I` with einvjp blocked:
    (the report, {case: results})."""
    (folder / "runner.py").write_text(RUNNER)
    proc = subprocess.run([sys.executable, "-I", str(folder / "runner.py"), str(folder),
                           library, *cases], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, {c: dict(np.load(folder / f"{c}.out.npz")) for c in cases}


def write_case(folder, case, library, text, inputs, cts):
    """Writes the emitted module and its inputs; returns the module's source."""
    prog = einvjp.compile(text)
    values = {n: (v if isinstance(v, float) else v.shape) for n, v in inputs.items()}
    source = prog.source(library, name=case, **values)
    (folder / f"{case}_{library}.py").write_text(source)
    arrays = [n for n in prog.input_names if not isinstance(inputs[n], float)]
    meta = json.dumps({"inputs": arrays, "outputs": len(cts)})
    np.savez(folder / f"{case}.in.npz", meta=meta, **{n: inputs[n] for n in arrays},
             **{f"ct{k}": c for k, c in enumerate(cts)})
    return source


_R = np.random.default_rng(3)


def _layer_norm(x, eps, gamma, beta):
    mu = x - x.mean(1, keepdims=True)
    return mu / jnp.sqrt((mu ** 2).mean(1, keepdims=True) + eps) * gamma + beta


CASES = {
    "layer_norm": (LAYER_NORM, _layer_norm,
                   {"x": _R.normal(size=(5, 8)), "eps": 1e-5, "gamma": _R.normal(size=8),
                    "beta": _R.normal(size=8)}),
    "cross_entropy": ("L = (logsumexp(z[b,c], c) - t[b,c] z[b,c]) / B",
                      lambda z, t: jnp.mean(logsumexp(z, axis=1) - jnp.sum(t * z, axis=1)),
                      {"z": _R.normal(size=(4, 7)), "t": _R.uniform(size=(4, 7))}),
    "matmul_chain": ("y[i,l] = a[i,j] b[j,k] c[k,l]", lambda a, b, c: a @ b @ c,
                     {"a": _R.normal(size=(2, 9)), "b": _R.normal(size=(9, 8)),
                      "c": _R.normal(size=(8, 3))}),
    "two_outputs": ("p[b,c] = softmax(z[b,c] w[c], c)\nn[b] = z[b,c]^2 / C\nreturn p, n",
                    lambda z, w: (jax.nn.softmax(z * w, axis=1), jnp.mean(z ** 2, axis=1)),
                    {"z": _R.normal(size=(3, 5)), "w": _R.normal(size=5)}),
    "diagonals": ("y[i,j] = x[i,i] w[j] + delta[i,j] u[i] exp(x[i,j])",
                  lambda x, w, u: jnp.diag(x)[:, None] * w + jnp.diag(u * jnp.exp(jnp.diag(x))),
                  {"x": _R.normal(size=(4, 4)), "w": _R.normal(size=4), "u": _R.normal(size=4)}),
}


def _reference(case):
    """(outputs, cotangents, gradients in input order) by JAX autodiff, float64."""
    _, f, inputs = CASES[case]
    arrays = [n for n, v in inputs.items() if not isinstance(v, float)]
    with jax.enable_x64(True):
        def g(*a):
            return f(**{**inputs, **dict(zip(arrays, a))})
        ys, pullback = jax.vjp(g, *[jnp.asarray(inputs[n]) for n in arrays])
        ys = ys if isinstance(ys, tuple) else (ys,)
        cts = [np.random.default_rng(k).normal(size=np.shape(y)) for k, y in enumerate(ys)]
        grads = pullback(tuple(jnp.asarray(c) for c in cts) if len(cts) > 1 else
                         jnp.asarray(cts[0]))
    return [np.asarray(y) for y in ys], cts, [np.asarray(g) for g in grads]


@pytest.fixture(scope="module", params=LIBRARIES)
def emitted(request, tmp_path_factory):
    """(library, report, {case: (results, reference, source)}) for every case."""
    library = request.param
    folder = tmp_path_factory.mktemp(f"emit_{library}")
    refs, sources = {}, {}
    for case, (text, _, inputs) in CASES.items():
        refs[case] = _reference(case)
        sources[case] = write_case(folder, case, library, text, inputs, refs[case][1])
    report, results = run_isolated(folder, library, list(CASES))
    return library, report, {c: (results[c], refs[c], sources[c]) for c in CASES}


def test_the_modules_run_without_einvjp(emitted):
    library, report, found = emitted
    assert report == {**report, "einvjp importable": False, "einvjp loaded": False}
    for case, (_, _, source) in found.items():
        imports = [line for line in source.splitlines() if line.startswith(("import", "from"))]
        assert all("einvjp" not in line and "opt_einsum" not in line for line in imports)
        assert {line.split()[1].split(".")[0] for line in imports} <= {
            "numpy": {"numpy", "math"}, "torch": {"torch", "math"},
            "jax": {"jax", "math"}}[library], (case, imports)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_gradients_agree_with_jax_autodiff(emitted, case):
    library, report, found = emitted
    results, (ys, _, grads), _ = found[case]
    for k, y in enumerate(ys):
        np.testing.assert_allclose(results[f"y{k}"], y, rtol=1e-10, atol=1e-12)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(results[f"g{k}"], g, rtol=1e-9, atol=1e-12, err_msg=str(k))
    if library == "torch":
        assert report[f"{case} gradcheck"]
        np.testing.assert_allclose(results["last"], grads[-1], rtol=1e-9, atol=1e-12)


def test_torch_backward_computes_only_the_gradients_asked_for():
    prog = einvjp.compile(LAYER_NORM)
    source = prog.source("torch", x=(4, 6), eps=1e-5, gamma=(6,), beta=(6,), name="layer_norm")
    assert "class LayerNorm(torch.autograd.Function):" in source
    assert "ctx.save_for_backward(gamma, mu, inv_s)" in source
    assert "if ctx.needs_input_grad[2]:\n            grad_beta = grad_y.sum(0)" in source
    assert "# mu[b,h] = x[b,h] - m[b]" in source and "1e-05" in source
    namespace = {}
    exec(source, namespace)  # noqa: S102 - the module under test
    x = torch.randn(4, 6, dtype=torch.float64)
    gamma = torch.randn(6, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(6, dtype=torch.float64)
    namespace["layer_norm"](x, gamma, beta).sum().backward()
    assert gamma.grad is not None and x.grad is None


def test_readme_shows_the_emitted_layer_norm():
    """The README's excerpt is the emitted source, line for line."""
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("### Emitted source", 1)[1].split("```python\n", 1)[1].split("```")[0]
    prog = einvjp.compile(LAYER_NORM)
    source = prog.source("torch", x=(64, 1024), eps=1e-5, gamma=(1024,), beta=(1024,),
                         name="layer_norm")
    lines = source.splitlines()
    shown = [line for line in block.splitlines() if line.strip() != "..."]
    assert len(shown) > 20 and all(line in lines for line in shown)


def _random_cases(folder, library, drawn):
    """Writes the emitted modules of drawn programs whose outputs are finite:
    {case: (einvjp's outputs, its gradients in input order)}."""
    expected = {}
    for k, rp in enumerate(drawn):
        values = rp.values(k)
        prog = einvjp.compile(rp.text, sizes=rp.sizes)
        ys = prog(**values)
        ys = ys if isinstance(ys, tuple) else (ys,)
        if not all(np.all(np.isfinite(y)) for y in ys):
            continue
        cts = [np.random.default_rng(k).normal(size=np.shape(y)) for y in ys]
        want = prog.vjp(cts[0] if len(cts) == 1 else tuple(cts), **values)
        arrays = [n for n in prog.input_names if not isinstance(values[n], float)]
        case = f"random{k}"
        source = prog.source(library, name=case, **{
            n: (values[n] if isinstance(values[n], float) else values[n].shape)
            for n in prog.input_names})
        (folder / f"{case}_{library}.py").write_text(source)
        np.savez(folder / f"{case}.in.npz", meta=json.dumps({"inputs": arrays,
                                                             "outputs": len(cts)}),
                 **{n: values[n] for n in arrays}, **{f"ct{j}": c for j, c in enumerate(cts)})
        expected[case] = (ys, [want[n] for n in arrays], source)
    return expected


def _check_random(folder, library, drawn):
    expected = _random_cases(folder, library, drawn)
    if not expected:
        return
    report, results = run_isolated(folder, library, list(expected))
    assert not report["einvjp importable"] and not report["einvjp loaded"]
    for case, (ys, grads, source) in expected.items():
        got = results[case]
        for k, y in enumerate(ys):
            np.testing.assert_allclose(got[f"y{k}"], y, rtol=1e-10, atol=1e-12, err_msg=source)
        for k, g in enumerate(grads):
            np.testing.assert_allclose(got[f"g{k}"], g, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{k}\n{source}")
        if library == "torch":
            assert report[f"{case} gradcheck"], source


_RANDOM = settings(deadline=None, derandomize=True, database=None,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=list(HealthCheck))


@settings(_RANDOM, max_examples=8)
@given(rp=programs(max_statements=4))
def test_random_programs_emitted_for_numpy_agree_with_einvjp(rp, tmp_path_factory):
    _check_random(tmp_path_factory.mktemp("emit_random"), "numpy", [rp])


@pytest.mark.parametrize("library", ["torch", "jax"])
@settings(_RANDOM, max_examples=1)
@given(drawn=st.lists(programs(max_statements=4), min_size=4, max_size=4))
def test_random_programs_emitted_for_torch_and_jax_agree_with_einvjp(library, drawn,
                                                                      tmp_path_factory):
    _check_random(tmp_path_factory.mktemp(f"emit_random_{library}"), library, drawn)


def test_cli_emit_writes_a_module(tmp_path):
    program = tmp_path / "layer_norm.ein"
    program.write_text(LAYER_NORM)
    out = tmp_path / "layer_norm_torch.py"
    code = main(["emit", str(program), "--backend", "torch", "--shape", "x=4x6",
                 "--shape", "gamma=6", "--shape", "beta=6", "--number", "eps=1e-5",
                 "-o", str(out)], out=open(tmp_path / "log", "w"))
    assert code == 0
    source = out.read_text()
    assert "def layer_norm(x, gamma, beta):" in source and "import einvjp" not in source
    import io
    printed = io.StringIO()
    assert main(["emit", str(program), "--shape", "x=4x6", "--shape", "gamma=6", "--shape",
                 "beta=6", "--number", "eps=1e-5", "--name", "ln"], out=printed) == 0
    assert "def forward(x, gamma, beta):" in printed.getvalue()


def test_cli_emit_errors_name_the_input(tmp_path, capsys):
    program = tmp_path / "p.ein"
    program.write_text("y[i] = x[i,j] w[j]")
    assert main(["emit", str(program), "--shape", "x=2x3"]) == 2
    assert "missing input(s) w" in capsys.readouterr().err
    assert main(["emit", str(tmp_path / "absent.ein")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["emit", str(program), "--shape", "x=2xa"])
    with pytest.raises(SystemExit):
        main(["emit", str(program), "--number", "eps=one"])


def test_source_errors():
    prog = einvjp.compile("y[i] = x[i,j] w[j]")
    with pytest.raises(EmitError, match="choose one of numpy, torch, jax"):
        prog.source("cupy", x=(2, 3), w=(3,))
    with pytest.raises(EmitError, match="'class' is not a Python name"):
        prog.source("numpy", x=(2, 3), w=(3,), name="class")
    with pytest.raises(EmitError, match="give each input as a shape"):
        prog.source("numpy", x="2x3", w=(3,))
    text = prog.source("numpy", np.ones((2, 3)), np.ones(3))  # example arrays, positional
    assert "def vjp(cotangent, x, w):" in textwrap.dedent(text)


def test_long_lines_split_into_named_parts_as_written():
    import ast
    from einvjp.emit_code import split
    names = iter(["t1", "t2", "t3"])
    line = "grad_σ = torch.addcmul((σ * mu) @ w2.mT, g2(a), (" + " * ".join(["long_name"] * 9) + "))"
    lines = split(line, lambda: next(names), width=60)
    assert lines[-1].startswith("del ") and all(len(x) <= 60 for x in lines[:-1])
    assert "(σ * mu) @ w2.mT" in "\n".join(lines)  # the parentheses as written
    for x in lines:
        ast.parse(x)
