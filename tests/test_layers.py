"""The compiler's imports run one way (docs/architecture.md): no cycle among
einvjp's modules and backends, counting imports inside functions; an import
inside a function only of an optional array library."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFERRED = ("torch", "jax", "jaxlib", "scipy")  # optional libraries, imported on first use


def _modules():
    found = {f"einvjp.{p.stem}": p for p in (ROOT / "einvjp").glob("*.py")
             if p.stem != "__init__"}
    found.update({f"einvjp.backends.{p.stem}": p for p in (ROOT / "backends").glob("*.py")
                  if p.stem != "__init__"})
    return found


def _imports(name, path):
    """(imported einvjp module, inside a function?) for each import in `path`."""
    package = name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(fn) if n is not fn)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                yield t, id(node) in inside
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in inside


def test_imports_run_one_way():
    modules = _modules()
    edges, late = {}, []
    for name, path in modules.items():
        for target, in_function in _imports(name, path):
            if in_function and not target.split(".")[0] in DEFERRED:
                late.append(f"{name} imports {target} inside a function")
            if target in modules and target != name:
                edges.setdefault(name, set()).add(target)
    assert not late, "\n".join(late)
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                cycle.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"
    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert not cycle, "import cycles:\n" + "\n".join(cycle)


def test_no_module_is_over_500_lines():
    """Files that say what they hold: a module over ~500 lines holds more than one thing."""
    long = [f"{name}: {n} lines" for name, path in sorted(_modules().items())
            if (n := len(path.read_text().splitlines())) > 500]
    assert not long, "\n".join(long)
