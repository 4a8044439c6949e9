"""The paper's network: shapes, parameter count, init statistics, options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unet import shapes
from unet.errors import InputError
from unet.model import UNet, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def paper_net() -> UNet:
    torch.manual_seed(0)
    return UNet()


def test_paper_parameter_count_and_layers(paper_net: UNet) -> None:
    assert sum(p.numel() for p in paper_net.parameters()) == 31_030_658
    convs = [m for m in paper_net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(convs) == 23
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in convs) == 4
    widths = [block[0].out_channels for block in paper_net.encoder]
    assert widths == [64, 128, 256, 512, 1024]
    assert paper_net.head.kernel_size == (1, 1) and paper_net.head.out_channels == 2


def test_paper_tile_572_gives_388(paper_net: UNet) -> None:
    with torch.no_grad():
        out = paper_net.eval()(torch.zeros(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert paper_net.halo == 92 and paper_net.step == 16


def test_he_normal_init_matches_sqrt_2_over_fan_in(paper_net: UNet) -> None:
    # 3x3 conv with 64 inputs: N = 9 * 64 = 576 (the paper's example).
    conv = paper_net.encoder[0][2]
    assert conv.in_channels == 64
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.02)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.002)
    deep = paper_net.encoder[4][0]  # 3x3, 512 -> 1024: N = 4608
    assert deep.weight.std().item() == pytest.approx(math.sqrt(2 / 4608), rel=0.01)
    up = paper_net.up[0]  # 2x2 stride 2: each output sees one input per channel, N = 1024
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.01)
    assert all(torch.all(m.bias == 0) for m in paper_net.modules() if isinstance(m, nn.Conv2d))


def test_dropout_only_in_training_and_at_the_contracting_end() -> None:
    torch.manual_seed(1)
    net = UNet(base_channels=4, depth=3)
    x = torch.randn(1, 1, 92, 92)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))
    assert net.dropout_levels == {1, 2}
    assert UNet(base_channels=4, depth=3, dropout=0.0).dropout_levels == set()


def test_3d_shapes() -> None:
    net = UNet(base_channels=2, depth=3, dims=3).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 44, 60, 76))
    assert out.shape == (1, 2, 4, 20, 36)
    assert net.output_shape((44, 60, 76)) == (4, 20, 36)


@pytest.mark.parametrize("norm", [None, "batch", "group"])
def test_same_padding_keeps_shape(norm: str | None) -> None:
    net = UNet(in_channels=3, num_classes=4, base_channels=8, depth=4, padding="same", norm=norm)
    with torch.no_grad():
        out = net.eval()(torch.randn(2, 3, 48, 64))
    assert out.shape == (2, 4, 48, 64)


def test_backward_pass_gives_finite_gradients() -> None:
    torch.manual_seed(2)
    net = UNet(base_channels=4, depth=3)
    x = torch.randn(1, 1, 92, 92)
    target = torch.randint(0, 2, (1, 52, 52))
    loss = nn.functional.cross_entropy(net(x), target)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.encoder[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 1, 571, 572), r"input size 571 is invalid .* nearest valid sizes: 556 or 572"),
        ((1, 3, 572, 572), r"expected input of shape \(N, 1, size, size\), got \(1, 3, 572, 572\)"),
        ((1, 572, 572), r"expected input of shape"),
    ],
)
def test_bad_input_shape_raises_naming_it(shape: tuple[int, ...], match: str) -> None:
    net = UNet(base_channels=1)
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(shape))


@pytest.mark.parametrize(
    "kwargs",
    [dict(padding="full"), dict(dims=4), dict(norm="layer"), dict(depth=0), dict(dropout=1.0)],
)
def test_bad_constructor_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        UNet(**kwargs)


def test_checkpoint_rebuilds_model_from_file_alone(tmp_path) -> None:
    torch.manual_seed(3)
    net = UNet(base_channels=4, depth=3, padding="same", norm="group").eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, net, epoch=7)
    again = load_checkpoint(path).eval()
    assert again.config == net.config
    x = torch.randn(1, 1, 32, 32)
    assert torch.equal(net(x), again(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_corrupt_checkpoint_is_a_value_error(tmp_path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt: not a U-Net checkpoint"):
        load_checkpoint(path)


def test_group_norm_takes_any_channel_count() -> None:
    net = UNet(base_channels=12, depth=3, padding="same", norm="group")
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert {(m.num_groups, m.num_channels) for m in norms} >= {(4, 12), (8, 24), (16, 48)}
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("norm", [None, "batch", "group"])
def test_only_group_norm_is_refused_for_tiling(norm: str | None) -> None:
    """A tile with the margins equals the whole pass, except with GroupNorm, whose
    statistics span the whole tile; BatchNorm in eval mode uses its running statistics."""
    torch.manual_seed(4)
    net = UNet(base_channels=4, depth=3, padding="same", dropout=0.0, norm=norm).double()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    before, after = shapes.margins(3, "same")
    n = shapes.valid_inputs_near(before + after + 8, 3, "same")[1]
    x = torch.randn(1, 1, n + 8, 32, dtype=torch.float64)
    with torch.no_grad():
        whole = net(x)[0, :, 4 + before : 4 + n - after]
        tile = net(x[:, :, 4 : 4 + n])[0, :, before : n - after]
    if norm == "group":
        assert (tile - whole).abs().max() > 1e-3
        with pytest.raises(InputError, match=r"norm='group' cannot be tiled: GroupNorm statistics"):
            net.check_tileable()
    else:
        torch.testing.assert_close(tile, whole, rtol=0, atol=1e-10)
        net.check_tileable()
