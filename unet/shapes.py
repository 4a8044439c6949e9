"""Shape arithmetic of the U-Net, used by the model checks, the tile sampler and the tiler.

Every function takes the model configuration that decides shapes (``depth`` levels and
``padding``) and works on one spatial axis; apply it per axis for 2-D or 3-D shapes. All of
it is closed-form or bounded by the depth, and exact for every depth.

For ``padding="valid"`` (the paper) each level of the contracting path applies two unpadded
3x3 convolutions (-4 pixels) and a 2x2 max pooling (which needs an even size); each level of
the expansive path doubles the size and applies two convolutions again. With
``s = step(depth) = 2 ** (depth - 1)`` and a bottom size ``b`` the input is
``s * b + 8 * s - 4`` and the output ``s * (b - 4) + 4``: valid inputs step by ``s`` from the
smallest one whose every layer keeps a positive size, and input - output = 2 * halo with
``halo = 6 * s - 4`` (depth 5: 572 -> 388, halo 92). For ``padding="same"`` the output
equals the input, which must be a multiple of ``s``.

Tiling: a tile equals the whole-image pass only where its read window starts on the whole
pass's pooling grid (a multiple of ``s`` from the whole pass's first pixel) and it has
enough context: :func:`margins`, derived from the layers by interval arithmetic. For valid
padding that is (halo, halo), the pixels the network drops. For same padding it is larger
than the halo (22 at depth 3, 94 at depth 5, halo + 2 from depth 3 on): a same-padded
network pads with zeros inside every tile, and what a pixel reads, rounded out to the
pooling cells it passes through, depends on its phase on the grid; the halo is not enough.
"""

from __future__ import annotations

from unet.errors import InputError

PADDINGS = ("valid", "same")
_CONVS = 2  # 3x3 convolutions per level, each unpadded (-2) or same-padded (+-0)


def _check_config(depth: int, padding: str) -> None:
    if not isinstance(depth, int) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}")
    if padding not in PADDINGS:
        raise InputError(f"padding must be one of {PADDINGS}, got {padding!r}")


def step(depth: int = 5) -> int:
    """The pooling factor ``2 ** (depth - 1)``: tile origins must move in multiples of it."""
    _check_config(depth, "valid")
    return 2 ** (depth - 1)


def _shrink(depth: int, padding: str) -> int:
    """Input size - output size: 2 * (6 * s - 4) for valid, 0 for same."""
    s = step(depth)
    # in = s * (b + 4) + 4 * (s - 1) (contracting), out = s * (b - 4) + 4 (expanding)
    return 12 * s - 8 if padding == "valid" else 0


def _smallest_input(depth: int, padding: str) -> int:
    """The smallest valid input: every layer of the network keeps a positive size."""
    s = step(depth)
    if padding == "same":
        return s
    bottom = 4 - 3 // s  # smallest b with output s * (b - 4) + 4 >= 1
    return s * bottom + 8 * s - 4


def is_valid_input(size: int, depth: int = 5, padding: str = "valid") -> bool:
    """Whether every layer of the network sees a valid size for this input size."""
    _check_config(depth, padding)
    first = _smallest_input(depth, padding)
    return size >= first and (size - first) % step(depth) == 0


def valid_inputs_near(size: int, depth: int = 5, padding: str = "valid") -> tuple[int | None, int]:
    """The largest valid input size <= ``size`` (None if none) and the smallest >= ``size``."""
    _check_config(depth, padding)
    first, s = _smallest_input(depth, padding), step(depth)
    if size < first:
        return None, first
    lower = first + (size - first) // s * s
    return lower, lower if lower == size else lower + s


def _raise_invalid(size: int, depth: int, padding: str) -> None:
    lower, upper = valid_inputs_near(size, depth, padding)
    near = f"{lower} or {upper}" if lower is not None else f"{upper}"
    raise InputError(
        f"input size {size} is invalid for a U-Net of depth {depth} with {padding} padding "
        f"(every 2x2 max pooling needs an even size); nearest valid sizes: {near}"
    )


def output_size(size: int, depth: int = 5, padding: str = "valid") -> int:
    """Output size for an input size; raises InputError naming the nearest valid sizes."""
    if not is_valid_input(size, depth, padding):
        _raise_invalid(size, depth, padding)
    return size - _shrink(depth, padding)


def input_size(out: int, depth: int = 5, padding: str = "valid") -> int:
    """Smallest input size whose output covers at least ``out`` pixels."""
    _check_config(depth, padding)
    if out < 1:
        raise InputError(f"output size must be >= 1, got {out}")
    return valid_inputs_near(out + _shrink(depth, padding), depth, padding)[1]


def halo(depth: int = 5) -> int:
    """Pixels per side that the valid network drops: (input - output) / 2, ``6 * s - 4``.

    It is the tiling margin of the valid network only; a same-padded network needs more,
    see :func:`margins`.
    """
    return _shrink(depth, "valid") // 2


