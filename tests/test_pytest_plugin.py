"""The pytest plugin: the `einvjp_check` fixture and `--einvjp-examples`, run in
a pytest of their own (pytester); the plugin is named with `-p`, as the entry
point that loads it by itself exists only once einvjp is installed."""

import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

pytest.importorskip("torch")
pytest_plugins = ["pytester"]
ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYER = '''
from hand_written import BatchedMatmul, Halved

CALLS = []


class Counted(BatchedMatmul):
    @staticmethod
    def forward(x, w):
        CALLS.append(x.shape)
        return x @ w


def test_right(einvjp_check):
    einvjp_check(Counted.apply, "bij,jk->bik")
    print(f"examples run: {len(CALLS)}")


def test_wrong(einvjp_check):
    einvjp_check(Halved.apply, "bij,jk->bik")
'''


def _run(pytester, monkeypatch, *args):
    # Plugins installed in this environment stay out of the inner run (one
    # of them could be this plugin, under its entry point's name).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_layer=LAYER)
    return pytester.runpytest("-p", "einvjp.pytest_plugin", "-s", *args)


def _examples(result):
    line = next(line for line in result.outlines if "examples run:" in line)
    return int(line.rsplit(":", 1)[1].split()[0])


def test_the_fixture_passes_a_right_function_and_fails_a_wrong_one(pytester, monkeypatch):
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: check_backward: the gradient of operand 1 is wrong at index (*): "
        "expected *, got *; * entries differ",
        "*equation 'bij,jk->bik'",
        "*shapes (*) -> (*)",
        "*FAILED test_layer.py::test_wrong*",
    ])
    assert 3 < _examples(result) <= 25  # the default, 25


def test_the_option_sets_the_number_of_examples(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "--einvjp-examples", "3", "-k", "right")
    result.assert_outcomes(passed=1, deselected=1)
    assert 1 <= _examples(result) <= 3
    result = _run(pytester, monkeypatch, "--einvjp-examples", "40", "-k", "right")
    assert _examples(result) > 25


def test_the_option_is_in_the_help(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest("-p", "einvjp.pytest_plugin", "--help")
    result.stdout.fnmatch_lines(["*--einvjp-examples=N*cases each einvjp_check call draws*"])


def test_pyproject_registers_the_plugin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"einvjp": "einvjp.pytest_plugin"}


def _python(code, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_plugin_imports_no_array_library():
    done = _python("import sys, einvjp.pytest_plugin as p; assert p.check_backward; "
                   "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))", ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_hypothesis_pytest_runs_and_the_fixture_says_what_to_install(tmp_path):
    (tmp_path / "test_it.py").write_text("def test_plain():\n    pass\n\n\n"
                                         "def test_check(einvjp_check):\n    pass\n")
    done = _python("import sys; sys.modules['hypothesis'] = None; import pytest; "
                   "sys.exit(pytest.main(['-p', 'einvjp.pytest_plugin', '-p', "
                   "'no:cacheprovider', 'test_it.py']))", tmp_path)
    assert "1 passed, 1 error" in done.stdout, done.stdout + done.stderr
    assert "einvjp_check needs hypothesis: pip install 'einvjp[test]'" in done.stdout
