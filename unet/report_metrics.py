"""The science sections of ``unet report`` (see :mod:`unet.report`): the summary, the
metrics beside the paper's leaderboard rows with the evaluation split, protocol and chosen
thresholds, and the per-slice table.

Every function takes the checked :class:`unet.report_inputs.Inputs`; a section always has
content (what is missing is said in a note).
"""

from __future__ import annotations

import math
from typing import Any

from unet import paper
from unet.document import OURS, Items, Note, Section, Table, Text
from unet.report_inputs import Inputs, slice_ranges

ISBI_METRICS = ("warping_error", "rand_error", "pixel_error")
ISBI_DECIMALS = (6, 4, 4)  # as the paper prints them
LABELS = {
    "pixel_error": "pixel error",
    "rand_error": "Rand error",
    "warping_error": "warping error",
    "seg": "SEG",
}
SWEPT = {"pixel_error": "0.0-1.0", "rand_error": "0.0-1.0", "warping_error": "0.0-0.9"}
DEFINITIONS = {
    "pixel_error": "1 - best pixel F1 (cell = positive class) over the thresholds",
    "rand_error": "1 - best V_rand F-score (foreground-restricted Rand, the challenge's 2015 "
    "version) over the thresholds, on 4-connected segments",
    "warping_error": "fewest split + merge pixels after topology-preserving warping of the "
    "ground truth onto the prediction, over the thresholds, / pixels",
    "voi_split": "variation of information, split part H(prediction | truth), bits",
    "voi_merge": "variation of information, merge part H(truth | prediction), bits",
    "seg": "Cell Tracking Challenge SEG: mean Jaccard index of every ground-truth cell with the "
    "predicted cell covering more than half of it (0 if none)",
    "iou": "pixel intersection over union of the cell masks",
    "dice": "pixel Dice coefficient of the cell masks",
}


