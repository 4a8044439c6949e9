"""The package's layers: kernels import nothing above them, no import circles.

Every ``import unet...`` anywhere in a module (including imports inside functions) is an
edge. Layers, bottom up: basic helpers, kernels, stages, figures, the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "unet"
LAYERS = {
    "basic": {"unet", "unet.errors", "unet.labels", "unet.io", "unet.shapes", "unet.defaults"},
    "kernel": {
        "unet.model", "unet.weights", "unet.metrics", "unet.warping", "unet.resample",
        "unet.augment", "unet.postprocess", "unet.synthetic", "unet.archive",
        "unet.registry", "unet.download", "unet.readers", "unet.splits",
        "unet.ignore", "unet.lazytiff", "unet.ngff",
        "unet.tiler", "unet.normalize", "unet.split_merge", "unet.paper", "unet.document",
        "unet.memory",
    },
    "stage": {
        "unet.datasets", "unet.fetch", "unet.cache", "unet.evaluate", "unet.info",
        "unet.predict", "unet.predict_parts", "unet.inference", "unet.sheet",
        "unet.train", "unet.trainer", "unet.train_data", "unet.train_state", "unet.validate",
        "unet.provenance", "unet.report_inputs", "unet.report_metrics", "unet.report_provenance",
        "unet.export", "unet.export_arch", "unet.export_descr", "unet.export_docs",
        "unet.export_load",
    },
    "figures": {"unet.figures", "unet.report"},
    "cli": {"unet.__main__"},  # and unet.cli, unet.cli.*
}  # fmt: skip
ORDER = list(LAYERS)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _layer(module: str) -> int:
    if module == "unet.cli" or module.startswith("unet.cli.") or module in LAYERS["cli"]:
        return ORDER.index("cli")
    for i, name in enumerate(ORDER):
        if module in LAYERS[name]:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imports(path: Path, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules)
    return {m: _imports(p, names) - {m, "unet"} for m, p in modules.items()}


def test_every_module_has_a_layer_and_imports_nothing_above_it() -> None:
    bad = [
        f"{src} ({ORDER[_layer(src)]}) imports {dst} ({ORDER[_layer(dst)]})"
        for src, deps in _graph().items()
        for dst in deps
        if _layer(dst) > _layer(src)
    ]
    assert not bad


def test_no_import_circles() -> None:
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles
