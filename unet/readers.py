"""One lazy, axis-aware reader of 2-D images and (Z, Y, X) stacks, for prediction and
evaluation: TIFF / BigTIFF, zarr v2 and v3 arrays and groups, OME-Zarr 0.4 and 0.5 (level 0
of the first multiscale, axes from its metadata) and the canonical dataset store.

:func:`open_image` returns an :class:`Image` that knows its shape, dtype and spatial axes
and reads only the region asked for (TIFFs through :mod:`unet.lazytiff`: tifffile's zarr
store, one strip or tile at a time, or a memory map of uncompressed pixels). A zarr path
may name an array directly (``store.zarr/raw``) or a group; in a group the array is
``array`` when given, else level 0 of an OME-Zarr multiscale, else ``probability``, else
``raw`` (a dataset store), else the group's only array. Singleton time, channel and sample
axes are dropped; others are refused. Errors name the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unet.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
EXPECTED = "expected a 2-D image or a (Z, Y, X) stack"
_KINDS = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


class Image:
    """A lazily read image: ``shape``, ``dtype`` and ``axes`` ("yx" or "zyx") of the spatial
    axes kept; ``image[region]`` or ``read(region)`` reads only that region (slices and
    integers over those axes) as a numpy array. ``chunks`` is the storage chunk shape (None
    for a memory map); ``scale`` the OME-Zarr pixel size (1.0 where unknown). Pickling
    keeps only the path and array name, so an image can be sent to worker processes."""

    def __init__(self, path: Path, array: str | None, source: Any, names: list[str], **kw: Any):
        keep = self._keep = _select(path, tuple(source.shape), names, kw["kinds"])
        self.path, self.array, self._source = path, array, source
        self.axes = "".join(n for n, k in zip(names, keep, strict=True) if k)
        self.shape = tuple(int(n) for n, k in zip(source.shape, keep, strict=True) if k)
        self.dtype = np.dtype(source.dtype).newbyteorder("=")
        chunks = getattr(source, "chunks", None)
        self.chunks = (
            None if chunks is None else tuple(c for c, k in zip(chunks, keep, strict=True) if k)
        )
        self.scale: tuple[float, ...] = (1.0,) * len(self.axes)  # OME-Zarr sets its own
        self._close = kw.get("close", lambda: None)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return (
            f"Image({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, axes={self.axes!r})"
        )

    def __getitem__(self, region: Any) -> np.ndarray:
        return self.read(region)

    def read(self, region: Any = Ellipsis) -> np.ndarray:
        """The pixels of ``region`` (all of them by default) as a numpy array."""
        index = self._index(region)
        try:
            data = self._source[index]
        except (OSError, ValueError, RuntimeError) as err:  # a damaged chunk or file
            raise InputError(
                f"{self.path}: cannot read region {region} ({type(err).__name__}: {err})"
            ) from err
        if isinstance(self._source, np.memmap):  # a copy, not a view of the mapped file
            return np.array(data, dtype=self.dtype)
        return np.asarray(data, dtype=self.dtype)

    def _index(self, region: Any) -> tuple[Any, ...]:
        items = list(region) if isinstance(region, tuple) else [region]
        if Ellipsis in items:
            at = items.index(Ellipsis)
            items[at : at + 1] = [slice(None)] * (self.ndim - len(items) + 1)
        if len(items) > self.ndim:
            raise IndexError(f"region {region} has more than {self.ndim} axes ({self.axes})")
        items += [slice(None)] * (self.ndim - len(items))
        it = iter(items)
        return tuple(next(it) if k else 0 for k in self._keep)

    def close(self) -> None:
        """Release the open file (TIFF); reading afterwards is an error."""
        self._close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "array": self.array}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(open_image(state["path"], state["array"]).__dict__)


def open_image(path: str | Path, array: str | None = None) -> Image:
    """Open a 2-D image or (Z, Y, X) stack lazily; ``array`` names the array of a zarr group.

    FileNotFoundError if ``path`` does not exist, InputError if it is unreadable, empty, of
    another dimensionality, or has channels or time points.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or zarr store")
    if path.suffix.lower() in TIFF_SUFFIXES:
        if array is not None:
            raise InputError(f"{path}: is a TIFF; array {array!r} needs a zarr group")
        return _open_tiff(path)
    return _open_zarr(path, array)


# --- axes ----------------------------------------------------------------------------------


def _select(path: Path, shape: tuple[int, ...], names: list[str], kinds: list[str]) -> list[bool]:
    """Which axes to keep: spatial ones; singleton others are dropped, others refused."""
    if 0 in shape:
        raise InputError(f"{path}: empty image (shape {shape}); {EXPECTED}")
    keep = [kind == "space" for kind in kinds]
    for name, kind, size in zip(names, kinds, shape, strict=True):
        if kind in ("time", "channel") and size != 1:
            what = "time points" if kind == "time" else "channels"
            raise InputError(
                f"{path}: has {size} {what} (axis {name!r} of axes {''.join(names)}, shape "
                f"{shape}); {EXPECTED} of one channel at one time point"
            )
    spatial = "".join(n for n, k, size in zip(names, keep, shape, strict=True) if k or size > 1)
    if spatial not in ("yx", "zyx"):
        raise InputError(f"{path}: {EXPECTED}, got shape {shape} (axes {''.join(names)})")
    return keep


