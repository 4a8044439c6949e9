"""``unet export``: a checkpoint -> a bioimage.io model package (format 0.5).

The package is written with ``bioimageio.spec`` (the optional extra
``pip install -e ".[bioimageio]"``; imported inside the functions, so this module imports
without it) and holds:

- weights as a PyTorch state dict with :mod:`unet.export_arch` as the architecture (one
  self-contained file) and as TorchScript (that file's :class:`UNetForeground`, scripted);
- input ``raw`` (batch, channel, y, x; z before y for 3-D) whose spatial sizes are
  ``min + n * step`` (``step``: :func:`unet.shapes.step`), with preprocessing that is the
  checkpoint's :mod:`unet.normalize` definition (``scale_linear`` for dtype and fixed,
  ``scale_range`` for percentile, then ``clip`` if it clips);
- output ``foreground``: the softmax foreground probability, the input's size, with a
  ``halo`` that consumers crop (see :func:`package_geometry`);
- a test input (a crop of ``sample``, or a synthetic EM-like image) and its expected
  output computed with :class:`unet.model.UNet` and :class:`unet.normalize.Scaling`, a
  cover (raw | probability), documentation (:mod:`unet.export_docs`), citation, license,
  authors and tags; ``config.unet`` holds the model configuration and the normalisation
  definition, which :func:`unet.export_load.load_package` reads back.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from unet import normalize, shapes
from unet.errors import InputError
from unet.export_load import ARCH_CALLABLE, check_model, is_package

TEST_OUTPUT = {2: 256, 3: 48}  # wanted valid output edge of the test input, by dims


def package_geometry(depth: int, padding: str) -> tuple[int, int, int]:
    """(halo, shift, min) of the package: the output halo consumers crop, the pixels
    :class:`unet.export_arch.UNetForeground` drops at the start of its input, and the
    smallest input size; sizes are ``min + n * step`` (:func:`unet.shapes.step`).

    A consumer pads the image by the halo ``h`` and predicts blocks whose kept parts
    (``h`` in from their borders) tile the image; ``unet predict`` pads by the margin
    before (:func:`unet.shapes.margins`, 92 at depth 5). Sizes and ``2 h`` are multiples
    of the step, so every block (bioimageio.core moves the last one to end at the border)
    starts on one pooling grid; the network drops ``shift`` pixels so that grid is
    ``unet predict``'s (``h - shift`` = the margin, modulo the step) and reads the largest
    valid size the rest holds, which must cover the kept part. Valid padding: (8, 0, 18)
    at depth 2, (20, 0, 44) at depth 3, (96, 4, 208) at depth 5."""
    s, first = shapes.step(depth), shapes.valid_inputs_near(1, depth, padding)[1]
    before, after = shapes.margins(depth, padding)
    grain = max(1, s // 2)
    halo = -(-max(before, after) // grain) * grain
    while halo < after + (-((halo - before) % s) - first) % s:  # window short of the kept
        halo += grain
    shift = (halo - before) % s
    size = -(-(2 * halo + 1) // s) * s
    while size - shift < first:
        size += s
    return halo, shift, size


def _check_out(checkpoint: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == checkpoint.resolve():
        raise InputError(f"OUT {out} is the checkpoint; expected another path")
    if out.suffix != ".zip":
        raise InputError(f"OUT {out}: expected a path ending in .zip")
    if out.exists() and not (overwrite and out.is_file()):
        raise InputError(f"OUT {out}: exists; expected a new path (or --overwrite to replace it)")


def _read_checkpoint(checkpoint: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(model in eval mode, normalisation definition, payload) of a unet checkpoint."""
    import torch

    from unet.model import load_checkpoint

    if is_package(checkpoint):
        raise InputError(f"{checkpoint}: is a bioimage.io package already; expected a checkpoint")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
    try:
        model = load_checkpoint(checkpoint).eval()
    except InputError as err:  # torch.load's reasons span lines: keep the first
        raise InputError(str(err).splitlines()[0].split(" (Weights only load failed")[0]) from None
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    spec = normalize.check(payload.get("normalization"), f"{checkpoint}: normalization")
    check_model(model, checkpoint)
    return model, spec, payload


