"""The scope rule: where each dummy label of a term is summed.

- `Scopes`: over the smallest product (two or more factors) holding all of a
  label's occurrences, or the whole term; the labels a call reduces are its own
"""

from __future__ import annotations

from .syntax import Call, Delta, One, Prod, Ref, call_args, children, labels_of, walk
from . import prims


class Scopes:
    """Where each dummy label of one top-level term is summed: over the
    smallest product (two or more factors) holding all its occurrences, or
    the term itself; see the module docstring.

    `summed[id(node)]` are the label names summed at a product (or the term);
    `labels[id(call)]` the labels a non-elementwise call acts on (reduced,
    normalised over, or its rows and columns).  A call *binds* the labels it
    reduces or consumes (reductions, det, logdet, solve's rows): their
    occurrences inside it are its own.  The labels it keeps (softmax's, inv's,
    solve's columns) count, outside, as occurring at the call."""

    def __init__(self, binder, term, free):
        self.binder, self.term, self.free = binder, term, set(free)
        self.labels, self.binds, self.keeps = {}, {}, {}
        self.label_names = binder.prog.label_names
        self._explicit(term)
        self._implicit(term, set())
        self._defaults(term, self._analyse())
        self.summed = {}
        for lab, node in self._analyse().items():
            self.summed.setdefault(node, []).append(lab)

    def _fn(self, e):
        fn = prims.FUNCTIONS.get(e.name) if isinstance(e, Call) else None
        return None if fn is None or fn.kind == "elementwise" else fn

    def _set(self, e, fn, names):
        names = list(names)
        self.labels[id(e)] = names
        if fn.kind == "reduce" or fn.name in ("det", "logdet"):
            self.binds[id(e)], self.keeps[id(e)] = names, []
        elif fn.kind == "solve":
            self.binds[id(e)], self.keeps[id(e)] = names[:1], names[1:]
        else:
            self.binds[id(e)], self.keeps[id(e)] = [], names

    def _explicit(self, e):
        fn = self._fn(e)
        if fn is not None:
            args, labs = call_args(e, fn, self.label_names)
            arg_labels = labels_of(args[0]) if args else []
            for k, lab in enumerate(labs):
                if lab.name not in arg_labels:
                    raise self.binder.error(f"label {lab.name!r} is not a label of "
                                            f"{e.name}'s argument", lab.col)
                if lab.name in [other.name for other in labs[:k]]:
                    raise self.binder.error(f"label {lab.name!r} is given to {e.name} twice",
                                            lab.col)
            if labs:
                self._set(e, fn, [lab.name for lab in labs])
        for c in children(e):
            self._explicit(c)

    def _count(self, e, shadow, skip, out):
        """Occurrences of each label outside the subtree `skip`."""
        if e is skip:
            return
        if isinstance(e, (Ref, One, Delta)):
            for lab, _ in e.labels:
                if lab not in shadow:
                    out[lab] = out.get(lab, 0) + 1
            return
        inner = shadow | set(self.binds.get(id(e), ()))
        for c in children(e):
            self._count(c, inner, skip, out)

    def _implicit(self, e, shadow):
        """A reduction without labels reduces those of its argument that
        occur nowhere else in the term and are not on the left."""
        fn = self._fn(e)
        if fn is not None and fn.kind == "reduce" and id(e) not in self.labels:
            args, _ = call_args(e, fn, self.label_names)
            outside = {}
            self._count(self.term, set(), e, outside)
            self._set(e, fn, [lab for lab in (self._own(args[0]) if args else [])
                              if lab not in self.free and lab not in shadow
                              and not outside.get(lab)])
        inner = shadow | set(self.binds.get(id(e), ())) | set(self.keeps.get(id(e), ()))
        for c in children(e):
            self._implicit(c, inner)

    def _analyse(self):
        """label -> id of the product (or term) where it is summed."""
        occ = {}
        self._occurrences(self.term, (id(self.term),), set(), occ)
        scope = {}
        for lab, paths in occ.items():
            if lab in self.free:
                continue
            common = paths[0]
            for p in paths[1:]:
                n = 0
                while n < min(len(common), len(p)) and common[n] == p[n]:
                    n += 1
                common = common[:n]
            scope[lab] = common[-1]
        return scope

    def _occurrences(self, e, path, shadow, occ):
        if isinstance(e, Prod) and path[-1] != id(e):
            path = path + (id(e),)
        if isinstance(e, (Ref, One, Delta)):
            for lab, _ in e.labels:
                if lab not in shadow:
                    occ.setdefault(lab, []).append(path)
            return
        mine = set(self.binds.get(id(e), ())) | set(self.keeps.get(id(e), ()))
        for c in children(e):
            self._occurrences(c, path, shadow | mine, occ)
        for lab in self.keeps.get(id(e), ()):
            if lab not in shadow:
                occ.setdefault(lab, []).append(path)

    def _own(self, e):
        """The labels of `e` in order of first appearance, but for those a
        call inside it binds."""
        occ = {}
        self._occurrences(e, (id(e),), set(), occ)
        return list(occ)

    def _defaults(self, e, scope):
        """Calls that act on labels without naming them: softmax on the last
        label of its argument, matrix functions on the last two (labels
        summed inside the argument do not count)."""
        fn = self._fn(e)
        if fn is not None and fn.kind != "reduce" and id(e) not in self.labels:
            args, _ = call_args(e, fn, self.label_names)
            if args:
                inside = {id(n) for n in walk(args[0]) if isinstance(n, Prod)}
                own = [lab for lab in self._own(args[0]) if scope.get(lab) not in inside]
                self._set(e, fn, own[-1:] if fn.kind == "normalize" else own[-2:])
        for c in children(e):
            self._defaults(c, scope)
