"""Contraction orders over label sets (opt_einsum's path format: positions
in the list of operands left, each step's result appended at its end).

* `auto_path` — opt_einsum's "auto", unless its greedy path blows up an
  intermediate: then the cheapest of it, "branch-1" (up to 48 operands) and
  a sweep;
* `sweep_path` — one intermediate grown by its cheapest neighbour at each
  step, from a few starting operands: the order of a chain (an MPS, a tensor
  train) that pairwise greedy misses when a label is shared by every site;
* `path_cost` — (flops-ish cost, largest intermediate) of a path.

>>> sets = [frozenset("ab"), frozenset("bc"), frozenset("cd")]
>>> sweep_path(sets, frozenset("ad"), dict.fromkeys("abcd", 2))
[(0, 1), (0, 1)]
"""

from __future__ import annotations

import math
from collections import Counter

import opt_einsum


def auto_path(sets, out, size_dict):
    """opt_einsum's "auto", unless its greedy path blows up an intermediate
    (a hyperedge such as a batch label shared by every site of an MPS makes
    greedy build outer products): then the cheapest of it, "branch-1" (up to
    48 operands) and `sweep_path`.  Deterministic: the same path every run."""
    path = opt_einsum.paths.auto(sets, out, size_dict, None)
    cost, largest = path_cost(sets, out, size_dict, path)
    if 2 < len(sets) <= 4:  # "optimal" ties a Hadamard pair, i,i,ij->j, with a scaled copy
        other = opt_einsum.paths.greedy(sets, out, size_dict)
        other_cost, other_largest = path_cost(sets, out, size_dict, other)
        if other_cost < cost:
            path, cost, largest = other, other_cost, other_largest
    biggest = max([_size(s, size_dict) for s in sets] + [_size(out, size_dict)])
    if len(sets) > 4 and largest > 4 * biggest:
        others = [sweep_path(sets, out, size_dict)]
        if len(sets) <= 48:
            others.append(opt_einsum.paths.get_path_fn("branch-1")(sets, out, size_dict, None))
        for other in others:
            other_cost = path_cost(sets, out, size_dict, other)[0]
            if other_cost < cost:
                path, cost = other, other_cost
    return path


def sweep_path(sets, out, size_dict, starts=4):
    """Grow one intermediate from a starting operand, at each step by the
    neighbour (an operand sharing a label of at most 4 operands, else any
    sharing one, else any) that leaves the smallest result, then the fewest
    flops; the cheapest over a few starts (the first and last operands, the
    smallest ones)."""
    n = len(sets)
    if n < 3:
        return [(0, 1)] if n == 2 else [(0,)]
    count = Counter(lab for s in sets for lab in s)
    by_label = {}
    for k, s in enumerate(sets):
        for lab in s:
            by_label.setdefault(lab, []).append(k)
    order = sorted(range(n), key=lambda k: _size(sets[k], size_dict))
    best = None
    for start in dict.fromkeys([0, n - 1] + order[:max(starts - 2, 0)]):
        path = _sweep_from(start, sets, out, size_dict, count, by_label)
        cost = path_cost(sets, out, size_dict, path)[0]
        if best is None or cost < best[0]:
            best = (cost, path)
    return best[1]


def _sweep_from(start, sets, out, size_dict, count, by_label):
    left = Counter(count)
    for lab in sets[start]:
        left[lab] -= 1
    current, rest = sets[start], set(range(len(sets))) - {start}
    order = [start]
    while rest:
        near = {k for lab in current if len(by_label[lab]) <= 4 for k in by_label[lab]} & rest
        if not near:
            near = {k for lab in current for k in by_label[lab]} & rest or rest
        scored = []
        for k in near:
            union = current | sets[k]
            keep = frozenset(lab for lab in union
                             if lab in out or left[lab] - (lab in sets[k]) > 0)
            scored.append((_size(keep, size_dict), _size(union, size_dict), k, keep))
        _, _, k, keep = min(scored, key=lambda t: t[:3])
        for lab in sets[k]:
            left[lab] -= 1
        current = keep
        rest.discard(k)
        order.append(k)
    # as a linear path: the intermediate sits last after the first step
    entries = list(range(len(sets)))
    path = []
    first, second = order[0], order[1]
    path.append(tuple(sorted((entries.index(first), entries.index(second)))))
    entries = [e for e in entries if e not in (first, second)] + ["c"]
    for k in order[2:]:
        path.append((entries.index(k), len(entries) - 1))
        entries = [e for e in entries if e not in (k, "c")] + ["c"]
    return path


def _size(labels, size_dict):
    return math.prod(size_dict[lab] for lab in labels)


def path_cost(sets, out, size_dict, path):
    """(flops-ish cost, largest intermediate) of a linear path."""
    sets, cost, largest = list(sets), 0, 0
    for positions in path:
        picked = [sets[p] for p in positions]
        for p in sorted(positions, reverse=True):
            del sets[p]
        union = frozenset().union(*picked)
        keep = union & frozenset(out).union(*sets)
        cost += _size(union, size_dict)
        largest = max(largest, _size(keep, size_dict))
        sets.append(keep)
    return cost, largest
