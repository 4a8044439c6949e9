"""The provenance sections of ``unet report`` (see :mod:`unet.report`): inference throughput
and peak memory of the prediction runs, and where the result came from (git state, stage
timings, dataset checksums, checkpoint, hardware, packages, configuration).

Every function takes the checked :class:`unet.report_inputs.Inputs`; a section always has
content (what is missing is said in a note).
"""

from __future__ import annotations

import json
import math
from typing import Any

from unet import paper
from unet.document import Code, Note, Section, Table, Text
from unet.io import sha256_file
from unet.provenance import dataset_sources, hardware, packages
from unet.report_inputs import Inputs, slice_ranges
from unet.report_metrics import number


def _bytes(value: Any) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def run_table(attrs: dict[str, Any], what: str) -> list[Any]:
    """Throughput and peak memory of one prediction store's run, and its parameters."""
    params, run = attrs.get("predict", {}), attrs.get("run")
    setup = (
        f"{what}: tile {'x'.join(map(str, params.get('tile', [])))}, TTA "
        f"{'8x' if params.get('tta') else 'off'}, dtype {params.get('dtype')}, batch "
        f"{params.get('batch')}, amp {params.get('amp')}"
    )
    if not isinstance(run, dict):
        return [
            Text(setup),
            Note(
                f"{what}: throughput and peak memory not recorded (the store "
                "has no 'run' attributes)."
            ),
        ]
    mpx = run.get("mpx_per_s") or 0
    per_image = f"{0.262144 / mpx:.3g} s" if mpx else "-"
    rows = [
        ["device", str(run.get("device"))],
        ["seconds", number(run.get("seconds"))],
        ["throughput", f"{number(mpx)} Mpx/s"],
        ["one 512 x 512 image", per_image],
        ["chunks computed", f"{run.get('computed')} of {run.get('chunks')}"],
        ["peak memory (RSS)", _bytes(run.get("peak_rss_bytes"))],
        ["peak GPU memory", _bytes(run.get("peak_gpu_bytes"))],
    ]
    if run.get("parts"):  # scattered: seconds summed over the jobs, peaks the largest job's
        rows.insert(1, ["jobs (predict.parts)", f"{run['parts']}, seconds summed"])
    return [Text(setup), Table(["", "value"], rows, caption=f"{what}: the run that completed it")]


def inference(inputs: Inputs) -> Section:
    """Throughput and peak memory of the prediction(s), beside the paper's timing."""
    blocks = run_table(inputs.prediction_attrs, f"prediction {inputs.prediction.name}")
    if inputs.test_prediction is not None:
        from unet import ngff

        attrs = ngff.read_attrs(inputs.test_prediction)
        blocks += run_table(attrs, f"test prediction {inputs.test_prediction.name}")
    blocks.append(Text(paper.TIMING[:1].upper() + paper.TIMING[1:] + "."))
    return Section("inference", "Inference throughput and memory", blocks)


def provenance(inputs: Inputs) -> Section:
    """Git state, stage timings, dataset checksums, checkpoint, hardware, packages, config."""
    git = inputs.git
    if "commit" in git:
        more = len(git["changed"]) - 10
        files = ", ".join(git["changed"][:10]) + (f" and {more} more" if more > 0 else "")
        state = f"dirty: {files}" if git["dirty"] else "clean"
        code: Any = Text(f"git commit {git['commit']} (working tree {state})")
    else:
        code = Note(f"git commit: {git.get('error')}")
    blocks = [
        code,
        *_stages(inputs),
        *_dataset(inputs),
        *checkpoint(inputs),
        Table(["", "value"], [list(r) for r in hardware(inputs.environment)], caption="Hardware"),
        Table(
            ["package", "version"],
            [list(r) for r in packages(inputs.environment)],
            caption="Package versions"
            + ("" if inputs.environment else " (of the report's process)"),
        ),
    ]
    if inputs.config is None:
        blocks.append(Note("resolved configuration: not given (--config-json)"))
    else:
        blocks += [Text("Resolved configuration:"), Code(json.dumps(inputs.config, indent=1))]
    return Section("provenance", "Provenance", blocks)


def _stages(inputs: Inputs) -> list[Any]:
    if not inputs.benchmarks:
        return [Note("wall time per stage: no benchmark files given (--benchmarks)")]
    rows = [[b["stage"], number(b["seconds"]), number(b["max_rss_mb"])] for b in inputs.benchmarks]
    total = math.fsum(b["seconds"] or 0 for b in inputs.benchmarks)
    rows.append(["total", number(total), "-"])
    return [
        Table(
            ["stage", "wall time (s)", "max RSS (MB)"],
            rows,
            caption="Wall time and peak memory per stage (Snakemake benchmarks)",
        )
    ]


def _dataset(inputs: Inputs) -> list[Any]:
    attrs = inputs.store_attrs
    split = attrs.get("split") or {}
    sizes = "; ".join(f"{k} {slice_ranges(v) or 'none'}" for k, v in split.items())
    blocks: list[Any] = [
        Text(
            f"Dataset store {inputs.store} (format {inputs.format}; split: "
            f"{sizes or 'not recorded'})."
        )
    ]
    sources = dataset_sources(attrs.get("source"))
    if isinstance(sources, str):
        blocks.append(Text(f"Source: {sources}"))
    else:
        blocks.append(
            Table(
                ["file", "from", "sha256"],
                [list(s) for s in sources],
                caption="Dataset files and their checksums",
            )
        )
    return blocks


def checkpoint(inputs: Inputs) -> list[Any]:
    """The checkpoint's sha256 (from the prediction) and whether it is the training's best.pt."""
    params = inputs.prediction_attrs.get("predict", {})
    sha = params.get("checkpoint_sha256")
    if sha is None:
        return [Note(f"checkpoint: {inputs.prediction} records none")]
    where = inputs.prediction_attrs.get("provenance", {}).get("checkpoint", "?")
    text = f"Checkpoint {where}: sha256 {sha}"
    best = inputs.train_dir / "best.pt" if inputs.train_dir is not None else None
    if best is not None and best.is_file():
        same = sha256_file(best) == sha
        text += f"; {'the same as' if same else 'NOT the same as'} {best}"
    return [Text(text + ".")]
