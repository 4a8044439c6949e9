"""Training checkpoints that resume a run exactly, and their checks.

A checkpoint is one ``torch.save`` dict, written atomically (:func:`unet.model.save_checkpoint`)
and loadable with ``torch.load(weights_only=True)``:

- ``config``, ``state_dict``: the model (``unet.model.load_checkpoint`` rebuilds it);
- ``normalization``: the :mod:`unet.normalize` definition of the training data, which
  ``unet predict`` applies;
- ``optimizer``, ``scheduler``: their ``state_dict()``;
- ``rng``: the torch (and CUDA), NumPy and Python generator states;
- ``iteration`` and ``position`` (training tiles consumed: where the data stream resumes);
- ``signature``: the settings that determine the run (model, training, data), compared on
  resume; ``history`` (training-loss points, validation rows, best), ``elapsed`` seconds.

With the same settings, a run resumed from a checkpoint on the CPU continues bit for bit as
the uninterrupted run would have: the tile stream restarts at ``position``, dropout draws
from the restored torch generator, and the optimizer and schedule continue their state.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet import __version__
from unet.errors import InputError
from unet.model import save_checkpoint

KEYS = ("config", "state_dict", "normalization", "optimizer", "scheduler", "rng",
        "iteration", "position", "signature", "history")  # fmt: skip


def capture_rng() -> dict[str, Any]:
    """The states of the torch (CPU and CUDA), NumPy legacy and Python generators."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global state)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators to a state from :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    key = numpy["key"].numpy().astype(np.uint32)
    legacy = ("MT19937", key, numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    np.random.set_state(legacy)  # noqa: NPY002 (the global state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save(path: str | Path, model: Any, optimizer: Any, scheduler: Any, **fields: Any) -> None:
    """Write a checkpoint of the whole training state atomically (see the module docstring)."""
    save_checkpoint(
        path, model, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        rng=capture_rng(), unet=__version__, **fields,
    )  # fmt: skip


def load(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's payload; InputError naming the file if it is not one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"{path}: not a readable training checkpoint ({why}); delete it or pass "
            "--restart to start over"
        ) from err
    missing = [k for k in KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise InputError(f"{path}: not a training checkpoint (missing {', '.join(missing)})")
    return payload


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def normalized(signature: dict[str, Any]) -> dict[str, Any]:
    """``signature`` as JSON reads it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(signature))


def check_signature(path: str | Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """InputError naming the settings in which a checkpoint's run differs from this one."""
    old, new = _flat(normalized(saved)), _flat(normalized(current))
    keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    if keys:
        shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
        more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
        raise InputError(
            f"{path}: a training state with other settings ({shown}{more}); expected the "
            "same settings to resume, or pass --restart to start over"
        )
