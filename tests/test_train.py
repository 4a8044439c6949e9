"""Training: the loss, exact resume after SIGKILL, validation, bad input, the workflow rule."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from conftest import REPO, run_snakemake

from unet.cache import load_training, write_block
from unet.cli import main
from unet.model import UNet, load_checkpoint
from unet.train_state import load
from unet.trainer import TrainConfig, lr_factor, weighted_cross_entropy

TINY = ["--base-channels", "2", "--depth", "2", "--threads", "1", "--no-progress"]
FLY = ["--tile", "60", "--per-block", "8"]  # depth 2: 60 -> 44
CACHE_TILE = dict(tile_in=(60, 60), tile_out=(44, 44))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic store (6 slices of 64^2: 5 train, 1 val), its weights, 2 blocks."""
    root = tmp_path_factory.mktemp("train-data")
    assert main(["fetch", "synthetic", "--out", str(root), "--slices", "6", "--size", "64",
                 "--cell-diameter", "12", "--no-progress"]) == 0  # fmt: skip
    store, weights = root / "synthetic.zarr", root / "synthetic.weights.zarr"
    assert main(["weights", str(store), "--out", str(weights)]) == 0
    training = load_training(store, weights)
    blocks = [write_block(training, root / f"block-{b}.zarr", block=b, n=8, seed=0,
                          **CACHE_TILE) for b in range(2)]  # fmt: skip
    return {"store": store, "weights": weights, "blocks": blocks, "root": root}


def _train(data, out: Path, *flags: str) -> int:
    return main(["train", str(data["store"]), str(data["weights"]), "--out", str(out),
                 *TINY, *flags])  # fmt: skip


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --- the loss and the schedule -----------------------------------------------------------


def test_weight_zero_leaves_a_pixel_out_of_the_loss_and_its_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, 6, 7, generator=gen, requires_grad=True)
    target = torch.randint(0, 2, (1, 6, 7), generator=gen)
    weight = torch.rand(1, 6, 7, generator=gen) + 0.5
    weight[0, :2] = 0  # two ignored rows
    loss = weighted_cross_entropy(logits, target, weight)
    log_p = torch.log_softmax(logits.detach().double(), 1).gather(1, target[:, None])[:, 0]
    reference = (-(weight.double() * log_p)).sum() / target.numel()  # eq. 1 / pixel count
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[:, :, :2] == 0) and torch.all(logits.grad[:, :, 2:] != 0)
    flipped = target.clone()
    flipped[0, :2] = 1 - flipped[0, :2]  # other labels where the weight is 0: same loss
    assert weighted_cross_entropy(logits, flipped, weight).item() == loss.item()


def test_all_ignored_tile_gives_no_gradient_to_the_model() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=2, depth=2, dropout=0.0)
    raw = torch.rand(1, 1, 60, 60)
    loss = weighted_cross_entropy(model(raw), torch.ones(1, 44, 44, dtype=torch.long),
                                  torch.zeros(1, 44, 44))  # fmt: skip
    loss.backward()
    assert loss.item() == 0 and all(torch.all(p.grad == 0) for p in model.parameters())


def test_schedule_warms_up_then_decays_to_min_lr() -> None:
    cfg = TrainConfig(iterations=110, lr=0.1, min_lr=0.001, warmup=10, schedule="cosine")
    factors = [lr_factor(cfg, s) for s in range(cfg.iterations)]
    assert factors[:3] == pytest.approx([0.1, 0.2, 0.3]) and factors[9] == 1.0
    assert factors[10] == 1.0 and lr_factor(cfg, 110) == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    poly = TrainConfig(iterations=10, lr=1.0, warmup=0, schedule="poly")
    assert lr_factor(poly, 5) == pytest.approx(0.5**0.9)
    assert lr_factor(TrainConfig(schedule="constant", warmup=0), 999) == 1.0


# --- a run: loss, validation, checkpoints --------------------------------------------------


