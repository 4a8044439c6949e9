"""Archive mode: one checkpoint over the images of a sample sheet, incrementally.

A sample sheet is a TSV file: a header line naming at least the columns ``id`` and
``path``, then one line per image (blank lines and lines starting with ``#`` are skipped).
``id`` names the output ``OUTDIR/<id>.ome.zarr`` (letters, digits, ``.``, ``_``, ``-``,
starting with a letter or digit; unique, also ignoring case); ``path`` is a TIFF, zarr or
OME-Zarr (:func:`unet.readers.open_image`), relative to the sheet's folder unless absolute.
Other columns are kept in the summary.

Each image is predicted by :func:`unet.predict.run` with the same options. Before it starts,
``OUTDIR/records/<id>.json`` records the input's identity (resolved path, size and
mtime_ns; for a zarr store the total size, file count and newest mtime; with ``hashed``
also the sha256 of the content) and the parameters (the checkpoint's sha256 and the
predict options that shape the output); after it ends, the record is marked complete. A
rerun skips an image whose record matches and whose output is complete, resumes one that
matches but was interrupted (the predictor computes only the missing chunks), and deletes
and recomputes one whose input or parameters changed. An output without a record was not
written from a sheet: it is an error for that image unless ``overwrite``. With ``hashed``,
a record made without hashes is trusted where size and mtime still match.

One image's failure (missing, unreadable, wrong dimensionality, ...) becomes the status of
its row and the others go on. ``OUTDIR/summary.csv`` (written atomically at the end) has
the sheet's columns, then ``output, shape, tile, chunks, computed, seconds, mpx_per_s,
status`` (status ``computed``, ``skipped (unchanged)`` or ``error: <message>``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet import ngff, predict
from unet.errors import InputError
from unet.export_load import model_sha256
from unet.io import sha256_file, write_text_atomic
from unet.readers import open_image

SUMMARY = "summary.csv"
RECORDS = "records"
COLUMNS = ("output", "shape", "tile", "chunks", "computed", "seconds", "mpx_per_s", "status")
SKIPPED = "skipped (unchanged)"
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Options that do not change the output (where and how fast it is computed) and so are
# not part of an image's record; every other option is.
RUNTIME = ("device", "threads", "scheduler", "overwrite", "progress")


@dataclass(frozen=True)
class Entry:
    """One image of a sheet: its ``line`` number, ``id``, resolved ``path`` and ``fields``
    (every column, as written)."""

    line: int
    id: str
    path: Path
    fields: dict[str, str]


@dataclass(frozen=True)
class Sheet:
    """A validated sample sheet: its ``path``, ``columns`` and ``entries``."""

    path: Path
    columns: tuple[str, ...]
    entries: tuple[Entry, ...]


def read_sheet(path: str | Path) -> Sheet:
    """Read and validate a sample sheet (see the module docstring); a bad one raises a
    one-line InputError naming its line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sample sheet")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason}); expected a TSV") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    if not lines:
        raise InputError(f"{path}: empty; expected a TSV header with columns id and path")
    columns = _header(path, *lines[0])
    entries, seen = [], {}
    for number, line in lines[1:]:
        entry = _entry(path, number, line, columns)
        key = entry.id.casefold()
        if key in seen:
            raise InputError(
                f"{path} line {number}: id {entry.id!r} repeats line {seen[key]} (ids are "
                "file names, compared ignoring case); expected unique ids"
            )
        seen[key] = number
        entries.append(entry)
    if not entries:
        raise InputError(f"{path}: no image lines; expected one line per image after the header")
    return Sheet(path, columns, tuple(entries))


def _header(path: Path, number: int, line: str) -> tuple[str, ...]:
    columns = tuple(name.strip() for name in line.split("\t"))
    where = f"{path} line {number} (header)"
    missing = [name for name in ("id", "path") if name not in columns]
    if missing:
        raise InputError(
            f"{where}: no column {' or '.join(missing)} (columns: {', '.join(columns)}); "
            "expected tab-separated names including id and path"
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1 or not name})
    reserved = [name for name in columns if name in COLUMNS]
    if repeated or reserved:
        raise InputError(
            f"{where}: column(s) {', '.join(map(repr, repeated + reserved))} empty, repeated "
            f"or reserved for the summary; expected unique names other than {', '.join(COLUMNS)}"
        )
    return columns


