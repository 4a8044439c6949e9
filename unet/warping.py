"""The ISBI 2012 warping error kernel: topology-preserving warping and mismatch classification.

Jain et al. (CVPR 2010) warp the binary ground truth onto the binarised proposal by flipping
only *simple* pixels, whose flip changes no topology (foreground 4-adjacency, background
8-adjacency). What cannot be flipped is a topological error; the challenge counts only those
that split or merge objects. The procedure follows ``docs/metrics.md`` step by step:

1. Pad both images with a 1-pixel membrane border. Mismatches are visited in the order of
   ``float32(|p - th|)`` descending, ties in scan order (x outer, y inner); each simple one is
   flipped in place. Passes repeat until one flips nothing. The order is a total order fixed
   by the proposal, so one stable sort serves every pass: a later pass visits the survivors of
   the previous one in the same order, exactly as a re-sorted list would.
2. Each remaining mismatch is classified by the 4-connected labels of the warped ground truth
   among its 8 in-image neighbours (an image that is foreground everywhere has no labels, as
   in the reference, whose 8-bit conversion maps a constant image to 0). A foreground pixel
   next to background and one object is a split when removing it disconnects its foreground
   neighbours inside a (2r+1)^2 window (the whole image when r < 1 or r exceeds its width or
   height); the test floods from one neighbour instead of relabelling the window.

The simple-point test is a 256-entry lookup table over the 8-neighbourhood. Kernels are
compiled by numba and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# The 8 neighbours as (dy, dx), bit k of a neighbourhood code is neighbour k.
OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_DY = np.array([dy for dy, _ in OFFSETS], np.int64)
_DX = np.array([dx for _, dx in OFFSETS], np.int64)
_FOUR = (1, 3, 4, 6)  # the 4-neighbours


def _components(members: set[int], adjacent) -> list[set[int]]:
    """Connected components of neighbour indices under an adjacency predicate."""
    left, comps = set(members), []
    while left:
        stack, comp = [left.pop()], set()
        while stack:
            k = stack.pop()
            comp.add(k)
            near = {j for j in left if adjacent(k, j)}
            left -= near
            stack.extend(near)
        comps.append(comp)
    return comps


def _adjacent4(a: int, b: int) -> bool:
    (ya, xa), (yb, xb) = OFFSETS[a], OFFSETS[b]
    return abs(ya - yb) + abs(xa - xb) == 1


def _adjacent8(a: int, b: int) -> bool:
    (ya, xa), (yb, xb) = OFFSETS[a], OFFSETS[b]
    return max(abs(ya - yb), abs(xa - xb)) == 1


def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables over the 256 neighbourhood codes.

    Returns ``simple`` (1 where the centre is a simple point: exactly one foreground
    4-component touching a 4-neighbour and exactly one background 8-component) and
    ``ring`` (number of 4-components of the foreground neighbours, centre removed).
    """
    simple = np.zeros(256, np.uint8)
    ring = np.zeros(256, np.uint8)
    for code in range(256):
        fg = {k for k in range(8) if code >> k & 1}
        bg = set(range(8)) - fg
        fg_comps = _components(fg, _adjacent4)
        t4 = sum(1 for comp in fg_comps if comp & set(_FOUR))
        t8 = len(_components(bg, _adjacent8))
        simple[code] = t4 == 1 and t8 == 1
        ring[code] = len(fg_comps)
    return simple, ring


SIMPLE_LUT, RING_LUT = build_tables()


@njit(cache=True)
def _code(img: np.ndarray, y: int, x: int) -> int:
    """Neighbourhood code of (y, x) in an image padded so that all neighbours exist."""
    return (
        img[y - 1, x - 1]
        | img[y - 1, x] << 1
        | img[y - 1, x + 1] << 2
        | img[y, x - 1] << 3
        | img[y, x + 1] << 4
        | img[y + 1, x - 1] << 5
        | img[y + 1, x] << 6
        | img[y + 1, x + 1] << 7
    )


