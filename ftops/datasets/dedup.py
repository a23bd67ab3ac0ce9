"""Near-duplicate search, greedy selection and diversity over embeddings (numpy, no Django).

All similarities come from blocked matrix products (``block`` rows at a time, ~4096), so
memory stays at block x block floats and there is no pairwise Python loop. Vectors must
be L2-normalised (dot product = cosine). The only Python loops walk the *found* pairs,
whose number is small next to N².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BLOCK = 4096


def similar_pairs(
    a: np.ndarray, b: np.ndarray | None = None, *, threshold: float, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs with cosine >= threshold: within ``a`` (i < j) or between ``a`` and ``b``."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    same = b is None
    other = a if b is None else np.ascontiguousarray(b, dtype=np.float32)
    rows_i: list[np.ndarray] = []
    rows_j: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    for r0 in range(0, len(a), block):
        ra = a[r0 : r0 + block]
        c_start = r0 if same else 0
        for c0 in range(c_start, len(other), block):
            s = ra @ other[c0 : c0 + block].T
            # On a diagonal block only the strictly upper triangle holds pairs i < j.
            mask = np.triu(s >= threshold, k=1) if same and c0 == r0 else s >= threshold
            ii, jj = np.nonzero(mask)
            if len(ii):
                rows_i.append(ii + r0)
                rows_j.append(jj + c0)
                sims.append(s[ii, jj])
    if not rows_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.float32)
    return np.concatenate(rows_i), np.concatenate(rows_j), np.concatenate(sims)


def nearest_similarity(a: np.ndarray, b: np.ndarray | None = None, *, block: int = BLOCK) -> np.ndarray:
    """For each row of ``a``, the highest cosine to ``b`` (or to the other rows of ``a``)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    other = a if b is None else np.ascontiguousarray(b, dtype=np.float32)
    best = np.full(len(a), -1.0, dtype=np.float32)
    if len(other) == 0 or len(a) == 0:
        return best
    for r0 in range(0, len(a), block):
        ra = a[r0 : r0 + block]
        for c0 in range(0, len(other), block):
            s = ra @ other[c0 : c0 + block].T
            if b is None and c0 == r0:
                diag = np.arange(min(len(ra), s.shape[1]))
                s[diag, diag] = -1.0  # a row is not its own nearest neighbour
            np.maximum(best[r0 : r0 + len(ra)], s.max(axis=1), out=best[r0 : r0 + len(ra)])
    return best


@dataclass
class Selection:
    keep: np.ndarray  # bool per input row
    duplicate_of: np.ndarray  # index of the kept row that suppressed it, -1 when kept
    conflicts: list[tuple[int, int, float]] = field(default_factory=list)  # (i, j, cosine), different labels


def greedy_select(
    emb: np.ndarray,
    *,
    threshold: float,
    labels: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
    block: int = BLOCK,
    conflict_labels: Sequence[str] | None = None,
) -> Selection:
    """Keep rows in ``order``; drop a row whose cosine to an already kept row is >= threshold.

    With ``labels`` only rows of the same label suppress each other (same request, same
    expected call). Pairs above the threshold whose ``conflict_labels`` differ (same request,
    a different call) are returned as conflicts and both rows are kept.
    """
    n = len(emb)
    perm = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    ordered = emb[perm]
    i, j, s = similar_pairs(ordered, threshold=threshold, block=block)
    keep = np.ones(n, dtype=bool)  # indexed by position in ``perm``
    dup = np.full(n, -1, dtype=np.int64)
    conflicts: list[tuple[int, int, float]] = []
    if len(i):
        if conflict_labels is not None:
            cl = np.asarray(conflict_labels, dtype=object)[perm]
            differ = cl[i] != cl[j]
            conflicts = [(int(perm[a]), int(perm[b]), float(c)) for a, b, c in zip(i[differ], j[differ], s[differ],
                                                                                      strict=True)]
        if labels is not None:
            lab = np.asarray(labels, dtype=object)[perm]
            same = lab[i] == lab[j]
            i, j = i[same], j[same]
        if len(i):
            sort = np.lexsort((i, j))  # by j, then i: a row's earlier neighbours are decided first
            i, j = i[sort], j[sort]
            starts = np.flatnonzero(np.r_[True, j[1:] != j[:-1]])
            ends = np.r_[starts[1:], len(j)]
            for st, en in zip(starts, ends, strict=True):
                nbrs = i[st:en]
                alive = nbrs[keep[nbrs]]
                if len(alive):
                    keep[j[st]] = False
                    dup[j[st]] = alive[0]
    out_keep = keep[inv]
    out_dup = np.where(dup[inv] >= 0, perm[np.maximum(dup[inv], 0)], -1)
    return Selection(keep=out_keep, duplicate_of=out_dup, conflicts=conflicts)


def diversity_score(emb: np.ndarray, *, block: int = BLOCK) -> float:
    """1 - mean cosine to each row's nearest other row: 0 = all identical, towards 1 = spread out."""
    if len(emb) < 2:
        return 1.0 if len(emb) else 0.0
    nearest = nearest_similarity(emb, block=block)
    return float(np.clip(1.0 - nearest.mean(), 0.0, 1.0))


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the graph given by edge lists (union-find over the found edges)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return int(root)

    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)], dtype=np.int64)


def greedy_extend(
    kept: np.ndarray,
    new: np.ndarray,
    *,
    threshold: float,
    kept_labels: Sequence[str] | None = None,
    new_labels: Sequence[str] | None = None,
    block: int = BLOCK,
) -> np.ndarray:
    """Keep-mask for ``new`` rows appended after an earlier selection whose kept rows are ``kept``.

    Greedy selection keeps earlier rows regardless of later ones, so adding rows never changes
    what was kept before: only new x kept and new x new similarities are needed (O(new * N)).
    """
    keep = np.ones(len(new), dtype=bool)
    if len(new) == 0:
        return keep
    if len(kept):
        i, j, _ = similar_pairs(new, kept, threshold=threshold, block=block)
        if kept_labels is not None and new_labels is not None and len(i):
            same = np.asarray(new_labels, dtype=object)[i] == np.asarray(kept_labels, dtype=object)[j]
            i = i[same]
        keep[np.unique(i)] = False
    rest = np.flatnonzero(keep)
    if len(rest) > 1:
        labels = None if new_labels is None else [new_labels[int(k)] for k in rest]
        inner = greedy_select(new[rest], threshold=threshold, labels=labels, block=block)
        keep[rest[~inner.keep]] = False
    return keep
