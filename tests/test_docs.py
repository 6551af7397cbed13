"""Docstring examples are tests, and the README's quick start is what CI runs."""

import doctest
import functools
import importlib
import pathlib
import pkgutil
import re

import numpy as np
import pytest

import einvjp

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = {"einvjp.backends.torch": "torch", "einvjp.backends.jax": "jax",
            "einvjp.backends._jax_slices": "jax",
            "einvjp.testing": "hypothesis"}


def _modules():
    names = [f"einvjp.{m.name}" for m in pkgutil.iter_modules(einvjp.__path__)]
    names += [f"einvjp.backends.{p.stem}" for p in sorted((ROOT / "backends").glob("*.py"))
              if p.stem != "__init__"]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    needs = OPTIONAL.get(name, "hypothesis" if name.startswith("einvjp.testing_") else None)
    if needs:
        pytest.importorskip(needs)
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


def _doc_blocks():
    """(name, source) of every ```python block of docs/*.md, named by the file
    and the heading above it."""
    blocks, seen = [], set()
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text()
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            heading = re.findall(r"^#+ (.*)$", text[:m.start()], re.M)[-1]
            name = f"{path.name}: {heading}"
            while name in seen:
                name += " (next)"
            seen.add(name)
            blocks.append(pytest.param(name, m.group(1), id=name))
    return blocks


@pytest.mark.parametrize("name, source", _doc_blocks())
def test_docs_examples(name, source):
    """Each ```python block of docs/*.md runs on its own; a block of >>> lines
    is a doctest, with `einvjp` and `np` imported."""
    if source.lstrip().startswith(">>>"):
        parser = doctest.DocTestParser()
        test = parser.get_doctest(source, {"einvjp": einvjp, "np": np}, name, None, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0
    else:
        exec(compile(source, name, "exec"), {"__name__": "docs_example"})


def test_docs_are_linked_from_the_readme_and_compile():
    readme = (ROOT / "README.md").read_text()
    for name in ("docs/language.md", "docs/notation.md"):
        assert (ROOT / name).exists() and f"]({name})" in readme
    assert "docs/language.md" in einvjp.compile.__doc__


def test_user_facing_text_speaks_of_einvjp_alone():
    """README, docs, docstrings, examples and the demo refer to no document a
    user does not have."""
    import io

    from einvjp.cli import main
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "einvjp").glob("*.py")), *sorted((ROOT / "backends").glob("*.py")),
             *sorted((ROOT / "examples").glob("*.py"))]
    pattern = re.compile(r"\bthe seed\b|\bseed's|\bDESIGN\b|\bthe lesson\b", re.I)
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in paths
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    out = io.StringIO()
    assert main(["demo"], out=out) == 0
    found += [f"demo: {line}" for line in out.getvalue().splitlines() if pattern.search(line)]
    assert not found, "\n".join(found)


MODEL_SECTION = ("A layer", "Under `torch.compile`", "Under `jax.jit`")


def test_readme_model_section_runs(monkeypatch):
    """The ```python blocks of the README's "Using einvjp in a model" (its
    subsections above), run in order in one namespace: a module, its
    training under torch.compile(fullgraph=True), jax.grad under jax.jit.
    torch.compile with aot_eager (tracing forward and backward as Inductor
    would get them; tests/test_torch_compile.py runs Inductor itself)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Using einvjp in a model\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    parts = re.split(r"^### (.*)\n", section, flags=re.M)
    blocks = dict(zip(parts[1::2], parts[2::2]))
    assert set(MODEL_SECTION) <= set(blocks)
    namespace = {}
    for name in MODEL_SECTION:
        codes = re.findall(r"^```python\n(.*?)^```", blocks[name], re.S | re.M)
        assert codes, name
        for code in codes:
            exec(compile(code, f"README.md: {name}", "exec"), namespace)  # noqa: S102