def _default_axes(shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """Axes of an array without metadata: leading singletons dropped, then Z, Y, X."""
    n = len(shape)
    names = ["?"] * (n - 3) + ["z", "y", "x"][max(0, 3 - n) :]
    kinds = ["other" if name == "?" else "space" for name in names]
    return names, kinds


def _multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """The OME-Zarr multiscales of a group's attributes: 0.5 (under "ome") or 0.4."""
    ome = attrs.get("ome")
    found = attrs.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)
    return found if isinstance(found, list) else []


def _level0(attrs: dict[str, Any]) -> str | None:
    """The path of level 0 of the first OME-Zarr multiscale (None if there is none)."""
    try:
        return str(_multiscales(attrs)[0]["datasets"][0]["path"])
    except (TypeError, KeyError, IndexError):
        return None


def _ome_axes(attrs: dict[str, Any], dataset: str) -> tuple[list, tuple | None] | None:
    """(axes, scale) of ``dataset`` in the OME-Zarr multiscales of ``attrs`` (None if absent)."""
    for ms in _multiscales(attrs):
        datasets = ms.get("datasets") or []
        paths = [str(d.get("path")) for d in datasets]
        if dataset in paths:
            level = datasets[paths.index(dataset)]
            scales = [t.get("scale") for t in level.get("coordinateTransformations", [])]
            return ms.get("axes") or [], next((tuple(s) for s in scales if s), None)
    return None


def _ome_names(axes: list[Any]) -> tuple[list[str], list[str]]:
    names = [str(a.get("name") if isinstance(a, dict) else a).lower() for a in axes]
    types = [a.get("type") if isinstance(a, dict) else None for a in axes]
    return names, [t or _KINDS.get(n, "other") for n, t in zip(names, types, strict=True)]


def _open_tiff(path: Path) -> Image:
    from unet.lazytiff import open_tiff

    tiff = open_tiff(path)
    try:
        return Image(path, None, tiff.array, tiff.names, kinds=tiff.kinds, close=tiff.close)
    except InputError:
        tiff.close()
        raise


# --- zarr ----------------------------------------------------------------------------------


def _pick(group: Any, name: str | None, path: Path) -> tuple[str, Any]:
    """(name, array) of the group's image array (see the module docstring)."""
    import zarr

    arrays = sorted(key for key, _ in group.arrays())
    if name is None:
        name = _level0(dict(group.attrs))
    if name is None:
        found = [a for a in ("probability", "raw") if a in arrays]
        name = found[0] if found else (arrays[0] if len(arrays) == 1 else None)
    if name is None:
        raise InputError(
            f"{path}: a zarr group with arrays {arrays or 'none'}; name the one to "
            f"use (e.g. {path / (arrays or ['ARRAY'])[0]})"
        )
    try:
        item = group[name]
    except KeyError:
        raise InputError(f"{path}: no array {name!r} (arrays: {', '.join(arrays)})") from None
    if not isinstance(item, zarr.Array):
        raise InputError(f"{path}/{name}: is a group, expected an array")
    return name, item


def _open_zarr(path: Path, array: str | None) -> Image:
    import zarr

    node = open_source(path)
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        array, node = _pick(node, array, path)
    elif array is not None:
        raise InputError(f"{path}: is a zarr array; array {array!r} needs a group")
    else:
        attrs, array = _parent_attrs(path), None
    ome = _ome_axes(attrs, array or path.name)
    shape = tuple(int(n) for n in node.shape)
    dims = getattr(node.metadata, "dimension_names", None)
    if ome is not None and len(ome[0]) == len(shape):
        names, kinds = _ome_names(ome[0])
    elif dims and all(str(d).lower() in _KINDS for d in dims):
        names, kinds = _ome_names([str(d) for d in dims])
    else:
        names, kinds = _default_axes(shape)
    image = Image(path, array, node, names, kinds=kinds)
    if ome is not None and ome[1] is not None and len(ome[1]) == len(shape):
        image.scale = tuple(float(s) for s, k in zip(ome[1], image._keep, strict=True) if k)
    return image


def _parent_attrs(path: Path) -> dict[str, Any]:
    """Attributes of the zarr group holding the array at ``path`` ({} if none)."""
    import zarr

    try:
        return dict(zarr.open_group(str(path.parent), mode="r").attrs)
    except Exception:
        return {}


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
    """A whole 2-D image or (Z, Y, X) stack (see :func:`open_image`) as a numpy array."""
    with open_image(path, array) as image:
        return image.read()


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