def number(value: Any, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _fixed(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _metric(inputs: Inputs, name: str) -> dict[str, Any] | None:
    return inputs.evaluation["metrics"].get(name)


def evaluated_on(inputs: Inputs) -> str:
    """The evaluation split in words: "val slices 20-24, never trained on"."""
    ev = inputs.evaluation
    slices, split = ev["slices"], ev["split"]
    parts = inputs.store_attrs.get("split")
    what = f"all {len(slices)} slices" if split == "all" else f"{split} slices"
    if not isinstance(parts, dict) or "train" not in parts:
        return f"{what} {slice_ranges(slices)} (the store records no training split)"
    trained = set(slices) & set(parts["train"])
    note = "never trained on" if not trained else f"{len(trained)} of them training slices"
    return f"{what} {slice_ranges(slices)}, {note}"


def summary(inputs: Inputs, when: str) -> Section:
    """Dataset, evaluation split, headline numbers, commit, date."""
    from unet import __version__

    ev, git = inputs.evaluation, inputs.git
    head = [
        f"{LABELS[name]} {number(result['value'])}"
        for name, result in ev["metrics"].items()
        if name in (*ISBI_METRICS, "seg")
    ]
    commit = git.get("commit", git.get("error", "unknown"))
    if "commit" in git:
        commit = commit[:12] + (" (uncommitted changes)" if git["dirty"] else "")
    z, y, x = inputs.shape
    items = [
        f"dataset: {inputs.dataset} ({inputs.format}, {z} slices of {y} x {x})",
        f"evaluated on: {evaluated_on(inputs)}",
        f"results: {', '.join(head) or 'no challenge metric computed'}",
        f"code: commit {commit}; unet {__version__}; report written {when}",
    ]
    return Section("summary", "Summary", [Items(items)])


def metrics(inputs: Inputs) -> Section:
    """Our numbers in the paper's table (ISBI 2012 or CTC SEG), then every metric exactly."""
    ctc = inputs.format == "ctc"
    blocks = _ctc_table(inputs) if ctc else _isbi_table(inputs)
    blocks += [
        Text(f"Protocol ({'CTC' if ctc else 'ISBI 2012 challenge'} definitions):"),
        Items(_protocol(inputs, ctc)),
        _exact_table(inputs),
    ]
    return Section("metrics", "Metrics beside the paper", blocks)


def _isbi_table(inputs: Inputs) -> list[Any]:
    ours = [_metric(inputs, name) for name in ISBI_METRICS]
    rows = [[r.rank, r.group, *map(_fixed, r[2:], ISBI_DECIMALS)] for r in paper.ISBI_ROWS]
    rows.append(
        [
            OURS,
            f"{inputs.dataset}: {evaluated_on(inputs)}",
            *(
                _fixed(m["value"], d) if m else "not computed"
                for m, d in zip(ours, ISBI_DECIMALS, strict=True)
            ),
        ]
    )
    chosen = [
        f"{LABELS[name]} at threshold {m['threshold']:.1f}"
        for name, m in zip(ISBI_METRICS, ours, strict=True)
        if m and m.get("threshold") is not None
    ]
    blocks: list[Any] = [
        Table(
            ["rank", "group", "warping error", "Rand error", "pixel error"],
            rows,
            caption=f"The paper's Table 1 ({paper.ISBI_DATA}) and this run",
        ),
        Text("Thresholds chosen: " + ("; ".join(chosen) or "none") + "."),
    ]
    if inputs.dataset != "isbi2012":
        blocks.append(
            Note(
                f"{inputs.dataset} is not the ISBI 2012 test volume: the paper's rows "
                "show the scale of these errors, not a like-for-like ranking."
            )
        )
    else:
        blocks.append(
            Note(
                "The paper's rows are scored on the challenge's 30 test slices, whose "
                "labels are not public; this run is scored on held-out training "
                "slices."
            )
        )
    return blocks


def _ctc_table(inputs: Inputs) -> list[Any]:
    seg = _metric(inputs, "seg")
    rows = [
        [name, *("-" if v is None else str(v) for v in values), "-"]
        for name, *values in paper.CTC_ROWS
    ]
    rows.append([OURS, "-", "-", _fixed(seg["value"], 4) if seg else "not computed"])
    return [
        Table(
            ["method", *paper.CTC_DATASETS, f"{inputs.dataset} ({evaluated_on(inputs)})"],
            rows,
            caption=f"SEG: the paper's Table 2 ({paper.CTC_DATA}) and this run",
        ),
        Note(
            f"The paper's datasets ({', '.join(paper.CTC_DATASETS)}) differ from "
            f"{inputs.dataset}: another microscope, other cells, the organisers' test "
            "sequences. The numbers show the scale, not a ranking."
        ),
    ]


def _protocol(inputs: Inputs, ctc: bool) -> list[str]:
    """The definitions behind the numbers shown (only of the metrics computed)."""
    ev = inputs.evaluation
    names, out = set(ev["metrics"]), []
    if names & {"seg", "voi_split", "voi_merge"}:
        how = "then 4-connected components" if ev["instances"] == "challenge" else ev["instances"]
        out.append(f"instances for SEG and VOI: p > {ev['threshold']}, {how}")
    if names & {"iou", "dice"}:
        out.append(f"IoU and Dice: the cell masks p > {ev['threshold']} and the ground truth")
    if names & set(ISBI_METRICS):
        out += [
            "a pixel is cell iff p > th (strict); th = 0.0, 0.1, ..., 1.0 (warping: up to "
            "0.9); the pixel, Rand and warping errors each report their best threshold",
            "segments: 4-connected components of the thresholded slice, slice by slice; "
            "counts summed over the slices before the F-scores",
            "Rand error = 1 - V_rand F-score; pixel error = 1 - pixel F1",
            f"warping error = {DEFINITIONS['warping_error']}",
        ]
    if "seg" in names or ctc:
        out.insert(0, DEFINITIONS["seg"])
    return out


def _exact_table(inputs: Inputs) -> Table:
    ev, rows = inputs.evaluation, []
    for name, result in ev["metrics"].items():
        if result.get("threshold") is not None:
            at = f"{result['threshold']:.1f} (best of {SWEPT.get(name, 'the sweep')})"
        elif name in ("iou", "dice"):
            at = f"{ev['threshold']} (fixed)"
        else:
            at = f"{ev['threshold']} ({ev['instances']} instances)"
        value = result["value"]
        rows.append([name, "n/a" if value is None else repr(value), at, DEFINITIONS.get(name, "")])
    return Table(
        ["metric", "value", "threshold", "definition"],
        rows,
        caption=f"Every metric of this run, exactly as {inputs.eval_path.name} holds it",
    )


def per_slice_table(inputs: Inputs) -> Table:
    """One row per evaluated slice, one column per metric."""
    ev = inputs.evaluation
    names = list(ev["metrics"])
    rows = [
        [str(z), *(number(ev["metrics"][n]["per_slice"][i]) for n in names)]
        for i, z in enumerate(ev["slices"])
    ]
    return Table(["slice", *names], rows, caption="Per-slice values (4 significant digits)")