def export(
    checkpoint: str | Path, out: str | Path, *, authors: list[str] | None = None,
    license: str = "MIT", tags: list[str] | None = None, name: str | None = None,
    sample: str | Path | None = None, array: str | None = None,
    metrics: str | Path | None = None, preset: str | None = None,
    test_size: int | None = None, overwrite: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write the bioimage.io package of ``checkpoint`` to ``out`` (.zip, atomically; see
    the module docstring); returns a summary (out, bytes, halo, min, step, test shape).

    ``sample``: an image (any :func:`unet.readers.open_image` reads, ``array`` in a group)
    whose centre crop is the test input; ``metrics``: the ``unet evaluate`` JSON whose
    values the documentation states; ``preset``: the name of the preset trained with."""
    from unet.export_docs import documentation

    checkpoint, out = Path(checkpoint), Path(out)
    _check_out(checkpoint, out, overwrite)
    model, spec, payload = _read_checkpoint(checkpoint)
    evaluation = _evaluation(metrics)
    _require_extra()
    config = model.config
    halo, shift, first = package_geometry(config["depth"], config["padding"])
    raw = _test_input(sample, array, config, halo, first, test_size)
    scaling = normalize.resolve(spec, raw)
    expected = _expected(model, scaling.apply(raw), shift)
    info = dict(halo=halo, shift=shift, min=first, step=shapes.step(config["depth"]), spec=spec,
                checkpoint=checkpoint.name, preset=preset, sample=sample, name=name,
                params=sum(p.numel() for p in model.parameters()), arch=ARCH_CALLABLE)  # fmt: skip
    text = documentation(config, payload, evaluation, info)
    _write_package(out, model, raw, expected, text, info,
                   dict(authors=authors, license=license, tags=tags))  # fmt: skip
    return dict(out=str(out), bytes=out.stat().st_size, halo=halo, min=first,
                step=info["step"], test_shape=list(raw.shape))  # fmt: skip


def _evaluation(path: str | Path | None) -> dict[str, Any] | None:
    """The ``unet evaluate`` JSON at ``path`` (None for None)."""
    import json

    if path is None:
        return None
    try:
        report = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"--metrics {path}: not JSON ({err}); expected unet evaluate's") from None
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        raise InputError(f"--metrics {path}: no 'metrics'; expected the JSON of unet evaluate")
    return report


def _test_input(sample, array, config, halo: int, first: int, size: int | None) -> np.ndarray:
    """The test input: a (Z, )Y, X array whose edge is the smallest valid size >= ``size``
    (default: an output of TEST_OUTPUT past the halo), the centre crop of ``sample``
    (its middle slice for a 2-D model on a stack; mirrored where the sample is smaller),
    or a synthetic EM-like image."""
    dims, s = config["dims"], shapes.step(config["depth"])
    want = size if size is not None else 2 * halo + TEST_OUTPUT[dims]
    edge = first + max(0, -(-(want - first) // s)) * s
    if sample is None:
        from unet.synthetic import SyntheticParams, synthetic_slice

        rng, params = np.random.default_rng(0), SyntheticParams(size=edge)
        slices = [synthetic_slice(rng, params)[0] for _ in range(edge if dims == 3 else 1)]
        return np.stack(slices) if dims == 3 else slices[0]
    from unet.readers import open_image

    with open_image(sample, array) as image:
        if image.ndim < dims:
            raise InputError(f"--sample {sample}: a 2-D image; expected a (Z, Y, X) volume")
        lead = tuple(n // 2 for n in image.shape[: image.ndim - dims])
        region = lead + tuple(
            slice(max(0, (n - edge) // 2), max(0, (n - edge) // 2) + edge)
            for n in image.shape[image.ndim - dims :]
        )
        data = image[region]
    pads = [((edge - n) // 2, edge - n - (edge - n) // 2) for n in data.shape]
    data = np.pad(data, pads, mode="symmetric") if any(sum(p) for p in pads) else data
    # dtypes the format lacks, as float32 (the values the dtype scaling gives them)
    return data.astype(np.float32) if data.dtype in (bool, np.float16) else data


def _expected(model: Any, x: np.ndarray, shift: int) -> np.ndarray:
    """What the package's network (:class:`unet.export_arch.UNetForeground`) must output for
    the scaled ``x``, computed with our network: the foreground probability of the largest
    valid window of ``x`` from pixel ``shift`` on, placed at ``x``'s size with 0 where the
    network gives none; shape (1, 1, *x.shape)."""
    import torch

    depth, padding = model.config["depth"], model.config["padding"]
    first, s = shapes.valid_inputs_near(1, depth, padding)[1], shapes.step(depth)
    sizes = [first + max(0, (n - shift - first) // s) * s for n in x.shape]
    window = np.pad(x[(slice(shift, None),) * x.ndim],
                    [(0, max(0, m - n + shift)) for m, n in zip(sizes, x.shape, strict=True)],
                    mode="edge")[tuple(slice(0, m) for m in sizes)]  # fmt: skip
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.ascontiguousarray(window))[None, None])
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        prob = torch.softmax(logits, dim=1)[:, 1:].sum(dim=1, keepdim=True).numpy()
    out = np.zeros((1, 1, *x.shape), np.float32)
    place = [(shift + (m - o) // 2, o) for m, o in zip(sizes, prob.shape[2:], strict=True)]
    region = tuple(slice(a, min(a + o, n)) for (a, o), n in zip(place, x.shape, strict=True))
    out[(0, 0, *region)] = prob[(0, 0, *(slice(0, r.stop - r.start) for r in region))]
    return out


def _require_extra() -> None:
    """InputError unless the bioimageio extra is installed (imported with our cache)."""
    set_cache()
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError(
            "unet export needs the bioimageio extra: pip install -e '.[bioimageio]'"
        ) from None


def _write_package(out: Path, model, raw, expected, text, info, meta) -> None:
    """Build the description in a temporary folder and save the package atomically; a
    value the format refuses (a license, an author) is an InputError naming it."""
    from bioimageio.spec import save_bioimageio_package
    from pydantic import ValidationError

    from unet.export_descr import describe
    from unet.io import atomic_output

    with tempfile.TemporaryDirectory(prefix="unet-export-") as tmp:
        try:
            descr = describe(Path(tmp), model, raw, expected, text, info, meta)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            message = str(first["msg"]).splitlines()[0][:200]
            raise InputError(f"{out}: the bioimage.io format refuses {where}: {message}") from None
        with atomic_output(out) as part:
            zipped = part.with_name(part.name + ".zip")  # the library wants the suffix
            try:
                save_bioimageio_package(descr, output_path=zipped)
                zipped.rename(part)
            finally:
                zipped.unlink(missing_ok=True)


def set_cache() -> None:
    """bioimageio's cache folder ($BIOIMAGEIO_CACHE_PATH, read when bioimageio is first
    imported): a folder of this user under the temporary folder unless set."""
    cache = Path(tempfile.gettempdir()) / f"unet-bioimageio-cache-{os.getuid()}"
    os.environ.setdefault("BIOIMAGEIO_CACHE_PATH", str(cache))
