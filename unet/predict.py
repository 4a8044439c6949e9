"""Prediction: a checkpoint over a 2-D image or (Z, Y, X) stack -> an OME-Zarr probability map.

SOURCE is anything :func:`unet.readers.open_image` reads (TIFF/BigTIFF, zarr v2/v3,
OME-Zarr, a dataset store's ``raw``), never loaded whole. A 2-D model predicts a stack
slice by slice, a 3-D model volumetrically. TARGET is an NGFF 0.5 OME-Zarr
(:mod:`unet.ngff`) whose level ``0`` holds the foreground probability (float32, float16,
or uint8 = round(p * 255)) in chunks that are the write tiles of :mod:`unet.tiler`, filled
by the dask tasks of :mod:`unet.inference`; its ``unet`` attributes hold the parameters
(``predict``: what a resumed run must share) and provenance.

Lifecycle of TARGET: created whole (empty, ``complete: false``) before any work; each chunk
is written in place followed by its completion record; after the last chunk the pyramid
levels are built, the store is marked complete together with ``run`` (the numbers of the run
that completed it: seconds, Mpx/s, chunks, computed, device, peak RSS and peak GPU bytes)
and the records are removed. A rerun with the same parameters computes only chunks without
records (a SIGKILLed run resumes and ends with chunk data byte-identical to an uninterrupted
one; only ``run`` differs); other parameters are an error unless ``overwrite``. Bad input is
refused before TARGET is touched.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet import __version__, inference, memory, ngff, normalize, shapes, tiler
from unet import predict_parts as parts
from unet.errors import InputError
from unet.export_load import is_package, load_package, model_sha256
from unet.io import create_exclusive

DTYPES = ("float32", "float16", "uint8")
AMPS = ("none", "bf16", "fp16")


@dataclass
class Options:
    """``unet predict`` options (see ``unet predict --help``)."""

    tile: int | None = None
    memory_limit: int | None = None
    batch: int = 1
    dtype: str = "float32"
    levels: int = 0
    tta: bool = False
    device: str = "auto"
    threads: int = 0
    scheduler: str = "threads"
    amp: str = "none"
    overwrite: bool = False
    array: str | None = None
    progress: bool = True
    part: tuple[int, int] | None = None  # compute part K of N into the staging store
    gather: bool = False  # check the parts' store, finish it and rename it onto TARGET


def load_model(checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, normalisation definition) of a checkpoint, or of a bioimage.io
    package that ``unet export`` wrote (zip or folder), checked for tiling."""
    import torch

    from unet.model import load_checkpoint

    if is_package(checkpoint):
        return load_package(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
    model = load_checkpoint(checkpoint).eval()
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    spec = normalize.check(payload.get("normalization"), f"{checkpoint}: normalization")
    config = model.config
    if config["in_channels"] != 1 or config["num_classes"] < 2:
        raise InputError(
            f"{checkpoint}: a model for {config['in_channels']} input channel(s) and "
            f"{config['num_classes']} class(es); expected 1 channel and >= 2 classes"
        )
    check = getattr(model, "check_tileable", None)
    if check is not None:
        try:
            check()
        except InputError as err:
            raise InputError(f"{checkpoint}: {err}") from None
    elif config["norm"] == "group":
        raise InputError(f"{checkpoint}: group normalisation depends on the tile; not tileable")
    return model, spec


def _check_paths(source: Path, target: Path) -> None:
    src, dst = source.resolve(), target.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise InputError(
            f"TARGET {target} and SOURCE {source} overlap; expected a TARGET outside SOURCE"
        )
    if target.exists() and not target.is_dir():
        raise InputError(f"TARGET {target}: exists and is not a folder; expected an OME-Zarr")


def _check_image(image: Any, config: dict[str, Any], source: Path, checkpoint: Path) -> None:
    if config["dims"] == 3 and image.ndim != 3:
        raise InputError(
            f"{source}: a 2-D image (shape {image.shape}), but {checkpoint} is a 3-D model; "
            "expected a (Z, Y, X) volume"
        )


def plan(model: Any, image: Any, opts: Options, device: str) -> tuple[tiler.Tiling, int, int]:
    """(tiling, expected peak bytes, budget) for ``image``: the tile is ``opts.tile``
    rounded, or the largest that fits the memory budget (InputError if none does)."""
    config = model.config
    geometry = tiler.Geometry.of(config["depth"], config["padding"])
    budget = opts.memory_limit or memory.default_budget(device if device != "auto" else "cpu")
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    sizes = (opts.batch, 8 if opts.tta else 1, inference.workers(device))
    if opts.tile is not None:
        tile = geometry.round_tile(opts.tile)
    else:
        tile = tiler.choose_tile(image.shape, config["dims"], geometry, config,
                                 budget - params, *sizes)  # fmt: skip
    tiling = tiler.make_tiling(image.shape, config["dims"], geometry, tile)
    peak = tiler.tile_bytes(tiling, config, *sizes) + params
    if opts.tile is None and peak > budget:
        from dask.utils import format_bytes

        raise InputError(
            f"--memory-limit {format_bytes(budget)}: too small for the smallest tile of this "
            f"model ({_x(tiling.tile)}, {format_bytes(peak)}); expected a larger limit"
        )
    return tiling, peak, budget


def _params(model, sha, source, image, tiling, scaling, opts) -> dict[str, Any]:
    """What a resumed run must share with the run that started TARGET (JSON-normalised)."""
    values = dict(
        unet=__version__, checkpoint_sha256=sha, model=model.config,
        source=str(source.resolve()), array=opts.array, source_shape=list(image.shape),
        tile=list(tiling.tile), margins=[tiling.geometry.before, tiling.geometry.after],
        window=list(tiling.window(0).shape), mirror="symmetric", tta=opts.tta,
        dtype=opts.dtype, amp=opts.amp, batch=opts.batch, levels=opts.levels,
        normalization=scaling.record(),
    )  # fmt: skip
    return json.loads(json.dumps(values))


def _open_target(target: Path, params: dict[str, Any], tiling: tiler.Tiling, axes: str,
                 opts: Options, provenance: dict[str, Any]) -> bool:  # fmt: skip
    """Create TARGET, or check that it was started with ``params``; True if it is complete.

    A part creates the shared staging store only if no other part did (and never replaces
    it); ``--gather`` creates nothing."""
    attrs = {"predict": params, "provenance": provenance}
    if opts.part is not None and not target.exists():

        def build(tmp: Path) -> None:
            ngff.create_image(tmp, tiling.shape, tiling.tile, opts.dtype, axes, attrs)
            (tmp / "0" / inference.RECORDS).mkdir()

        if create_exclusive(target, build):
            return False
    if opts.gather and not (target / "zarr.json").is_file():
        raise InputError(
            f"--gather: {target} does not exist; expected the store that `unet predict "
            "--part K/N` runs fill (run the parts first)"
        )
    if (
        target.is_dir()
        and any(target.iterdir())
        and (not opts.overwrite or opts.part or opts.gather)
    ):
        attrs = _attrs(target)
        if "predict" not in attrs:
            raise InputError(
                f"TARGET {target}: exists and is not a unet prediction; expected a new path "
                "(or --overwrite to replace it)"
            )
        old = attrs["predict"]
        keys = sorted(k for k in {*params, *old} if params.get(k) != old.get(k))
        if keys:
            again = "pass --overwrite to replace it" if opts.part is None and not opts.gather \
                else f"delete {target.parent} to start the parts over"  # fmt: skip
            raise InputError(
                f"TARGET {target}: written with other parameters ({', '.join(keys)}); {again}"
            )
        if attrs.get("complete"):
            return True
        if opts.part is None:  # other parts may be writing theirs
            for partial in target.rglob("*.partial"):  # zarr's temporary files of a killed run
                partial.unlink(missing_ok=True)
    else:
        ngff.create_image(target, tiling.shape, tiling.tile, opts.dtype, axes, attrs,
                          overwrite=True)  # fmt: skip
    (target / "0" / inference.RECORDS).mkdir(exist_ok=True)
    return False


def _attrs(target: Path) -> dict[str, Any]:
    try:
        return ngff.read_attrs(target)
    except Exception:
        return {}


def run(checkpoint: str | Path, source: str | Path, target: str | Path, opts: Options,
        log: Callable[[str], Any] = print) -> dict[str, Any]:  # fmt: skip
    """Predict ``source`` with ``checkpoint`` into the OME-Zarr ``target`` (see the module
    docstring); returns a summary (tile, chunks, computed, seconds, Mpx/s)."""
    from unet.readers import open_image

    checkpoint, source, final = Path(checkpoint), Path(source), Path(target)
    _check_options(opts)
    _check_paths(source, final)
    target = parts.store(final) if opts.part or opts.gather else final
    model, spec = load_model(checkpoint)
    remote = "://" in opts.scheduler  # the workers' devices are theirs to resolve
    device = opts.device if remote else inference.resolve_device(opts.device)
    with open_image(source, opts.array) as image:
        _check_image(image, model.config, source, checkpoint)
        tiling, peak, budget = plan(model, image, opts, device)
        scaling = normalize.resolve(spec, image)
        sha = model_sha256(checkpoint)
        params = _params(model, sha, source, image, tiling, scaling, opts)
        provenance = dict(
            checkpoint=str(checkpoint.resolve()), source_dtype=str(image.dtype),
            halo=shapes.halo(model.config["depth"]), normalization_spec=spec,
        )  # fmt: skip
        axes = image.axes
    if opts.gather and parts.is_done(final, params):
        log(f"unet predict: {final} is complete; nothing to gather")
        return dict(tile=tiling.tile, chunks=len(tiling), computed=0, seconds=0.0, mpx_per_s=0.0)
    complete = _open_target(target, params, tiling, axes, opts, provenance)
    job = inference.Job(
        str(checkpoint), sha, str(source), opts.array, str(target), tiling, scaling, opts.tta,
        opts.dtype, device, opts.amp, opts.batch, opts.threads,
    )  # fmt: skip
    within = parts.groups_of(opts.part, job.groups) if opts.part else None
    groups, count = inference.todo(job, within) if not complete else ([], 0)
    if opts.gather:
        return parts.gather(final, job, opts.levels, opts.overwrite, count, log)
    scope = len(tiling) if within is None else len(inference.chunks_of(job, within))
    log(_describe(model.config, tiling, peak, budget, device, opts, count, scope))
    start = time.perf_counter()
    if count:
        inference.compute(job, groups, opts.scheduler, count, opts.progress)
    if not complete and opts.part is None:
        parts.finish(target, job, opts.levels)
    seconds = time.perf_counter() - start
    pixels = math.prod(tiling.shape) * count / len(tiling)
    summary = dict(tile=tiling.tile, chunks=len(tiling), computed=count, seconds=seconds,
                   mpx_per_s=pixels / 1e6 / seconds if count and seconds > 0 else 0.0)  # fmt: skip
    record = {key: summary[key] for key in ("seconds", "mpx_per_s", "chunks", "computed")}
    record.update(device=device, **memory.peak_memory(device))
    if opts.part is not None:
        parts.write_record(final, opts.part, record)
    elif not complete:
        parts.complete(target, job, record)
    return summary


def _check_options(opts: Options) -> None:
    if opts.dtype not in DTYPES:
        raise InputError(f"--dtype {opts.dtype}: expected one of {', '.join(DTYPES)}")
    if opts.amp not in AMPS:
        raise InputError(f"--amp {opts.amp}: expected one of {', '.join(AMPS)}")
    if opts.batch < 1 or opts.levels < 0 or opts.threads < 0:
        raise InputError(
            f"--batch {opts.batch}, --levels {opts.levels}, --threads {opts.threads}: "
            "expected batch >= 1, levels >= 0, threads >= 0"
        )
    if opts.part is not None and (opts.gather or opts.tile is None):
        raise InputError(
            f"--part {opts.part[0]}/{opts.part[1]}: expected --tile (every part must cut the "
            "same tiles) and no --gather"
        )
    if opts.memory_limit is not None and opts.memory_limit <= 0:
        raise InputError(f"--memory-limit {opts.memory_limit}: expected a positive size")
    inference.check_scheduler(opts.scheduler)


def _describe(config, tiling, peak, budget, device, opts, count, scope) -> str:
    """The plan printed before work starts."""
    g, gib = tiling.geometry, 2**30
    part = f", part {opts.part[0]}/{opts.part[1]} has {scope}" if opts.part else ""
    return (
        f"unet predict: image {_x(tiling.shape)}, {config['dims']}-D model (depth "
        f"{config['depth']}, {config['padding']} padding, width {config['base_channels']}) "
        f"on {device}\n  tile {_x(tiling.tile)}, window {_x(tiling.window(0).shape)} "
        f"(halo {shapes.halo(g.depth)}, margins {g.before} before, {g.after}+ after), "
        f"{len(tiling)} chunks{part}: {scope - count} done, {count} to compute\n"
        f"  expected peak memory of tensors and buffers {peak / gib:.2f} GiB (budget "
        f"{budget / gib:.2f} GiB), "
        f"batch {opts.batch}, TTA {'8x' if opts.tta else 'off'}, dtype {opts.dtype}, "
        f"scheduler {opts.scheduler}"
    )


def _x(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
