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
