"""Shape arithmetic of the U-Net, used by the model checks, the tile sampler and the tiler.

Every function takes the model configuration that decides shapes (``depth`` levels and
``padding``) and works on one spatial axis; apply it per axis for 2-D or 3-D shapes.

For ``padding="valid"`` (the paper), each level of the contracting path applies two
unpadded 3x3 convolutions (-4 pixels) and a 2x2 max pooling (which needs an even size),
and each level of the expansive path doubles the size and applies two convolutions again.
With the default depth of 5 a 572 input gives a 388 output, and the halo (context per
side) is 92. For ``padding="same"`` the output equals the input, which must be divisible
by ``2 ** (depth - 1)``; the halo is still the context of the valid network, which is the
margin a tiler needs so that every written pixel has its full receptive field inside the
read window.
"""

from __future__ import annotations

from unet.errors import InputError

PADDINGS = ("valid", "same")
_CONV_LOSS = 4  # two unpadded 3x3 convolutions per level


def _check_config(depth: int, padding: str) -> None:
    if not isinstance(depth, int) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}")
    if padding not in PADDINGS:
        raise InputError(f"padding must be one of {PADDINGS}, got {padding!r}")


def step(depth: int = 5) -> int:
    """The pooling factor ``2 ** (depth - 1)``: tile origins must move in multiples of it."""
    _check_config(depth, "valid")
    return 2 ** (depth - 1)


def _valid_output(size: int, depth: int) -> int | None:
    """Output size of the valid network, or None if some layer sees an invalid size."""
    for _ in range(depth - 1):
        size -= _CONV_LOSS
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= _CONV_LOSS
    if size <= 0:
        return None
    for _ in range(depth - 1):
        size = 2 * size - _CONV_LOSS
        if size <= 0:
            return None
    return size


def _valid_input(out: int, depth: int) -> int | None:
    """Input size that the valid network maps to ``out``, or None if there is none."""
    size = out
    for _ in range(depth - 1):
        size += _CONV_LOSS
        if size % 2:
            return None
        size //= 2
    if size <= 0:
        return None
    size += _CONV_LOSS
    for _ in range(depth - 1):
        size = 2 * size + _CONV_LOSS
    return size


def is_valid_input(size: int, depth: int = 5, padding: str = "valid") -> bool:
    """Whether every layer of the network sees a valid size for this input size."""
    _check_config(depth, padding)
    if padding == "same":
        return size > 0 and size % step(depth) == 0
    return _valid_output(size, depth) is not None


def valid_inputs_near(size: int, depth: int = 5, padding: str = "valid") -> tuple[int | None, int]:
    """The largest valid input size <= ``size`` (None if none) and the smallest >= ``size``."""
    _check_config(depth, padding)
    lower = next((s for s in range(size, 0, -1) if is_valid_input(s, depth, padding)), None)
    upper = next(
        s
        for s in range(max(size, 1), size + 10 * step(depth) + 200)
        if is_valid_input(s, depth, padding)
    )
    return lower, upper


def _raise_invalid(size: int, depth: int, padding: str) -> None:
    lower, upper = valid_inputs_near(size, depth, padding)
    near = f"{lower} or {upper}" if lower is not None else f"{upper}"
    raise InputError(
        f"input size {size} is invalid for a U-Net of depth {depth} with {padding} padding "
        f"(every 2x2 max pooling needs an even size); nearest valid sizes: {near}"
    )


def output_size(size: int, depth: int = 5, padding: str = "valid") -> int:
    """Output size for an input size; raises ValueError naming the nearest valid sizes."""
    if not is_valid_input(size, depth, padding):
        _raise_invalid(size, depth, padding)
    if padding == "same":
        return size
    out = _valid_output(size, depth)
    assert out is not None
    return out


def input_size(out: int, depth: int = 5, padding: str = "valid") -> int:
    """Smallest input size whose output covers at least ``out`` pixels."""
    _check_config(depth, padding)
    if out < 1:
        raise InputError(f"output size must be >= 1, got {out}")
    if padding == "same":
        return -(-out // step(depth)) * step(depth)
    candidate = out
    while (size := _valid_input(candidate, depth)) is None:
        candidate += 1
    return size


def halo(depth: int = 5) -> int:
    """Context per side that an output pixel needs: (input - output) / 2 of the valid network."""
    size = valid_inputs_near(1, depth, "valid")[1]
    out = _valid_output(size, depth)
    assert out is not None
    return (size - out) // 2


def output_shape(shape: tuple[int, ...], depth: int = 5, padding: str = "valid") -> tuple[int, ...]:
    """:func:`output_size` applied to every spatial axis of ``shape``."""
    return tuple(output_size(s, depth, padding) for s in shape)


def input_shape(shape: tuple[int, ...], depth: int = 5, padding: str = "valid") -> tuple[int, ...]:
    """:func:`input_size` applied to every spatial axis of ``shape``."""
    return tuple(input_size(s, depth, padding) for s in shape)


def tile_sizes(wanted: int = 572, depth: int = 5, padding: str = "valid") -> tuple[int, int]:
    """(input, output) size of a tile: the largest valid input <= ``wanted`` (the smallest
    valid input if none is) and its output."""
    size = valid_inputs_near(wanted, depth, padding)[0] or input_size(1, depth, padding)
    return size, output_size(size, depth, padding)
