"""The dataset registry: ISBI 2012, Cell Tracking Challenge 2D training sets by name, synthetic.

An entry has a ``format`` (isbi2012 | ctc | synthetic), ``files`` ({name: {url, sha256,
mirror_sha256}}: the official URL, the official file's sha256 where known, and that of the
project's offline mirror copy, which was rebuilt and differs) and optionally an explicit
``split`` (train/val/test index ranges, or ``val_last`` / ``test_last`` counts taken from the
end, so that it fits any number of slices). Callers may add entries or override fields
(config ``datasets:``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from unet.errors import InputError

ISBI_URL = "http://brainiac2.mit.edu/isbi_challenge/sites/default/files/{file}"
CTC_URL = "https://data.celltrackingchallenge.net/training-datasets/{name}.zip"
CTC_NAME = re.compile(r"^(?:BF|DIC|Fluo|PhC)-[CN]2D[HL]-[A-Za-z0-9+]+$")
FORMATS = ("isbi2012", "ctc", "synthetic")
# sha256 of the files of the project's offline mirror (rebuilt copies; see its README)
_MIRROR_SHA256 = {
    "train-volume.tif": "ffd3f1d01cfe6c11c95a9a68238e20d91d393906710a66d52de75405aaf501ca",
    "train-labels.tif": "b68ad8c084464014b38c6d5966048dabe033df9d0b4fd87ae28c83e1c4db4b57",
    "test-volume.tif": "046fbb869a953f1ffa63a9722849fe0aa693ad7a21aa9278a2bff2397d00b16f",
    "Fluo-N2DL-HeLa.zip": "a60264af0a7d55c308dbbe7056f39940e39f9e72b123d9eacff7572761e1a4ca",
}
ISBI_FILES = ("train-volume.tif", "train-labels.tif", "test-volume.tif")

REGISTRY: dict[str, dict[str, Any]] = {
    "isbi2012": {
        "format": "isbi2012",
        "files": {
            name: {
                "url": ISBI_URL.format(file=name),
                "sha256": None,
                "mirror_sha256": _MIRROR_SHA256[name],
            }
            for name in ISBI_FILES
        },
        # the last 5 training slices validate: 0-19 / 20-24 of the shared mirror's 25 slices,
        # 0-24 / 25-29 of the challenge's 30 (contiguous: neighbouring sections correlate)
        "split": {"val_last": 5},
    },
    "synthetic": {"format": "synthetic"},
}


def dataset_entry(name: str, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registry entry of ``name`` (CTC 2D training sets by name), merged with ``override``."""
    entry = copy.deepcopy(REGISTRY.get(name, {}))
    if not entry and CTC_NAME.match(name):
        file = f"{name}.zip"
        entry = {
            "format": "ctc",
            "files": {
                file: {
                    "url": CTC_URL.format(name=name),
                    "sha256": None,
                    "mirror_sha256": _MIRROR_SHA256.get(file),
                }
            },
        }
    for key, value in (override or {}).items():
        if key == "files" and isinstance(value, dict):
            files = entry.setdefault("files", {})
            for file, spec in value.items():
                files[file] = {**files.get(file, {}), **(spec or {})}
        else:
            entry[key] = value
    if not entry:
        raise InputError(
            f"unknown dataset {name!r}; expected isbi2012, synthetic, a Cell Tracking "
            f"Challenge 2D training set (e.g. Fluo-N2DL-HeLa) or a config entry"
        )
    if entry.get("format") not in FORMATS:
        raise InputError(
            f"dataset {name!r}: format {entry.get('format')!r} is not one of {FORMATS}"
        )
    if entry["format"] != "synthetic" and not entry.get("files"):
        raise InputError(f"dataset {name!r}: no files to download")
    return entry
