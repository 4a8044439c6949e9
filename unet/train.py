"""``unet train``: the training stage, resumable, validated, with its outputs in one folder.

A run in ``OUT`` keeps its state in ``OUT/resume``: ``state.pt``, the full training state
(:mod:`unet.train_state`) written atomically every ``checkpoint_every`` iterations and after
every validation, and ``best-K.pt``, the state at iteration K, the best Rand error so far.
A rerun with the same settings resumes from ``state.pt`` (bit-identically on the CPU);
other settings are refused unless ``restart``. Every ``validate_every`` iterations the val
slices are scored (:mod:`unet.validate`) and ``OUT/validation.csv`` and ``OUT/curve.png``
(loss and validation metrics against iteration) are rewritten; with ``patience`` the run
stops early after that many validations without a better Rand error. At the end
``OUT/last.pt`` and ``OUT/best.pt`` are written and ``OUT/resume`` is removed.

A workflow manager deletes the declared outputs of a killed job before rerunning it; the
resume state lies beside them, so the rerun continues from the last checkpoint. A
non-finite loss stops the run with an error naming the iteration and the last good
checkpoint; nothing is written for that iteration.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unet import train_data, train_state, validate
from unet.cache import load_training
from unet.errors import InputError
from unet.io import atomic_output
from unet.trainer import LOSS_POINTS, TrainConfig, Trainer, amp_dtype, resolve_device

OUTPUTS = {"best": "best.pt", "last": "last.pt", "csv": "validation.csv", "curve": "curve.png"}


def run(store: str | Path, weights: str | Path, out: str | Path, model_config: dict[str, Any],
        source: train_data.Source, cfg: TrainConfig, log: Callable[[str], Any] = print,
        curve: Callable[..., Any] | None = None,
        normalization: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Train (or resume training) into ``out`` (see the module docstring); returns a summary.

    ``curve(loss, rows, path, best=...)`` draws the training-curve PNG
    (:func:`unet.figures.training_curve`; the command line passes it); None: no PNG.
    ``normalization``: the :mod:`unet.normalize` definition of the raw data (None: dtype);
    cache blocks must have been written with the same one."""
    import numpy as np

    from unet.model import UNet

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; expected a folder")
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_training(store, weights, normalization)
    plan = train_data.plan(source, data, model_config)
    val = validate.load_val(store, weights) if cfg.validate_every else None
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)  # noqa: NPY002 (the legacy global state, checkpointed too)
    model = UNet(**model_config)
    signature = {"model": model.config, "train": cfg.identity(), "data": plan.signature}
    loop = Loop(out, Trainer(model, cfg, device), signature, data.normalization, log, curve)
    loop.resume_or_start()
    if cfg.validate_every and val is None:
        log(f"{store}: no validation slices (split['val'] is empty): validation skipped, "
            "best.pt is the last state")  # fmt: skip
    log(_describe(loop.trainer, plan, val, loop.iteration))
    tiles = train_data.samples(source, data, plan, start=loop.position)
    prefetch = train_data.Prefetcher(tiles, loop.position, model.config["num_classes"],
                                     pin=device.startswith("cuda"))  # fmt: skip
    try:
        loop.train(prefetch, val, data.scaling)
    finally:
        prefetch.close()
    return loop.finish()


