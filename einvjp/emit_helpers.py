"""Functions copied into an emitted module, with everything they read.

* `Helpers(namespaces)`: `ref(obj, hint)` is source naming `obj` in the
  module being written: a library function by its public name
  (`torch.exp`), a module by an import, a number by its value, and a
  Python function (a backend's kernel, a closure or a lambda) by a copy of
  its source — renamed `_hint`, its free names resolved the same way (a
  list it reads, a cache filled on first use, starts empty);
  `imports()` and `definitions()` are what the module then needs.

An einvjp object other than a function or an exception class cannot be
copied: the emitted module imports no einvjp.

>>> import math
>>> h = Helpers([("math", math, "import math")])
>>> h.ref(math.sqrt, "sqrt"), h.ref(float("inf"), "c"), h.ref((1, 2.5), "p")
('math.sqrt', 'float("inf")', '(1, 2.5)')
>>> h.imports()
['import math']
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import textwrap
import types

from .errors import EinvjpError

_NAMED = {"numpy": "np", "jax.numpy": "jnp", "torch.nn.functional": "F"}
_PLAIN = (int, float, complex, bool, str, type(None))


class EmitError(EinvjpError):
    """What einvjp cannot write as standalone source."""


class Helpers:
    """What an emitted module defines and imports, gathered as it is written.
    `namespaces`: (source text, module, import statement) triples in which a
    library function is looked up by identity (`torch.special.erf`'s own
    name is `special_erf`)."""

    def __init__(self, namespaces):
        self.namespaces = namespaces
        self._index = {}  # source text of a namespace -> {id(value): name}
        self.names = {}  # id(object) -> its source in the module
        self._imports = {}  # import statement -> the name it binds
        self.blocks = []  # the definitions, each before its first reader
        self._keep = []  # the objects named (their ids stay theirs)

    def imports(self):
        return list(self._imports)

    def definitions(self):
        return "\n\n\n".join(self.blocks)

    def taken(self):
        """The module-level names: a local variable must not shadow them."""
        return set(self._imports.values()) | {s for s in self.names.values()
                                               if s.isidentifier()}

    def need(self, statement):
        """An import the module needs."""
        words = statement.split()
        self._imports.setdefault(statement, words[-1] if "as" in words else
                                 words[1].split(".")[0])

    def module(self, mod):
        """Source naming a module, imported under its usual alias."""
        name = mod.__name__
        alias = _NAMED.get(name)
        self.need(f"import {name} as {alias}" if alias else f"import {name}")
        return alias or name

    def library(self, obj):
        """The public name of a library function, else None."""
        for text, ns, statement in self.namespaces:
            index = self._index.get(text)
            if index is None:
                index = self._index[text] = {}
                for k, v in vars(ns).items():
                    if not k.startswith("_"):
                        index.setdefault(id(v), k)
            name = index.get(id(obj))
            if name is not None:
                self.need(statement)
                return f"{text}.{name}"
        return None

    def ref(self, obj, hint):
        """Source for `obj` in the module (see the module docstring)."""
        if isinstance(obj, _PLAIN) and not isinstance(obj, float) or \
                type(obj) is float and obj == obj and abs(obj) != float("inf"):
            return repr(obj)
        if isinstance(obj, float):
            return f'float("{obj}")'
        if id(obj) in self.names:
            return self.names[id(obj)]
        if isinstance(obj, tuple):
            items = [self.ref(v, hint) for v in obj]
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if isinstance(obj, list):  # a cache a function fills on first use: it starts empty
            name = self._name(obj, hint)
            self.blocks.append(f"{name} = []")
            return name
        if isinstance(obj, types.ModuleType):
            return self.module(obj)
        found = self.library(obj)
        if found is not None:
            return found
        if getattr(obj, "__module__", "") == "builtins" and hasattr(builtins, obj.__name__):
            return obj.__name__
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, types.FunctionType):
            return self._copy(obj, hint)
        if isinstance(obj, type) and issubclass(obj, Exception):
            return self._exception(obj)
        module = getattr(obj, "__module__", None) or ""
        if module and not module.startswith(("einvjp", "opt_einsum")) and \
                hasattr(obj, "__qualname__"):
            self.need(f"import {module}")
            return f"{module}.{obj.__qualname__}"
        raise EmitError(f"cannot write {obj!r} (read as {hint!r}) into standalone source")

    def _name(self, obj, hint):
        name = f"_{hint.lstrip('_')}"
        while name in set(self.names.values()):
            name += "_"
        self.names[id(obj)] = name
        self._keep.append(obj)
        return name

    def _exception(self, cls):
        base = next(c for c in cls.__mro__ if c.__module__ == "builtins")
        name = self._name(cls, cls.__name__)
        self.blocks.append(f"class {name}({base.__name__}):\n"
                           f"    \"\"\"{(cls.__doc__ or '').strip().splitlines()[0]}\"\"\"")
        return name

    def _copy(self, fn, hint):
        """A function's source, its free names replaced by their source."""
        name = self._name(fn, fn.__name__ if fn.__name__ != "<lambda>" else hint)
        tree = _function_tree(fn)
        tree.name, tree.decorator_list = name, []
        cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in
                                                     fn.__closure__ or ())))
        mapping = {}
        for free in sorted(_free_names(tree)):
            if free in cells:
                value = cells[free]
            elif free in fn.__globals__:
                value = fn.__globals__[free]
            elif hasattr(builtins, free):
                continue
            else:
                raise EmitError(f"{fn.__qualname__} reads {free!r}, which is not defined")
            mapping[free] = self.ref(value, free)
        tree = _Rename(mapping).visit(tree)
        ast.fix_missing_locations(tree)
        self.blocks.append(ast.unparse(tree))
        return name


def _function_tree(fn):
    """The ast of a function (a lambda as a `def` returning its body)."""
    if fn.__name__ != "<lambda>":
        return ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    lam = copy.deepcopy(_lambda_node(fn))  # the file's tree is shared: renaming must not touch it
    return ast.FunctionDef(name=fn.__name__, args=lam.args, body=[ast.Return(lam.body)],
                           decorator_list=[], returns=None, type_params=[])


_TREES = {}  # source file -> its ast


def _lambda_node(fn):
    """The ast of a lambda, told apart from others on its line by the
    positions of its code."""
    path = inspect.getsourcefile(fn)
    tree = _TREES.get(path)
    if tree is None:
        with open(path, encoding="utf-8") as f:
            tree = _TREES[path] = ast.parse(f.read())
    line = fn.__code__.co_firstlineno
    spots = [(p[0], p[2]) for p in fn.__code__.co_positions() if p[0] is not None and p[2]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda) and node.lineno == line:
            body = node.body
            inside = all((body.lineno, body.col_offset) <= s <= (body.end_lineno,
                                                                 body.end_col_offset)
                         for s in spots)
            if inside:
                return node
    raise EmitError(f"the source of {fn!r} was not found")


def _free_names(tree):
    """The names a function reads that it does not bind itself."""
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)) and node is not tree:
            if isinstance(node, ast.FunctionDef):
                bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return read - bound


class _Rename(ast.NodeTransformer):
    """Names replaced by source expressions."""

    def __init__(self, mapping):
        self.mapping = {k: v for k, v in mapping.items() if v != k}

    def visit_Name(self, node):
        text = self.mapping.get(node.id)
        if text is None or not isinstance(node.ctx, ast.Load):
            return node
        new = copy.deepcopy(ast.parse(text, mode="eval").body)
        return ast.copy_location(new, node)
