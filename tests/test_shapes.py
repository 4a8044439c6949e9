"""Shape arithmetic against real forward passes and the paper's numbers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unet import shapes
from unet.model import UNet


def test_paper_numbers() -> None:
    assert shapes.output_size(572) == 388
    assert shapes.input_size(388) == 572
    assert shapes.halo() == 92
    assert shapes.step() == 16
    assert shapes.valid_inputs_near(572) == (572, 572)
    assert shapes.valid_inputs_near(571) == (556, 572)
    assert shapes.input_size(380) == 572  # smallest input whose output covers 380
    assert shapes.halo(1) == 2 and shapes.halo(2) == 8 and shapes.halo(3) == 20


def test_valid_input_sizes_are_the_paper_lattice() -> None:
    valid = [s for s in range(1, 700) if shapes.is_valid_input(s)]
    assert valid == list(range(188, 700, 16))
    assert all(shapes.output_size(s) == s - 184 for s in valid)


def test_invalid_size_message_names_size_and_neighbours() -> None:
    with pytest.raises(ValueError, match=r"input size 100 is invalid .* nearest valid sizes: 188$"):
        shapes.output_size(100)
    with pytest.raises(ValueError, match=r"input size 50 .* same padding.*: 48 or 64"):
        shapes.output_size(50, depth=5, padding="same")
    with pytest.raises(ValueError, match="padding must be one of"):
        shapes.output_size(572, padding="reflect")


@settings(max_examples=40, deadline=None)
@given(
    depth=st.integers(1, 4),
    padding=st.sampled_from(["valid", "same"]),
    size=st.integers(1, 140),
)
def test_shape_functions_agree_with_forward_passes(depth: int, padding: str, size: int) -> None:
    net = UNet(base_channels=1, depth=depth, padding=padding, dropout=0.0).eval()
    x = torch.zeros(1, 1, size, shapes.valid_inputs_near(32, depth, padding)[1])
    if not shapes.is_valid_input(size, depth, padding):
        with pytest.raises(ValueError, match=f"input size {size} is invalid"):
            net(x)
        return
    with torch.no_grad():
        out = net(x)
    assert out.shape[2] == shapes.output_size(size, depth, padding)
    need = shapes.input_size(out.shape[2], depth, padding)
    assert need <= size and shapes.output_size(need, depth, padding) == out.shape[2]
    if padding == "valid":
        assert size - out.shape[2] == 2 * shapes.halo(depth)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 6), out=st.integers(1, 2000))
def test_input_size_is_the_smallest_cover(depth: int, out: int) -> None:
    size = shapes.input_size(out, depth)
    assert shapes.output_size(size, depth) >= out
    lower = shapes.valid_inputs_near(size - 1, depth)[0]
    assert lower is None or shapes.output_size(lower, depth) < out