class Loop:
    """The iterations of one run: resume, steps, validations, checkpoints, outputs."""

    def __init__(self, out: Path, trainer: Trainer, signature: dict[str, Any],
                 normalization: dict[str, Any], log: Callable[[str], Any],
                 curve: Callable[..., Any] | None = None) -> None:  # fmt: skip
        self.out, self.resume, self.curve = out, out / "resume", curve
        self.trainer, self.cfg, self.log = trainer, trainer.cfg, log
        self.signature, self.normalization = signature, normalization
        self.iteration = self.position = self.saved = 0
        self.elapsed, self.started = 0.0, time.perf_counter()
        self.history: dict[str, Any] = {"loss": [], "validation": [], "best": None,
                                        "since_best": 0, "stopped": None,
                                        "sums": {"point": [0.0, 0], "row": [0.0, 0]}}  # fmt: skip

    @property
    def state(self) -> Path:
        """The resume state file."""
        return self.resume / "state.pt"

    def _best_file(self, iteration: int) -> Path:
        return self.resume / f"best-{iteration}.pt"

    def resume_or_start(self) -> None:
        """Continue from ``resume/state.pt`` if there is one (same settings), else start."""
        if self.cfg.restart:
            shutil.rmtree(self.resume, ignore_errors=True)
        if not self.state.is_file():
            return
        payload = train_state.load(self.state)
        train_state.check_signature(self.state, payload["signature"], self.signature)
        t = self.trainer
        try:
            t.model.load_state_dict(payload["state_dict"])
            t.optimizer.load_state_dict(payload["optimizer"])
            t.scheduler.load_state_dict(payload["scheduler"])
        except (RuntimeError, KeyError, ValueError) as err:
            why = str(err).splitlines()[0]
            raise InputError(f"{self.state}: does not fit this model and optimizer ({why}); "
                             "pass --restart to start over") from err  # fmt: skip
        self.iteration, self.position = int(payload["iteration"]), int(payload["position"])
        self.saved, self.elapsed = self.iteration, float(payload.get("elapsed", 0.0))
        self.history = payload["history"]
        self._prune_best()
        train_state.restore_rng(payload["rng"])
        self.log(f"resuming from {self.state} at iteration {self.iteration}")

    def _prune_best(self) -> None:
        """Remove best-K.pt files the state does not name (left by a killed save)."""
        best = self.history["best"]
        keep = self._best_file(best["iteration"]).name if best else None
        for path in self.resume.glob("best-*.pt"):
            if path.name != keep:
                path.unlink(missing_ok=True)

    def train(self, prefetch: train_data.Prefetcher, val: validate.ValData | None,
              scaling: Any) -> None:  # fmt: skip
        """Steps until ``iterations`` (or an early stop), validating and checkpointing."""
        cfg, history = self.cfg, self.history
        every = max(1, cfg.iterations // LOSS_POINTS)
        self.started = time.perf_counter()
        with _progress(cfg, self.iteration) as bar:
            while self.iteration < cfg.iterations and not history["stopped"]:
                loss = self.trainer.step(*self.trainer.to_device(*prefetch.next()))
                if not math.isfinite(loss):
                    raise InputError(self._not_finite(loss))
                self.iteration += 1
                self.position += 1
                self._add_loss(loss, every)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.trainer.lr:.3g}", refresh=False)
                if val is not None and self._due(cfg.validate_every):
                    self._validate(val, scaling, bar)
                elif self._due(cfg.checkpoint_every):
                    self._save()

    def _due(self, every: int) -> bool:
        it = self.iteration
        return bool(every) and (it % every == 0 or it == self.cfg.iterations)

    def _not_finite(self, loss: float) -> str:
        where = (f"{self.state} (iteration {self.saved})" if self.saved
                 else "none (no checkpoint written yet)")  # fmt: skip
        return (f"iteration {self.iteration + 1}: training loss is {loss} (not finite); "
                f"last good checkpoint: {where}; expected a finite loss (lower lr? bad "
                "data?)")  # fmt: skip

    def _add_loss(self, loss: float, every: int) -> None:
        sums = self.history["sums"]
        for key in ("point", "row"):
            sums[key] = [sums[key][0] + loss, sums[key][1] + 1]
        if self.iteration % every == 0 or self.iteration == self.cfg.iterations:
            total, n = sums["point"]
            self.history["loss"].append([self.iteration, total / n])
            sums["point"] = [0.0, 0]

    def seconds(self) -> float:
        """Training wall time so far, over all resumed runs."""
        return self.elapsed + time.perf_counter() - self.started

    def _validate(self, val: validate.ValData, scaling: Any, bar: Any) -> None:
        cfg, history, t = self.cfg, self.history, self.trainer
        model = t.model if t.device == "cpu" else validate.OnDevice(t.model, t.device, t.amp)
        threads = torch.get_num_threads()
        t.model.eval()
        try:
            scores = validate.evaluate(model, val, scaling, cfg.val_tile, cfg.val_tta)
        finally:
            t.model.train()
            # numba's parallel warping error leaves the OpenMP thread count of this thread
            # changed; without a reset the next training steps ran ~100x slower (measured)
            torch.set_num_threads(threads)
        total, n = history["sums"]["row"]
        history["sums"]["row"] = [0.0, 0]
        row = {"iteration": self.iteration, "elapsed_s": round(self.seconds(), 1), "lr": t.lr,
               "train_loss": total / n if n else math.nan, **scores}  # fmt: skip
        history["validation"].append(row)
        best = history["best"]
        improved = best is None or scores["rand_error"] < best["rand_error"]
        if improved:
            history["best"] = {"iteration": self.iteration, "rand_error": scores["rand_error"]}
            history["since_best"] = 0
        else:
            history["since_best"] += 1
            if cfg.patience and history["since_best"] >= cfg.patience:
                history["stopped"] = (f"early stop at iteration {self.iteration}: no better "
                                      f"Rand error in {cfg.patience} validations")  # fmt: skip
        bar.write(_row_line(row, improved))
        self._save(best=improved)
        self._write_reports()

    def _save(self, best: bool = False) -> None:
        """Checkpoint the state (a new best first to its own file, then copied)."""
        t = self.trainer
        fields = dict(
            normalization=self.normalization, iteration=self.iteration, position=self.position,
            signature=self.signature, history=self.history, elapsed=self.seconds(),
        )  # fmt: skip
        target = self._best_file(self.iteration) if best else self.state
        train_state.save(target, t.model, t.optimizer, t.scheduler, **fields)
        if best:
            copy_atomic(target, self.state)
            self._prune_best()
        self.saved = self.iteration

    def _write_reports(self) -> None:
        validate.write_csv(self.out / OUTPUTS["csv"], self.history["validation"])
        best = self.history["best"]
        if self.curve is not None:
            self.curve(self.history["loss"], self.history["validation"],
                       self.out / OUTPUTS["curve"], best=best and best["iteration"])  # fmt: skip

    def finish(self) -> dict[str, Any]:
        """Write last.pt, best.pt, the CSV and the curve; remove the resume state."""
        if self.saved != self.iteration or not self.state.is_file():
            self._save()
        best = self.history["best"]
        best_file = self._best_file(best["iteration"]) if best else self.state
        copy_atomic(self.state, self.out / OUTPUTS["last"])
        copy_atomic(best_file, self.out / OUTPUTS["best"])
        self._write_reports()
        shutil.rmtree(self.resume, ignore_errors=True)
        if self.history["stopped"]:
            self.log(self.history["stopped"])
        rows = self.history["validation"]
        return {"iterations": self.iteration, "seconds": self.seconds(),
                "best": best, "last": rows[-1] if rows else None,
                "outputs": {k: str(self.out / v) for k, v in OUTPUTS.items()}}  # fmt: skip