def _grid(depth: int, padding: str) -> tuple[list[int], int]:
    """Where each level's cells start, modulo their size, and where output pixel 0 sits, in
    pixels of the read window: each unpadded convolution moves its output one cell in."""
    shift = 1 if padding == "valid" else 0
    anchors, origin = [], 0
    for level in range(depth):  # contracting path, down to the bottom
        anchors.append(origin % 2**level)
        origin += _CONVS * shift * 2**level
    for level in reversed(range(depth - 1)):  # expanding path; a skip crop moves nothing
        origin += _CONVS * shift * 2**level
    return anchors, origin


def _reads(pixel: int, depth: int, padding: str) -> tuple[int, int]:
    """First and last window pixel that the output at window pixel ``pixel`` reads, through
    every path of the network, including the input of every convolution on the way.

    A feature at level ``l`` is a cell of ``2 ** l`` pixels; intervals are (first, last)
    cell starts. A 3x3 convolution reads one cell either side, a 2x2 pooling the two cells
    it covers, an up-convolution the cell of the coarser grid that holds it; the skip
    connection reads the same cells (the crop of the valid network only realigns them).
    """
    anchors, _ = _grid(depth, padding)
    hull = [pixel, pixel]

    def convs(level: int, first: int, last: int) -> tuple[int, int]:
        for _ in range(_CONVS):
            first, last = first - 2**level, last + 2**level
            hull[0], hull[1] = min(hull[0], first), max(hull[1], last + 2**level - 1)
        return first, last

    def contracting(level: int, first: int, last: int) -> None:
        first, last = convs(level, first, last)
        if level:  # through the 2x2 pooling
            contracting(level - 1, first, last + 2 ** (level - 1))

    def expanding(level: int, first: int, last: int) -> None:
        if level == depth - 1:
            contracting(level, first, last)
            return
        first, last = convs(level, first, last)
        contracting(level, first, last)  # the skip connection
        cell, anchor = 2 ** (level + 1), anchors[level + 1]  # through the up-convolution
        expanding(level + 1, first - (first - anchor) % cell, last - (last - anchor) % cell)

    expanding(0, pixel, pixel)
    return hull[0], hull[1]


def margins(depth: int = 5, padding: str = "valid") -> tuple[int, int]:
    """Context (before, after) per axis that makes a tile's output equal the whole-image pass.

    The contract: a read window of a valid input length ``n`` that starts on the whole pass's
    pooling grid (a multiple of :func:`step` from its first pixel) gives exactly the whole
    pass's values at window pixels ``[before, n - after)``, and not at ``before - 1`` or
    ``n - after`` (the margins are minimal). So a tiler mirror-pads the volume by ``before``
    at its start (and enough at its end); a tile writing image pixels ``[o, o + w)``, with
    ``o`` a multiple of the step, reads padded pixels ``[o, o + n)``, ``n`` the smallest
    valid input >= ``before + w + after`` (more context at the end is harmless), and keeps
    output pixels ``[before, before + w)`` (same padding) or ``[0, w)`` (valid: the output
    starts there). The result is one pass over the whole padded volume, cropped.

    Valid padding gives (halo, halo). Same padding gives what every phase of the pooling
    grid needs: the read interval of one pooling period of output pixels, rounded to the
    first position on each side from which every phase is covered.
    """
    _check_config(depth, padding)
    s, first = step(depth), _smallest_input(depth, padding)
    _, origin = _grid(depth, padding)
    before, after = origin, _shrink(depth, padding) - origin
    for pixel in range(origin, origin + s):
        lo, hi = _reads(pixel, depth, padding)
        before = max(before, _threshold(pixel, pixel - lo, s))
        # distance to the window's last pixel; valid lengths n are all = first (mod s)
        after = max(after, _threshold((first - 1 - pixel) % s, hi - pixel, s))
    return before, after


def _threshold(phase: int, need: int, s: int) -> int:
    """Smallest m such that every position q >= m with q = phase (mod s) has q >= need."""
    return need + (phase - need) % s - s + 1


def output_shape(shape: tuple[int, ...], depth: int = 5, padding: str = "valid") -> tuple[int, ...]:
    """:func:`output_size` applied to every spatial axis of ``shape``."""
    return tuple(output_size(s, depth, padding) for s in shape)


def input_shape(shape: tuple[int, ...], depth: int = 5, padding: str = "valid") -> tuple[int, ...]:
    """:func:`input_size` applied to every spatial axis of ``shape``."""
    return tuple(input_size(s, depth, padding) for s in shape)


def tile_sizes(wanted: int = 572, depth: int = 5, padding: str = "valid") -> tuple[int, int]:
    """(input, output) size of a tile: the largest valid input <= ``wanted`` (the smallest
    valid input if none is) and its output."""
    size = valid_inputs_near(wanted, depth, padding)[0] or _smallest_input(depth, padding)
    return size, output_size(size, depth, padding)
