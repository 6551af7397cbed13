"""Equation strings: parsed once into typed objects, bound to shapes once.

`parse` is the only place that reads an equation string.  It returns a
`Spec`: per operand a `Term` of letters (and at most one ellipsis), each with
the column it was written at so that errors can point at it.  `bind` turns a
spec and the operands' shapes into a `GE` over `Index` objects that carry
their sizes; after that no string is looked at again.

>>> spec = parse("ij,jk")
>>> spec.output.labels, spec.explicit
(('i', 'k'), False)
>>> ge = bind(spec, [(2, 3), (3, 4)])
>>> [(i.name, i.size) for i in ge.out]
[('i', 2), ('k', 4)]
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

from .errors import (BroadcastError, EquationSyntaxError, LabelSizeError,
                     MissingSizeError, OperandCountError, RankError, WrtError)
from .ge import GE, Index

ELLIPSIS = "..."


@dataclass(frozen=True)
class Term:
    """The labels of one operand (or of the output) as written.

    `labels` holds single letters and at most one `ELLIPSIS`; `columns[i]` is
    where `labels[i]` stands in the equation; `column` is where the term starts.
    """
    labels: tuple
    columns: tuple
    column: int

    @property
    def has_ellipsis(self) -> bool:
        return ELLIPSIS in self.labels

    @property
    def letters(self) -> tuple:
        return tuple(lab for lab in self.labels if lab != ELLIPSIS)


@dataclass(frozen=True)
class Spec:
    """A parsed equation: input terms, the output term, and the source text."""
    text: str
    inputs: tuple
    output: Term
    explicit: bool
    arrow: int  # column of "->", or len(text) in implicit mode


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Spec:
    """Parse an einsum equation (NumPy's grammar, plus the GE extensions).

    >>> parse("ii->i").inputs[0].labels
    ('i', 'i')
    >>> parse("a...a->a...").output.labels
    ('a', '...')
    >>> parse("i->ii").output.labels
    ('i', 'i')
    """
    if not isinstance(text, str):
        raise EquationSyntaxError(f"equation must be a string, not {type(text).__name__}")
    arrow = text.find("->")
    if arrow >= 0 and text.find("->", arrow + 2) >= 0:
        raise EquationSyntaxError("'->' appears twice", equation=text,
                                  position=text.find("->", arrow + 2))
    explicit = arrow >= 0
    lhs_end = arrow if explicit else len(text)
    inputs, start = [], 0
    while True:
        comma = text.find(",", start, lhs_end)
        stop = lhs_end if comma < 0 else comma
        inputs.append(_term(text, start, stop, "operand", len(inputs)))
        if comma < 0:
            break
        start = comma + 1
    if explicit:
        output = _term(text, arrow + 2, len(text), "output", None)
    else:
        output = _implicit_output(inputs)
    return Spec(text, tuple(inputs), output, explicit, lhs_end)


def _term(text: str, start: int, stop: int, what: str, k) -> Term:
    labels, columns, i = [], [], start
    name = f"operand {k}" if k is not None else "the output"
    while i < stop:
        ch = text[i]
        if ch == " ":
            i += 1
        elif ch == ".":
            if text[i:i + 3] != ELLIPSIS or i + 3 > stop:
                raise EquationSyntaxError(
                    f"malformed ellipsis in {name}: '.' must come as '...'",
                    equation=text, position=i)
            if ELLIPSIS in labels:
                raise EquationSyntaxError(f"{name} has more than one ellipsis",
                                          equation=text, position=i)
            labels.append(ELLIPSIS)
            columns.append(i)
            i += 3
        elif ch.isascii() and ch.isalpha():
            labels.append(ch)
            columns.append(i)
            i += 1
        elif ch == "," and what == "output":
            raise EquationSyntaxError("the output term cannot contain ','",
                                      equation=text, position=i)
        else:
            raise EquationSyntaxError(
                f"invalid character {ch!r} in {name}: labels must be letters "
                f"a-z or A-Z, with '...' for an ellipsis",
                equation=text, position=i)
    return Term(tuple(labels), tuple(columns), start)


def _implicit_output(inputs) -> Term:
    """NumPy's implicit mode: the labels seen once, in ASCII order, after the
    ellipsis dimensions."""
    counts = {}
    for term in inputs:
        for lab in term.letters:
            counts[lab] = counts.get(lab, 0) + 1
    labels = tuple(sorted(lab for lab, n in counts.items() if n == 1))
    if any(t.has_ellipsis for t in inputs):
        labels = (ELLIPSIS,) + labels
    return Term(labels, (None,) * len(labels), None)


def checked_sizes(sizes, equation=None):
    """`sizes` (label -> size) with each size a Python int, as NumPy takes a
    shape: an integer 0 or more (a NumPy integer too; not a bool, not 2.5)."""
    out = {}
    for lab, size in dict(sizes or {}).items():
        try:
            out[lab] = None if isinstance(size, bool) else operator.index(size)
        except TypeError:
            out[lab] = None
        if out[lab] is None or out[lab] < 0:
            raise LabelSizeError(f"sizes={{{lab!r}: {size!r}}}: a size must be an integer "
                                 f"0 or more", equation=equation)
    return out


def bind(spec: Spec, shapes, sizes=None) -> GE:
    """Bind a spec to operand shapes: one `Index` per label, sized.

    NumPy's broadcasting applies: a dimension of size 1 may meet a larger one
    of the same label or ellipsis position.  Such a dimension gets a fresh
    size-1 index of its own (summed away in the forward, so the VJP puts it
    back as a size-1 broadcast, i.e. keepdims).

    >>> ge = bind(parse("ij,ij->ij"), [(3, 1), (3, 4)])
    >>> [i.size for i in ge.terms[0]], [i.size for i in ge.out]
    ([3, 1], [3, 4])
    >>> ge.terms[0][1] is ge.out[1]
    False
    """
    text = spec.text
    sizes = checked_sizes(sizes, text)
    if len(shapes) != len(spec.inputs):
        raise OperandCountError(
            f"the equation has {len(spec.inputs)} operand term(s) but "
            f"{len(shapes)} operand(s) were given",
            equation=text, position=spec.arrow if len(shapes) < len(spec.inputs) else None)
    # Ellipsis widths and label sizes, checked per occurrence.
    widths, seen = [], {}
    for k, (term, shape) in enumerate(zip(spec.inputs, shapes)):
        n_letters = len(term.letters)
        if term.has_ellipsis:
            width = len(shape) - n_letters
            if width < 0:
                raise RankError(
                    f"operand {k} has {len(shape)} dimension(s) {tuple(shape)} but its "
                    f"term names {n_letters} label(s) besides '...'",
                    equation=text, position=term.column)
        else:
            width = 0
            if len(shape) != n_letters:
                raise RankError(
                    f"operand {k} has {len(shape)} dimension(s) {tuple(shape)} but its "
                    f"term names {n_letters} label(s)",
                    equation=text, position=term.column)
        widths.append(width)
        for lab, col, size in zip(*_dims(term, shape, width)):
            if isinstance(lab, int):
                continue
            prev = seen.get(lab)
            if prev is not None and prev[0] == k and prev[2] != size:
                raise LabelSizeError(
                    f"label {lab!r} appears twice in operand {k} with sizes "
                    f"{prev[2]} and {size}; a repeated label needs equal sizes",
                    equation=text, position=col)
            if prev is not None and size != prev[2] and 1 not in (size, prev[2]):
                raise LabelSizeError(
                    f"size of label {lab!r} in operand {k} ({size}) does not match "
                    f"operand {prev[0]} ({prev[2]})",
                    equation=text, position=col)
            if prev is None or prev[2] == 1:
                seen[lab] = (k, col, size)
    for lab, size in sizes.items():
        if lab in seen and seen[lab][2] not in (size, 1):
            raise LabelSizeError(
                f"sizes={{{lab!r}: {size}}} does not match operand {seen[lab][0]} "
                f"({seen[lab][2]})", equation=text, position=seen[lab][1])
    # Ellipsis: right-aligned broadcast, like NumPy.
    ell_width = max(widths, default=0)
    ell_sizes = [1] * ell_width
    ell_owner = [None] * ell_width
    for k, (term, shape, width) in enumerate(zip(spec.inputs, shapes, widths)):
        if width == 0:
            continue
        at = term.labels.index(ELLIPSIS)
        for j, size in enumerate(shape[at:at + width]):
            pos = ell_width - width + j
            if size != 1 and ell_sizes[pos] not in (1, size):
                other = ell_owner[pos]
                raise BroadcastError(
                    f"ellipsis dimensions of operand {k} {tuple(shape[at:at + width])} cannot "
                    f"be broadcast with operand {other[0]} {other[1]}",
                    equation=text, position=term.columns[at])
            if size != 1:
                ell_sizes[pos] = size
                ell_owner[pos] = (k, tuple(shape[at:at + width]))
    ell_index = [Index(f"…{j}", s) for j, s in enumerate(ell_sizes)]
    index = {lab: Index(lab, sizes.get(lab, 1) if seen[lab][2] == 1 else seen[lab][2])
             for lab in seen}
    # Terms over Index objects; a size-1 dimension that broadcasts gets its own.
    terms = []
    for k, (term, shape, width) in enumerate(zip(spec.inputs, shapes, widths)):
        fresh, labels = {}, []
        for lab, col, size in zip(*_dims(term, shape, width)):
            idx = ell_index[lab] if isinstance(lab, int) else index[lab]
            if size != idx.size:
                idx = fresh.setdefault(lab, Index(idx.name, size))
            labels.append(idx)
        terms.append(tuple(labels))
    out = []
    for lab, col in zip(spec.output.labels, spec.output.columns):
        if lab == ELLIPSIS:
            out.extend(ell_index)
        elif lab in index:
            out.append(index[lab])
        elif lab in sizes:
            out.append(index.setdefault(lab, Index(lab, int(sizes[lab]))))
        else:
            raise MissingSizeError(
                f"output label {lab!r} is carried by no operand; give its size with "
                f"sizes={{{lab!r}: n}}", equation=text, position=col)
    return GE(tuple(terms), tuple(out))


def _dims(term: Term, shape, width):
    """(label, column, size) per dimension; ellipsis dimensions are labelled
    by their right-aligned position in the broadcast ellipsis (an int)."""
    labels, columns, dim_sizes = [], [], []
    dim = 0
    for lab, col in zip(term.labels, term.columns):
        if lab == ELLIPSIS:
            for j in range(width):
                labels.append(-width + j)
                columns.append(col)
                dim_sizes.append(shape[dim])
                dim += 1
        else:
            labels.append(lab)
            columns.append(col)
            dim_sizes.append(shape[dim])
            dim += 1
    return labels, columns, dim_sizes


def operand_index(k, n: int, equation: str) -> int:
    """`k` (any integer, negative counts from the end) as an operand index.

    >>> operand_index(-1, 3, "i,i,i")
    2
    """
    try:
        index = operator.index(k)
    except TypeError:
        index = None
    if index is None or not -n <= index < n:
        raise WrtError(f"wrt={k!r} is not an operand index: the equation has {n} "
                       f"operand(s), 0 to {n - 1}", equation=equation)
    return index % n