def _entry(path: Path, number: int, line: str, columns: tuple[str, ...]) -> Entry:
    values = [value.strip() for value in line.split("\t")]
    where = f"{path} line {number}"
    if len(values) != len(columns):
        raise InputError(
            f"{where}: {len(values)} tab-separated field(s); expected {len(columns)} as in "
            "the header"
        )
    fields = dict(zip(columns, values, strict=True))
    if not ID.fullmatch(fields["id"]):
        raise InputError(
            f"{where}: id {fields['id']!r} is not safe as a file name; expected letters, "
            "digits, '.', '_' or '-', starting with a letter or digit (at most 200)"
        )
    if not fields["path"]:
        raise InputError(f"{where}: empty path; expected a TIFF, zarr or OME-Zarr path")
    image = Path(fields["path"]).expanduser()
    return Entry(number, fields["id"], path.parent / image, fields)


# --- records: what an output was computed from -------------------------------------------


def identity(path: Path, hashed: bool = False) -> dict[str, Any]:
    """The input's identity: resolved path, size, mtime_ns and file count (a zarr store's
    total, newest and count), with ``hashed`` also the sha256 of the content."""
    path = path.resolve()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or zarr store")
    files = sorted(_files(path))
    stats = [file.stat() for file in files]
    newest = max([path.stat().st_mtime_ns, *(s.st_mtime_ns for s in stats)])
    out = dict(path=str(path), size=sum(s.st_size for s in stats), files=len(files),
               mtime_ns=newest)  # fmt: skip
    if hashed:
        if path.is_file():
            out["sha256"] = sha256_file(path)
        else:
            digest = hashlib.sha256()
            for file in files:
                digest.update(f"{file.relative_to(path)}\0{sha256_file(file)}\n".encode())
            out["sha256"] = digest.hexdigest()
    return out


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [Path(root, name) for root, _, names in os.walk(path) for name in names]


def parameters(checkpoint_sha256: str, opts: predict.Options) -> dict[str, Any]:
    """What an output depends on besides its input: the checkpoint and the predict options
    other than :data:`RUNTIME`."""
    values = {k: v for k, v in dataclasses.asdict(opts).items() if k not in RUNTIME}
    return json.loads(json.dumps({"checkpoint_sha256": checkpoint_sha256, **values}))


def _same_input(old: dict[str, Any], new: dict[str, Any]) -> bool:
    if old.get("path") != new["path"]:
        return False
    if "sha256" in old and "sha256" in new:
        return old["sha256"] == new["sha256"]
    return all(old.get(key) == new[key] for key in ("size", "files", "mtime_ns"))


def _load(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _complete(target: Path) -> bool:
    try:
        return target.is_dir() and ngff.is_complete(target)
    except Exception:  # not a zarr group: not a complete output either
        return False


# --- the run -------------------------------------------------------------------------------


@dataclass
class _Context:
    checkpoint: Path
    outdir: Path
    opts: predict.Options
    params: dict[str, Any]
    hashed: bool
    log: Callable[[str], Any]


def run(
    checkpoint: str | Path,
    sheet: str | Path,
    outdir: str | Path,
    opts: predict.Options,
    hashed: bool = False,
    log: Callable[[str], Any] = print,
) -> list[dict[str, str]]:
    """Predict every image of ``sheet`` into ``outdir/<id>.ome.zarr`` (see the module
    docstring); returns the summary rows, also written to ``outdir/summary.csv``.

    ``opts.progress`` shows a bar over the images; ``log`` gets one line per image. A bad
    sheet, checkpoint or OUTDIR raises before any image is touched.
    """
    from tqdm import tqdm

    checkpoint, outdir, table = Path(checkpoint), Path(outdir), read_sheet(sheet)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"OUTDIR {outdir}: exists and is not a folder; expected a folder")
    predict.load_model(checkpoint)  # a bad checkpoint fails the run, not every row
    params = parameters(model_sha256(checkpoint), opts)
    inner = dataclasses.replace(opts, progress=False)
    (outdir / RECORDS).mkdir(parents=True, exist_ok=True)
    rows, total = [], len(table.entries)
    every = 0.1 if sys.stderr.isatty() else 30.0  # seconds between updates (a log file)
    with tqdm(total=total, unit="image", desc="predict-archive", disable=not opts.progress,
              mininterval=every) as bar:  # fmt: skip

        def say(line: str) -> None:
            with tqdm.external_write_mode():
                log(line)

        context = _Context(checkpoint, outdir, inner, params, hashed, say)
        for number, entry in enumerate(table.entries, 1):
            row = {**entry.fields, **_process(entry, context)}
            say(f"[{number}/{total}] {entry.id}: {_describe(row)}")
            rows.append(row)
            bar.update()
    write_summary(outdir / SUMMARY, (*table.columns, *COLUMNS), rows)
    return rows


