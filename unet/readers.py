"""Reading 2-D images and (Z, Y, X) stacks for evaluation: TIFF, zarr arrays, zarr groups,
OME-Zarr (level 0 of the first multiscale), and the canonical dataset store.

A zarr path may name an array directly (``store.zarr/raw``) or a group; in a group the array
is ``name`` when given, else level 0 of an OME-Zarr multiscale, else an array called
``probability``, else the group's only array. Leading singleton axes (OME ``t``, ``c``) are
dropped. Errors name the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError
from unet.io import read_tiff

TIFF_SUFFIXES = (".tif", ".tiff")


def _squeeze(data: np.ndarray, path: str) -> np.ndarray:
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim not in (2, 3):
        raise InputError(
            f"{path}: expected a 2-D image or a (Z, Y, X) stack, got shape {data.shape}"
        )
    return data


def _ome_level0(attrs: dict[str, Any]) -> str | None:
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    try:
        return str(multiscales[0]["datasets"][0]["path"])
    except (TypeError, KeyError, IndexError):
        return None


def _group_array(group: Any, name: str | None, path: str) -> Any:
    import zarr

    arrays = sorted(key for key, _ in group.arrays())
    if name is None:
        name = _ome_level0(dict(group.attrs))
    if name is None:
        name = (
            "probability" if "probability" in arrays else (arrays[0] if len(arrays) == 1 else None)
        )
    if name is None:
        raise InputError(
            f"{path}: a zarr group with arrays {arrays or 'none'}; name the one to "
            "use (--prediction-array / --ground-truth-array)"
        )
    try:
        item = group[name]
    except KeyError:
        raise InputError(f"{path}: no array {name!r} (arrays: {', '.join(arrays)})") from None
    if not isinstance(item, zarr.Array):
        raise InputError(f"{path}/{name}: is a group, expected an array")
    return item


def open_source(path: str | Path) -> Any:
    """The zarr array or group at ``path``, or the TIFF path; FileNotFoundError if absent."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or zarr store")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return path
    try:
        return zarr.open(str(path), mode="r")
    except Exception as err:
        raise InputError(f"{path}: neither a TIFF nor a zarr array or group ({err})") from None


def read_volume(path: str | Path, array: str | None = None) -> np.ndarray:
    """A 2-D image or (Z, Y, X) stack from a TIFF, zarr array, zarr group or OME-Zarr."""
    import zarr

    source = open_source(path)
    if isinstance(source, Path):
        return _squeeze(read_tiff(source), str(path))
    if isinstance(source, zarr.Group):
        source = _group_array(source, array, str(path))
    elif array is not None:
        raise InputError(f"{path}: is a zarr array; --*-array {array!r} needs a group")
    return _squeeze(np.asarray(source[...]), str(path))


def group_attrs(path: str | Path) -> dict[str, Any]:
    """The attributes of the zarr group at ``path`` ({} for TIFFs and arrays)."""
    import zarr

    source = open_source(path)
    return dict(source.attrs) if isinstance(source, zarr.Group) else {}


def group_arrays(path: str | Path) -> list[str]:
    """Names of the arrays of the zarr group at ``path`` ([] for TIFFs and arrays)."""
    import zarr

    source = open_source(path)
    return sorted(k for k, _ in source.arrays()) if isinstance(source, zarr.Group) else []