@njit(cache=True)
def label4(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels (1, 2, ...) of a 2-D 0/1 image; background 0."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    queue = np.empty(h * w, np.int64)
    n = 0
    for y0 in range(h):
        for x0 in range(w):
            if mask[y0, x0] == 0 or labels[y0, x0] != 0:
                continue
            n += 1
            labels[y0, x0] = n
            queue[0], head, tail = y0 * w + x0, 0, 1
            while head < tail:
                y, x = divmod(queue[head], w)
                head += 1
                for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and labels[yy, xx] == 0:
                        labels[yy, xx] = n
                        queue[tail] = yy * w + xx
                        tail += 1
    return labels


@njit(cache=True)
def _warp(gt: np.ndarray, prob: np.ndarray, th: float, lut: np.ndarray):
    """Warp ``gt > 0`` onto ``prob > th``; return the padded warped image and the mismatches."""
    h, w = gt.shape
    src = np.zeros((h + 2, w + 2), np.uint8)
    n = 0
    for y in range(h):
        for x in range(w):
            src[y + 1, x + 1] = gt[y, x] > 0
            if src[y + 1, x + 1] != (np.float64(prob[y, x]) > th):
                n += 1
    ys, xs = np.empty(n, np.int64), np.empty(n, np.int64)
    keys = np.empty(n, np.float32)
    k = 0
    for x in range(w):  # scan order of the reference: x outer, y inner
        for y in range(h):
            if src[y + 1, x + 1] != (np.float64(prob[y, x]) > th):
                ys[k], xs[k] = y, x
                keys[k] = np.float32(abs(np.float64(prob[y, x]) - th))
                k += 1
    order = np.argsort(-keys, kind="mergesort")  # stable: ties keep the scan order
    ys, xs = ys[order], xs[order]
    while n > 0:
        kept = 0
        for k in range(n):
            y, x = ys[k] + 1, xs[k] + 1
            if lut[_code(src, y, x)]:
                src[y, x] ^= 1
            else:
                ys[kept], xs[kept] = ys[k], xs[k]
                kept += 1
        if kept == n:
            break
        n = kept
    return src, ys[:n], xs[:n]


@njit(cache=True)
def _disconnects(src, y, x, radius, ring_lut, stamp, stamps, queue):
    """Whether removing foreground pixel (y, x) of the padded image ``src`` disconnects its
    foreground neighbours inside the window of ``radius`` (whole image when radius < 0)."""
    code = _code(src, y, x)
    if ring_lut[code] <= 1:
        return False
    h, w = src.shape[0] - 2, src.shape[1] - 2
    if radius < 0:
        y0, y1, x0, x1 = 1, h, 1, w
    else:
        y0, y1 = max(1, y - radius), min(h, y + radius)
        x0, x1 = max(1, x - radius), min(w, x + radius)
    targets = 0
    for k in range(8):
        targets += code >> k & 1
    start = 0
    while not code >> start & 1:
        start += 1
    sy, sx = y + _DY[start], x + _DX[start]
    stamps[y, x] = stamp  # the removed centre blocks the flood
    stamps[sy, sx] = stamp
    queue[0], head, tail, reached = sy * (w + 2) + sx, 0, 1, 1
    while head < tail:
        cy, cx = divmod(queue[head], w + 2)
        head += 1
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            yy, xx = cy + dy, cx + dx
            if y0 <= yy <= y1 and x0 <= xx <= x1 and src[yy, xx] and stamps[yy, xx] != stamp:
                stamps[yy, xx] = stamp
                if abs(yy - y) <= 1 and abs(xx - x) <= 1:
                    reached += 1
                    if reached == targets:
                        return False
                queue[tail] = yy * (w + 2) + xx
                tail += 1
    return True


@njit(cache=True)
def _classify(src, ys, xs, radius, ring_lut):
    """Count (splits, mergers) among the mismatches left after warping."""
    h, w = src.shape[0] - 2, src.shape[1] - 2
    warped = src[1 : h + 1, 1 : w + 1]
    if warped.all():  # constant image: no labels, as in the reference's 8-bit conversion
        return 0, 0
    labels = label4(warped)
    if radius < 1 or radius > w or radius > h:
        radius = -1
    stamps = np.zeros(src.shape, np.int64)
    queue = np.empty((h + 2) * (w + 2), np.int64)
    ids = np.empty(8, np.int32)
    splits = merges = 0
    for k in range(ys.size):
        y, x = ys[k], xs[k]
        distinct = 0
        for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                value, seen = labels[yy, xx], False
                for j in range(distinct):
                    seen = seen or ids[j] == value
                if not seen:
                    ids[distinct] = value
                    distinct += 1
        centre = labels[y, x]
        if distinct >= 3:
            if centre == 0:
                merges += 1
            else:
                splits += 1
        elif distinct == 2 and centre != 0:
            if _disconnects(src, y + 1, x + 1, radius, ring_lut, k + 1, stamps, queue):
                splits += 1
    return splits, merges


@njit(cache=True, parallel=True)
def _counts(gt, prob, thresholds, radius, simple_lut, ring_lut):
    nz, nt = gt.shape[0], thresholds.size
    out = np.zeros((nz, nt, 2), np.int64)
    for task in prange(nz * nt):
        z, t = task // nt, task % nt
        src, ys, xs = _warp(gt[z], prob[z], thresholds[t], simple_lut)
        out[z, t, 0], out[z, t, 1] = _classify(src, ys, xs, radius, ring_lut)
    return out


def split_merge_counts(
    ground_truth: np.ndarray, probability: np.ndarray, thresholds: np.ndarray, radius: int = 20
) -> np.ndarray:
    """Split and merger pixel counts, shape (Z, len(thresholds), 2), of (Z, Y, X) inputs.

    ``ground_truth`` is foreground where > 0; ``probability`` is float32 in [0, 1].
    """
    gt = np.ascontiguousarray(np.asarray(ground_truth) > 0, dtype=np.uint8)
    prob = np.ascontiguousarray(probability, dtype=np.float32)
    ths = np.asarray(thresholds, dtype=np.float64)
    return _counts(gt, prob, ths, int(radius), SIMPLE_LUT, RING_LUT)
