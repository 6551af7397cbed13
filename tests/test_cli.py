"""The `einvjp` command line."""

import io
import subprocess
import sys

from einvjp.cli import main


def run(*argv):
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_demo_derives_the_layer_norm_and_checks_it():
    code, text = run("demo")
    assert code == 0
    assert "∂l/∂gamma[p] = ∂l/∂y[b,p] mu[b,p] / s[b]" in text
    assert "FAILED" not in text and "max |einvjp - by hand| for ∂l/∂x" in text


def test_derive_prints_steps_and_formats():
    code, text = run("derive", "ik,kj->ij", "--wrt", "0", "--names", "x,a")
    assert code == 0 and "=> ∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]" in text
    assert run("derive", "ik,kj->ij", "--format", "einsum")[1].split() == ["ij,kj->ik", "ij,ik->kj"]
    assert r"\frac{\partial l}" in run("derive", "ii->i", "--format", "latex")[1]


def test_check_reports_a_small_error():
    code, text = run("check", "ab,bc->aaca")
    assert code == 0 and "max error" in text
    code, text = run("check", "i->ij", "--size", "j=3")
    assert code == 0


def test_bad_equation_is_a_clear_error_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "einvjp.cli", "check", "ij,jk", "--shapes", "3x4,5x6"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "size of label 'j'" in proc.stderr and "^" in proc.stderr
    assert "Traceback" not in proc.stderr


ROOT = __import__("os").path.dirname(__import__("os").path.dirname(__file__))


def cli(*argv):
    """`python -m einvjp.cli argv` on this checkout's einvjp, writing each line
    as it is printed."""
    import os
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "einvjp.cli", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_malformed_shapes_and_sizes_are_usage_errors():
    for argv, says in ((["--shapes", "axb"], "argument --shapes: 'axb'"),
                       (["--shapes", "3x,4"], "argument --shapes"),
                       (["--size", "j=x"], "argument --size: 'j=x'"),
                       (["--size", "j"], "argument --size")):
        proc = cli("check", "ij,jk", *argv)
        out, err = proc.communicate()
        assert proc.returncode == 2 and says in err and "usage: einvjp check" in err
        assert "Traceback" not in err


def test_demo_into_a_closed_pipe_prints_no_traceback():
    """`einvjp demo | head -1`: the reader leaves after one line."""
    proc = cli("demo")
    assert proc.stdout.readline().startswith("einvjp demo")
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait()
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""
    assert proc.returncode in (0, 1)  # 1 when a write met the closed pipe, as it does here


def test_check_takes_shapes_and_sizes():
    code, text = run("check", "i->ij", "--shapes", "3", "--size", "j=4")
    assert code == 0 and "shapes [(3,)]" in text
    code, text = run("check", "i,->i", "--shapes", "3,-")
    assert code == 0 and "shapes [(3,), ()]" in text


def test_emit_writes_a_standalone_module_to_stdout(tmp_path):
    program = tmp_path / "bilinear.ein"
    program.write_text("y[b] = x[b,i] a[i,j] z[b,j] + c")
    proc = cli("emit", str(program), "--shape", "x=2x3", "--shape", "a=3x4", "--shape", "z=2x4",
               "--number", "c=0.5")
    out, err = proc.communicate()
    assert proc.returncode == 0 and err == ""
    assert "def vjp(cotangent, x, a, z):" in out and "c = 0.5 is written into the code" in out
    namespace = {}
    exec(compile(out, "bilinear.py", "exec"), namespace)  # noqa: S102 - the emitted module
    import numpy as np
    x, a, z = np.ones((2, 3)), np.ones((3, 4)), np.ones((2, 4))
    assert namespace["forward"](x, a, z).tolist() == [12.5, 12.5]
    assert [g.shape for g in namespace["vjp"](np.ones(2), x, a, z)] == [(2, 3), (3, 4), (2, 4)]


def test_emit_usage_errors():
    for argv, says in ((["--shape", "x=3xb"], "argument --shape: 'x=3xb'"),
                       (["--number", "c=half"], "argument --number: 'c=half'"),
                       (["--backend", "cupy"], "argument --backend: invalid choice")):
        proc = cli("emit", "p.ein", *argv)
        out, err = proc.communicate()
        assert proc.returncode == 2 and says in err and "usage: einvjp emit" in err
