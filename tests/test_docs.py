"""Docstring examples are tests, and the README's quick start is what CI runs."""

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import einvjp

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = {"einvjp.backends.torch": "torch", "einvjp.backends.jax": "jax",
            "einvjp.testing": "hypothesis"}


def _modules():
    names = [f"einvjp.{m.name}" for m in pkgutil.iter_modules(einvjp.__path__)]
    names += [f"einvjp.backends.{p.stem}" for p in sorted((ROOT / "backends").glob("*.py"))
              if p.stem != "__init__"]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def _quick_start():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n.*?```(?:sh|bash)?\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_has_two_commands_and_ci_runs_the_second():
    commands = _quick_start()
    assert len(commands) == 2
    assert "einvjp demo" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
    assert "torch==2.13.0" in commands[1]


def test_readme_examples():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False)
    assert result.failed == 0