def _process(entry: Entry, ctx: _Context) -> dict[str, str]:
    """Predict one image unless its output is up to date; its summary columns."""
    target = ctx.outdir / f"{entry.id}.ome.zarr"
    path = ctx.outdir / RECORDS / f"{entry.id}.json"
    try:
        current = identity(entry.path, ctx.hashed)
        record = _load(path)
        same = record is not None and record.get("params") == ctx.params
        same = same and _same_input(record.get("input") or {}, current)
        if same and record.get("complete") and "result" in record and _complete(target):
            if {**record["input"], **current} != record["input"]:  # a hash confirmed a touch
                record["input"] = {**record["input"], **current}
                write_text_atomic(path, json.dumps(record, indent=1))
            result = {**record["result"], "computed": "0", "seconds": "0.000", "status": SKIPPED}
        else:
            _prepare(target, record, same, ctx.opts.overwrite)
            result = _compute(entry, target, path, {"input": current, "params": ctx.params}, ctx)
    except Exception as err:  # one image's failure is its row's status; the others go on
        if not isinstance(err, InputError | OSError):  # a bug: keep its traceback in the log
            ctx.log(traceback.format_exc().rstrip())
        result = {"status": f"error: {_one_line(err)}"}
    return {"output": target.name, **result}


def _compute(entry: Entry, target: Path, path: Path, record: dict[str, Any],
             ctx: _Context) -> dict[str, str]:  # fmt: skip
    """Record what ``target`` is computed from, predict it, then mark the record complete."""
    write_text_atomic(path, json.dumps({**record, "complete": False}, indent=1))
    summary = predict.run(ctx.checkpoint, entry.path, target, ctx.opts, log=lambda _: None)
    with open_image(target) as image:
        shape = image.shape
    result = {"shape": _x(shape), "tile": _x(summary["tile"]), "chunks": str(summary["chunks"])}
    write_text_atomic(path, json.dumps({**record, "complete": True, "result": result}, indent=1))
    return {**result, "computed": str(summary["computed"]), "seconds": f"{summary['seconds']:.3f}",
            "mpx_per_s": f"{summary['mpx_per_s']:.3f}", "status": "computed"}  # fmt: skip


def _prepare(target: Path, record: dict[str, Any] | None, same: bool, overwrite: bool) -> None:
    """Delete the output of another input or parameters (ours, by its record), so that a
    fresh record never describes an old store; refuse an output without a record."""
    if same or not (target.exists() or target.is_symlink()):
        return
    if record is None and not overwrite:
        raise InputError(
            f"{target}: exists and was not written from a sample sheet (no record); "
            "expected a new path (or --overwrite to replace it)"
        )
    if not (target / "zarr.json").is_file():  # not a zarr store: never deleted here
        raise InputError(f"{target}: exists and is not an OME-Zarr; expected a new path")
    shutil.rmtree(target)


def _describe(row: dict[str, str]) -> str:
    if row["status"] != "computed":
        return row["status"]
    return (
        f"computed {row['computed']} of {row['chunks']} chunks ({row['shape']}, tile "
        f"{row['tile']}) in {row['seconds']} s ({row['mpx_per_s']} Mpx/s) -> {row['output']}"
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return text if isinstance(err, InputError | OSError) else f"{type(err).__name__}: {text}"


def _x(shape: Any) -> str:
    return "x".join(str(int(n)) for n in shape)


def write_summary(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """The summary CSV (one row per image, every column; missing values empty), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def failed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows whose image failed."""
    return [row for row in rows if row["status"].startswith("error:")]