def test_loss_decreases_and_outputs_hold_what_predict_needs(data, tmp_path) -> None:
    out = tmp_path / "run"
    flags = ["--iterations", "160", "--optimizer", "adam", "--lr", "0.01", "--warmup", "5",
             "--schedule", "cosine", "--validate-every", "40", "--val-tile", "32",
             "--blocks", *map(str, data["blocks"])]  # fmt: skip
    assert _train(data, out, *flags) == 0
    outputs = ["best.pt", "curve.png", "last.pt", "validation.csv"]
    assert sorted(p.name for p in out.iterdir()) == outputs  # resume/ is gone
    last = torch.load(out / "last.pt", weights_only=True)
    losses = [v for _, v in last["history"]["loss"]]
    assert len(losses) == 160 and np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])
    rows = _csv(out / "validation.csv")
    assert [int(r["iteration"]) for r in rows] == [40, 80, 120, 160]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    rand = [float(r["rand_error"]) for r in rows]
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["iteration"] == 40 * (1 + int(np.argmin(rand)))
    assert last["iteration"] == last["position"] == 160
    assert last["normalization"] == {"kind": "dtype"}
    assert set(last) >= {"config", "state_dict", "optimizer", "scheduler", "rng", "signature"}
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python"}
    model = load_checkpoint(out / "best.pt")  # rebuilt from the file alone
    assert model.config["base_channels"] == 2 and model.config["depth"] == 2
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plateau_stops_early_and_still_writes_the_outputs(data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    flags = ["--blocks", *FLY, "--iterations", "100", "--optimizer", "adam", "--lr", "1e-12",
             "--validate-every", "10", "--patience", "2", "--val-tile", "32"]  # fmt: skip
    assert _train(data, out, *flags) == 0  # `--blocks` and nothing: tiles on the fly
    assert "early stop at iteration 30: no better Rand error in 2 validations" in (
        capsys.readouterr().out)  # fmt: skip
    assert [int(r["iteration"]) for r in _csv(out / "validation.csv")] == [10, 20, 30]
    assert torch.load(out / "last.pt", weights_only=True)["iteration"] == 30
    assert torch.load(out / "best.pt", weights_only=True)["iteration"] == 10


_RUN = """
import sys
from unet.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_sigkilled_run_resumes_bit_identical(data, tmp_path) -> None:
    """A real process, SIGKILLed after its first checkpoints, resumed by the same command:
    the weights (and optimizer state) equal those of an uninterrupted run bit for bit."""
    flags = [*TINY, *FLY, "--iterations", "150", "--optimizer", "sgd", "--lr", "0.01",
             "--warmup", "20", "--checkpoint-every", "20", "--validate-every", "60",
             "--val-tile", "32", "--seed", "3"]  # fmt: skip
    args = [str(data["store"]), str(data["weights"]), *flags]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    command = [sys.executable, "-c", _RUN, *args, "--out"]
    proc = subprocess.Popen([*command, str(killed)])
    state, deadline = killed / "resume" / "state.pt", time.monotonic() + 120
    while not state.is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = load(state)["iteration"]
    assert 20 <= at < 150 and not (killed / "last.pt").exists()
    assert main(["train", *args, "--out", str(whole)]) == 0  # uninterrupted, in this process
    resumed = subprocess.run([*command, str(killed)], check=True, capture_output=True,
                             text=True)  # fmt: skip
    assert f"resuming from {state} at iteration {at}" in resumed.stdout
    a = torch.load(whole / "last.pt", weights_only=True)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    momentum = [(a["optimizer"]["state"][k], b["optimizer"]["state"][k])
                for k in a["optimizer"]["state"]]  # fmt: skip
    assert all(torch.equal(x["momentum_buffer"], y["momentum_buffer"]) for x, y in momentum)

    def rows(run: Path) -> list[dict[str, str]]:  # all but the wall time
        return [
            {k: v for k, v in r.items() if k != "elapsed_s"} for r in _csv(run / "validation.csv")
        ]

    assert rows(whole) == rows(killed) and len(rows(whole)) == 3


def test_non_finite_loss_names_the_iteration_and_the_last_good_checkpoint(
    data, tmp_path, capsys
) -> None:
    block = write_block(load_training(data["store"], data["weights"]), tmp_path / "b.zarr",
                        block=0, n=8, seed=0, **CACHE_TILE)  # fmt: skip
    zarr.open_group(str(block), mode="r+")["raw"][5] = np.float32(3e38)  # overflows to inf
    capsys.readouterr()
    out = tmp_path / "run"
    flags = ["--blocks", str(block), "--iterations", "20", "--checkpoint-every", "2",
             "--validate-every", "0"]  # fmt: skip
    assert _train(data, out, *flags) == 2
    err = capsys.readouterr().err.strip()
    state = out / "resume" / "state.pt"
    assert len(err.splitlines()) == 1 and "iteration 6: training loss is nan" in err
    assert f"last good checkpoint: {state} (iteration 4)" in err
    assert load(state)["iteration"] == 4 and not (out / "last.pt").exists()
    assert not (out / "best.pt").exists()


# --- bad input ------------------------------------------------------------------------------

BAD = ["other model", "corrupt state", "missing block", "block without weight",
       "block for another model", "block of the old normalisation", "weights of another store",
       "bad setting", "no such device"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_no_checkpoint(data, tmp_path, capsys, case) -> None:
    out, flags = tmp_path / "run", ["--iterations", "4", "--validate-every", "0"]
    blocks = [str(b) for b in data["blocks"]]
    weights = data["weights"]
    if case in ("other model", "corrupt state"):
        assert _train(data, tmp_path / "done", *flags, *FLY) == 0
        (out / "resume").mkdir(parents=True)
        if case == "other model":
            shutil.copy(tmp_path / "done" / "last.pt", out / "resume" / "state.pt")
            flags += ["--base-channels", "3"]
        else:
            (out / "resume" / "state.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
        flags += FLY
    elif case == "missing block":
        flags += ["--blocks", blocks[0], str(tmp_path / "block-9.zarr")]
    else:
        broken = tmp_path / "block.zarr"
        shutil.copytree(blocks[0], broken)
        group = zarr.open_group(str(broken), mode="r+")
        if case == "block without weight":
            shutil.rmtree(broken / "weight")
        elif case == "block of the old normalisation":
            group.attrs["normalization"] = "per-slice min-max to [0, 1]"
        elif case == "block for another model":
            flags += ["--depth", "3"]
        flags += ["--blocks", str(broken)]
    if case == "weights of another store":
        weights = tmp_path / "other.weights.zarr"
        zarr.open_group(str(weights), mode="w").create_array("weights", shape=(6, 64, 60),
                                                             dtype="float32")  # fmt: skip
    if case == "bad setting":
        flags += ["--lr", "-1"]
    if case == "no such device":
        flags += ["--device", "cuda:7" if not torch.cuda.is_available() else "mps:3"]
    code = main(["train", str(data["store"]), str(weights), "--out", str(out), *TINY, *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    expected = {
        "other model": "other settings (model.base_channels 2 -> 3)",
        "corrupt state": "not a readable training checkpoint",
        "missing block": "block-9.zarr: no such store",
        "block without weight": "missing array(s) ['weight']",
        "block for another model": "do not fit the model",
        "block of the old normalisation": "normalised as 'per-slice min-max",
        "weights of another store": "weights has shape (6, 64, 60), expected (6, 64, 64)",
        "bad setting": "lr=-1.0",
        "no such device": "not available on this machine",
    }[case]
    assert expected in err
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
    if case in ("other model", "corrupt state"):  # the state is left for the user to judge
        assert (out / "resume" / "state.pt").is_file()


def test_normalize_flag_reaches_the_cache_block_and_the_checkpoint(data, tmp_path, capsys) -> None:
    block, spec = tmp_path / "block-0.zarr", "percentile:2:98:clip"
    files = [str(data["store"]), str(data["weights"])]
    assert main(["augment", *files, "--out", str(block), "--block", "0", "--n", "4",
                 "--tile", "60", "--depth", "2", "--normalize", spec]) == 0  # fmt: skip
    expected = {"kind": "percentile", "low": 2.0, "high": 98.0, "clip": True}
    attrs = zarr.open_group(str(block), mode="r").attrs
    raw = np.asarray(zarr.open_group(str(data["store"]), mode="r")["raw"], dtype=np.float64)
    assert attrs["normalization"] == expected
    low, high = np.percentile(raw, [2, 98])  # of the store's whole raw (it is small)
    assert attrs["scaling"] == {"low": low, "high": high, "clip": True}
    flags = ["--iterations", "2", "--validate-every", "0", "--blocks", str(block)]
    assert _train(data, tmp_path / "run", *flags, "--normalize", spec) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["normalization"] == expected
    capsys.readouterr()
    assert _train(data, tmp_path / "dtype", *flags) == 2  # the default, dtype: refused
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "normalised as {'kind': 'percentile'" in err, err
    assert not (tmp_path / "dtype" / "last.pt").exists()
    assert _train(data, tmp_path / "bad", *flags, "--normalize", "percentile:1") == 2
    assert "--normalize 'percentile:1': expected dtype" in capsys.readouterr().err


# --- presets and the workflow ------------------------------------------------------------


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_config_yaml_is_the_smoke_preset_and_presets_are_complete(repo) -> None:
    config = _yaml(repo / "config.yaml")
    presets = {name: _yaml(repo / "presets" / f"{name}.yaml") for name in ("smoke", "cpu", "paper")}
    for section in ("model", "augment", "train"):
        assert config[section] == {k: presets["smoke"][section][k] for k in config[section]}
    keys = set(TrainConfig().identity()) | {"amp"}
    for name, preset in presets.items():  # complete sections: nothing leaks from config.yaml
        assert set(preset["train"]) == keys, name
        assert {"base_channels", "depth", "padding", "dropout"} <= set(preset["model"]), name
        assert {"cache", "blocks", "per_block", "tile"} <= set(preset["augment"]), name
    paper = presets["paper"]
    assert TrainConfig().identity() == {k: v for k, v in paper["train"].items() if k != "amp"}
    assert (paper["model"]["base_channels"], paper["model"]["depth"]) == (64, 5)
    assert paper["augment"]["tile"] == 572 and paper["model"]["padding"] == "valid"
    assert (paper["train"]["optimizer"], paper["train"]["momentum"]) == ("sgd", 0.99)


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_presets_pass_the_schema_and_reach_the_train_command(repo, tmp_path, preset) -> None:
    plan = run_snakemake(tmp_path, "-n", "-p", configfiles=(repo / "presets" / f"{preset}.yaml",))
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    train = _yaml(repo / "presets" / f"{preset}.yaml")["train"]
    assert f"--optimizer {train['optimizer']} --lr {train['lr']} " in out
    assert f"--iterations {train['iterations']} " in out


SMALL = (
    "synthetic: {slices: 6, size: 96, cell_diameter: 14.0}\n"
    "augment: {blocks: 2, per_block: 8}\n"
    "train: {iterations: %d, validate_every: 40, checkpoint_every: 20}\n"
    "evaluate: {metrics: [pixel, rand, warping]}\n"
)


def test_rule_trains_the_chain_and_a_killed_rerun_resumes(repo, tmp_path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(SMALL % 120)
    presets = (repo / "presets" / "smoke.yaml", small)
    run = run_snakemake(tmp_path, "results/eval/synthetic.json", configfiles=presets)
    assert run.returncode == 0, run.stderr[-3000:]
    train = tmp_path / "results" / "train" / "synthetic"
    outputs = ["best.pt", "curve.png", "last.pt", "validation.csv"]
    assert sorted(p.name for p in train.iterdir()) == outputs
    log = (tmp_path / "results" / "logs" / "train" / "synthetic.log").read_text()
    assert "validation at iteration 120" in log and ("it/s" in log or "s/it" in log)
    rows = {int(r["iteration"]): r for r in _csv(train / "validation.csv")}
    best = torch.load(train / "best.pt", weights_only=True)
    report = json.loads((tmp_path / "results" / "eval" / "synthetic.json").read_text())
    for name in ("pixel_error", "rand_error", "warping_error"):  # predict + evaluate agree
        got = report["metrics"][name]["value"]
        assert math.isclose(got, float(rows[best["iteration"]][name]), rel_tol=1e-5), name
    reference = _state(train / "last.pt")
    # the same job again, killed (Snakemake and the job) after a checkpoint, then rerun
    cmd = ["snakemake", str(train.relative_to(tmp_path) / "best.pt"), "--forcerun", "train",
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores",
           "2", "--configfile", str(REPO / "config.yaml"), *map(str, presets)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    state, deadline = train / "resume" / "state.pt", time.monotonic() + 300
    while not state.is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (train / "last.pt").exists()
    assert run_snakemake(tmp_path, "--unlock", configfiles=presets).returncode == 0
    again = run_snakemake(tmp_path, str(train.relative_to(tmp_path) / "best.pt"),
                          configfiles=presets)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    log = (tmp_path / "results" / "logs" / "train" / "synthetic.log").read_text()
    assert f"resuming from {state.relative_to(tmp_path)} at iteration" in log
    resumed = _state(train / "last.pt")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
