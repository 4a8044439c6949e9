"""The documentation (README.md) of a bioimage.io package that ``unet export`` writes.

Plain text from what the checkpoint records (model, normalisation, training recipe and
data, the validation rows of training) and the ``unet evaluate`` JSON of the dataset, with
a ``# Validation`` section (the bioimage.io format asks for one) and the paper's citation.
"""

from __future__ import annotations

from typing import Any

from unet import __version__
from unet.paper import REFERENCE

PAPER_DOI = "10.1007/978-3-319-24574-4_28"  # of REFERENCE, the MICCAI 2015 paper


def documentation(config: dict[str, Any], payload: dict[str, Any],
                  evaluation: dict[str, Any] | None, info: dict[str, Any]) -> str:  # fmt: skip
    """The README text; ``info`` holds halo, min, step, spec, params, checkpoint, preset."""
    dims, halo = config["dims"], info["halo"]
    lines = [
        f"# {info['name'] or 'U-Net ' + info['checkpoint']}",
        "",
        "The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015), trained and exported with "
        f"the `unet` pipeline {__version__} (`unet export {info['checkpoint']}`).",
        "",
        "## Network",
        "",
        f"- {dims}-D, depth {config['depth']}, {config['base_channels']} base channels, "
        f"{config['padding']} padding, dropout {config['dropout']}, normalisation "
        f"{config['norm'] or 'none'}; {info['params']:,} parameters.",
        f"- Input `raw` (batch, channel, {', '.join('zyx'[3 - dims :])}): one channel; "
        f"valid spatial sizes {info['min']} + n * {info['step']}.",
        f"- Preprocessing: {_normalization(info['spec'])}.",
        "- Output `foreground`: the softmax probability of the foreground (classes >= 1), "
        f"the input's size. Crop a halo of {halo} px per side: blocks of valid sizes that "
        f"overlap by {2 * halo} px, the image mirrored by {halo} px at its border, give one "
        "seamless map, the one `unet predict` computes.",
        "",
        "## Training",
        "",
        *_training(payload, info),
        "",
        "# Validation",
        "",
        *_validation(payload, evaluation),
        "",
        "To validate on unseen data with ground truth: predict it (`unet predict PACKAGE "
        "IMAGE OUT.zarr`, or any bioimage.io consumer) and score the probability with "
        "`unet evaluate` (ISBI 2012 pixel, Rand and warping errors; SEG, IoU and Dice for "
        "cell-tracking data).",
        "",
        "## Citation",
        "",
        REFERENCE + ".",
        "",
    ]
    return "\n".join(lines)


def _normalization(spec: dict[str, Any]) -> str:
    clip = ", clipped to [0, 1]" if spec.get("clip") else ""
    if spec["kind"] == "dtype":
        return "integers scaled by their dtype's range (uint8: x / 255), floats as they are"
    if spec["kind"] == "fixed":
        return f"(x - {spec['low']}) / ({spec['high']} - {spec['low']}){clip}"
    return (f"(x - p{spec['low']}) / (p{spec['high']} - p{spec['low']}), p the image's "
            f"percentiles{clip}")  # fmt: skip


def _training(payload: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """Training data, preset and recipe, as far as the checkpoint records them."""
    signature = payload.get("signature") or {}
    data = signature.get("data") or {}
    recipe = signature.get("train") or {}
    lines = [
        f"- Training data: {data.get('dataset') or 'not recorded in the checkpoint'}.",
        f"- Preset: {info['preset'] or 'not given'}.",
    ]
    if recipe:
        keys = ("iterations", "optimizer", "lr", "schedule", "seed")
        shown = ", ".join(f"{k} {recipe[k]}" for k in keys if k in recipe)
        lines.append(f"- Recipe: {shown}; trained to iteration {payload.get('iteration', '?')}.")
    if info.get("sample"):
        lines.append(f"- Test input and cover: the centre of {info['sample']} (its middle slice).")
    else:
        lines.append("- Test input: a synthetic EM-like image (unet.synthetic, seed 0).")
    return lines


def _validation(payload: dict[str, Any], evaluation: dict[str, Any] | None) -> list[str]:
    """The best validation row of training and the metrics of `unet evaluate`."""
    history = payload.get("history") or {}
    best, rows = history.get("best"), history.get("validation") or []
    lines = []
    row = next((r for r in rows if best and r.get("iteration") == best["iteration"]), None)
    if row:
        values = ", ".join(
            f"{k.replace('_', ' ')} {row[k]:.4g}"
            for k in ("pixel_error", "rand_error", "warping_error")
            if isinstance(row.get(k), int | float)
        )
        lines.append(f"- During training (validation split, iteration {row['iteration']}, "
                     f"best Rand error): {values}.")  # fmt: skip
    if evaluation:
        metrics = evaluation.get("metrics") or {}
        values = ", ".join(
            f"{name.replace('_', ' ')} {m['value']:.4g}" for name, m in metrics.items()
            if isinstance(m, dict) and isinstance(m.get("value"), int | float)
        )  # fmt: skip
        lines.append(f"- `unet evaluate` on the {evaluation.get('split', '?')} split of "
                     f"{evaluation.get('ground_truth', '?')}: {values}.")  # fmt: skip
    return lines or ["- No validation recorded with this checkpoint."]
