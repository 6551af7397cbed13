"""The einsum corpus: one row per case, grouped by category.

A row is (id, equation, shapes, sizes-or-None).  `sizes` gives the sizes of
output labels that no operand carries.  Every bug found becomes a row.
"""

import pytest

CORPUS = {
    "hadamard": [
        ("hadamard-matrix", "ij,ij->ij", [(3, 4), (3, 4)], None),
        ("hadamard-vector", "i,i->i", [(5,), (5,)], None),
        ("hadamard-3d", "ijk,ijk->ijk", [(2, 3, 4), (2, 3, 4)], None),
        ("hadamard-transposed", "ij,ji->ij", [(3, 4), (4, 3)], None),
        ("hadamard-three", "i,i,i->i", [(4,), (4,), (4,)], None),
    ],
    "outer": [
        ("outer-vv", "i,j->ij", [(3,), (4,)], None),
        ("outer-mv", "ij,k->ijk", [(2, 3), (4,)], None),
        ("outer-transposed", "i,j->ji", [(3,), (4,)], None),
        ("outer-three", "i,j,k->ijk", [(2,), (3,), (4,)], None),
    ],
    "inner": [
        ("inner-vector", "i,i->", [(5,), (5,)], None),
        ("inner-matrix", "ij,ij->", [(3, 4), (3, 4)], None),
        ("inner-3d", "ijk,ijk->", [(2, 3, 4), (2, 3, 4)], None),
        ("sum-rows", "ij->i", [(3, 4)], None),
    ],
    "gemm": [
        ("gemm", "ik,kj->ij", [(2, 3), (3, 4)], None),
        ("gemm-out-transposed", "ij,jk->ki", [(2, 3), (3, 4)], None),
        ("gemm-at-b", "ki,kj->ij", [(3, 2), (3, 4)], None),
        ("gemm-batched", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], None),
        ("matvec", "ij,j->i", [(3, 4), (4,)], None),
        ("vecmat", "i,ij->j", [(3,), (3, 4)], None),
        ("attention-scores", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)], None),
        ("two-index-contraction", "ijk,jkl->il", [(2, 3, 4), (3, 4, 5)], None),
        ("transpose", "ij->ji", [(3, 4)], None),
        ("gemm-uppercase", "Ab,bC->AC", [(2, 3), (3, 4)], None),
        ("gemm-spaces", "ij, jk -> ik", [(2, 3), (3, 4)], None),
    ],
    "trace": [
        ("trace", "ii->", [(4, 4)], None),
        ("trace-implicit", "ii", [(4, 4)], None),
        ("partial-trace", "iij->j", [(3, 3, 2)], None),
        ("double-trace", "ijji->", [(2, 3, 3, 2)], None),
        ("trace-of-product", "ij,ji->", [(3, 4), (4, 3)], None),
        ("trace-3", "iii->", [(3, 3, 3)], None),
    ],
    "diagonal": [
        ("diag", "ii->i", [(4, 4)], None),
        ("diag-3", "iii->i", [(3, 3, 3)], None),
        ("diag-ellipsis", "a...a->a...", [(3, 2, 3)], None),
        ("diag-with-outer", "ijj,k->ik", [(2, 3, 3), (4,)], None),
        ("diag-interleaved", "iji->ij", [(3, 2, 3)], None),
        ("diag-pairs", "ijij->ij", [(2, 3, 2, 3)], None),
        ("diag-times-vector", "ii,i->i", [(3, 3), (3,)], None),
        ("diag-outer", "ii,jj->ij", [(3, 3), (2, 2)], None),
        ("diag-batched", "...ii->...i", [(2, 3, 3)], None),
        ("diag-transposed", "iji->ji", [(3, 2, 3)], None),
    ],
    "broadcast": [
        ("bcast-col", "ij,ij->ij", [(3, 1), (3, 4)], None),
        ("bcast-row-col", "ij,ij->ij", [(1, 4), (3, 1)], None),
        ("bcast-contracted", "ij,jk->ik", [(2, 1), (3, 4)], None),
        ("bcast-vector", "ij,j->i", [(3, 4), (1,)], None),
        ("bcast-sum", "ij,ij->i", [(3, 1), (3, 4)], None),
        ("bcast-both-ones", "ij,ij->ij", [(1, 1), (3, 4)], None),
        ("bcast-diag-vector", "ii,i->i", [(3, 3), (1,)], None),
        ("bcast-ellipsis", "...i,...i->...", [(2, 1, 3), (5, 3)], None),
        ("bcast-ellipsis-rank", "...,...->...", [(3, 1), (4,)], None),
        ("bcast-ellipsis-mid", "i...,i...->i...", [(2, 1, 3), (2, 4, 1)], None),
        ("bcast-to-zero", "ij,ij->ij", [(1, 3), (0, 3)], None),
    ],
    "ellipsis": [
        ("ellipsis-matmul", "...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)], None),
        ("ellipsis-identity", "...->...", [(2, 3)], None),
        ("ellipsis-only", "...,...->...", [(2, 3), (2, 3)], None),
        ("ellipsis-sum-first", "i...->...", [(2, 3, 4)], None),
        ("ellipsis-move", "...i->i...", [(2, 3, 4)], None),
        ("ellipsis-middle", "ab...,bc...->ac...", [(2, 3, 4), (3, 5, 4)], None),
        ("ellipsis-transpose", "...ij->...ji", [(2, 3, 4)], None),
        ("ellipsis-implicit", "...i,...i", [(2, 3), (2, 3)], None),
        ("ellipsis-sum-all", "...->", [(2, 3)], None),
        ("ellipsis-implicit-matmul", "...ij,jk", [(2, 3, 4), (4, 5)], None),
        ("ellipsis-empty", "i...,i...->i...", [(3,), (3,)], None),
        ("ellipsis-output-only", "i->i...", [(3,)], None),
    ],
    "implicit": [
        ("implicit-matmul", "ij,jk", [(2, 3), (3, 4)], None),
        ("implicit-transpose", "ji", [(3, 4)], None),
        ("implicit-sorted", "ba", [(3, 4)], None),
        ("implicit-inner", "i,i", [(5,), (5,)], None),
        ("implicit-chain", "ij,jk,kl", [(2, 3), (3, 4), (4, 5)], None),
        ("implicit-identity", "ijk", [(2, 3, 4)], None),
        ("implicit-full-contraction", "abc,cba", [(2, 3, 4), (4, 3, 2)], None),
    ],
    "scalar": [
        ("scalar-product", ",->", [(), ()], None),
        ("scalar-identity", "->", [()], None),
        ("scalar-times-vector", ",i->i", [(), (4,)], None),
        ("vector-times-scalar", "i,->i", [(4,), ()], None),
        ("scalar-three", ",,->", [(), (), ()], None),
        ("scalar-implicit", ",i", [(), (4,)], None),
    ],
    "zero-size": [
        ("zero-rows", "ij,jk->ik", [(0, 3), (3, 4)], None),
        ("zero-contracted", "ij,jk->ik", [(2, 0), (0, 4)], None),
        ("zero-diag", "ii->i", [(0, 0)], None),
        ("zero-outer", "i,j->ij", [(0,), (3,)], None),
        ("zero-ellipsis", "...i->...", [(0, 3)], None),
        ("zero-sum", "ij->", [(0, 5)], None),
        ("zero-batch", "bij,bjk->bik", [(0, 2, 3), (0, 3, 4)], None),
        ("zero-chain", "ab,bc,cd->ad", [(2, 0), (0, 3), (3, 4)], None),
    ],
    "many-operand": [
        ("chain-4", "ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 3), (3, 2)], None),
        ("chain-5", "ab,bc,cd,de,ef->af", [(2, 3), (3, 4), (4, 3), (3, 2), (2, 3)], None),
        ("chain-6", "ab,bc,cd,de,ef,fg->ag",
         [(2, 3), (3, 2), (2, 3), (3, 2), (2, 3), (3, 2)], None),
        ("mps-state", "ai,ibj,jck,kd->abcd", [(2, 3), (3, 2, 3), (3, 2, 3), (3, 2)], None),
        ("mps-5", "ai,ibj,jck,kdl,l->abcd",
         [(2, 3), (3, 2, 3), (3, 2, 3), (3, 2, 2), (2,)], None),
        ("ring-trace", "ij,jk,kl,li->", [(2, 3), (3, 4), (4, 2), (2, 2)], None),
        ("bilinear-chain", "i,ij,jk,k->", [(2,), (2, 3), (3, 4), (4,)], None),
        ("tensor-network", "abc,bd,ce,de->a", [(2, 3, 4), (3, 2), (4, 3), (2, 3)], None),
        ("same-label-four", "ij,ij,ij,ij->i", [(2, 3)] * 4, None),
        ("hyperedge", "bi,bj,bk->bijk", [(2, 3), (2, 2), (2, 4)], None),
    ],
    "ge-extension": [
        ("ge-diag-embed", "i->ii", [(3,)], None),
        ("ge-gemm-embed", "ab,bc->aaca", [(2, 3), (3, 4)], None),
        ("ge-broadcast", "i->ij", [(3,)], {"j": 5}),
        ("ge-broadcast-last", "ij->ijk", [(2, 3)], {"k": 2}),
        ("ge-scalar-broadcast", "->i", [()], {"i": 3}),
        ("ge-diag-3", "i->iii", [(3,)], None),
        ("ge-diag-partial", "ij->iij", [(2, 3)], None),
        ("ge-hadamard-embed", "i,i->ii", [(3,), (3,)], None),
        ("ge-identity", "->ii", [()], {"i": 3}),
        ("ge-broadcast-diag", "i->ijj", [(2,)], {"j": 3}),
        ("ge-ellipsis-embed", "...i->...ii", [(2, 3)], None),
        ("ge-diag-mask", "ii->ii", [(3, 3)], None),
        ("ge-gemm-embed-2", "ij,jk->iik", [(2, 3), (3, 4)], None),
        ("ge-broadcast-first", "i->ji", [(3,)], {"j": 4}),
        ("ge-bcast-and-broadcast", "ij,ij->ijk", [(3, 1), (3, 4)], {"k": 2}),
        ("ge-drop-ellipsis", "...i->i", [(2, 3, 4)], None),
        ("ge-broadcast-zero", "i->ij", [(3,)], {"j": 0}),
        ("ge-embed-zero", "i->ii", [(0,)], None),
    ],
}

ROWS = [(cat, *row) for cat, rows in CORPUS.items() for row in rows]


def cases(*categories, exclude=(), where=None):
    """pytest params (equation, shapes, sizes), id'd by row id."""
    params = []
    for cat, cid, eq, shapes, sizes in ROWS:
        if categories and cat not in categories or cat in exclude:
            continue
        if where is not None and not where(cat, eq, shapes, sizes):
            continue
        params.append(pytest.param(eq, shapes, sizes, id=cid))
    return params