def _row_line(row: dict[str, Any], improved: bool) -> str:
    best = " (best)" if improved else ""
    return (f"validation at iteration {row['iteration']}: loss {row['val_loss']:.4f}, "
            f"pixel error {row['pixel_error']:.4f}, Rand error {row['rand_error']:.4f}, "
            f"warping error {row['warping_error']:.6f}{best}")  # fmt: skip


class _Lines:
    """A stream for tqdm that puts every update on its own line (for log files)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _progress(cfg: TrainConfig, initial: int) -> Any:
    """The progress bar (iteration, loss, it/s, ETA): live on a terminal, a line every
    30 s in a log file."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=cfg.iterations, initial=initial, desc="train", unit="it",
                disable=not cfg.progress, mininterval=0.5 if tty else 30.0,
                file=sys.stderr if tty else _Lines(sys.stderr))  # fmt: skip


def _describe(trainer: Trainer, plan: train_data.Plan, val: validate.ValData | None,
              start: int) -> str:  # fmt: skip
    c, cfg = trainer.model.config, trainer.cfg
    params = sum(p.numel() for p in trainer.model.parameters())
    source = (f"{len(plan.signature['blocks'])} cache blocks" if plan.signature["cache"]
              else "augmentation on the fly")  # fmt: skip
    amp = amp_dtype(cfg.amp, trainer.device)
    return (
        f"unet train: width {c['base_channels']}, depth {c['depth']}, {c['padding']} padding, "
        f"dropout {c['dropout']}, {params:,} parameters on {trainer.device} "
        f"({torch.get_num_threads()} threads, amp {amp or 'off'})\n"
        f"  tiles {plan.tile_in} -> {plan.tile_out} from {source}; {cfg.optimizer} lr "
        f"{cfg.lr:g} ({cfg.schedule}, warm-up {cfg.warmup}), {cfg.iterations} iterations "
        f"from {start}; validation every {cfg.validate_every} on "
        f"{len(val.slices) if val else 0} slices"
    )


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy a file onto ``dst`` atomically."""
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)
