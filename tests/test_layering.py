"""The import contract of DESIGN.md: dependencies point down only, checked on the source with ``ast``.

import-linter would check the same; these few lines avoid a dependency and also see imports inside
functions (the lazy ones that keep start-up fast) and ``importlib.import_module("dira....")`` literals.
Every module must belong to a layer, so a new package has to be placed here before it can pass.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import dira

# Top to bottom. A name covers its submodules; the bare package name ``dira`` means ``dira/__init__.py`` only.
LAYERS: dict[str, tuple[str, ...]] = {
    "cli": ("dira.cli",),
    "train": ("dira.train",),
    "report": ("dira.report",),
    "discovery": ("dira.discovery",),
    "eval": ("dira.eval",),
    "methods": ("dira.methods",),
    "models": ("dira.models",),
    "losses": ("dira.losses",),
    "data": ("dira.data",),
    "base": ("dira", "dira.errors", "dira.io", "dira.provenance", "dira.seeding", "dira.config", "dira.registry",
             "dira.runtime", "dira.settings", "dira.stages"),
}
# What a layer may import besides itself: whole layers, or single modules (with their submodules).
# Nobody lists "cli"; report reads result files and uses only the pure evaluation functions.
ALLOWED: dict[str, tuple[str, ...]] = {
    "cli": ("train", "report", "discovery", "eval", "methods", "models", "losses", "data", "base"),
    "discovery": ("models", "losses", "data", "base"),
    "train": ("eval", "methods", "models", "losses", "data", "base"),
    "report": ("dira.eval.statistics", "dira.eval.metrics", "dira.eval.localization", "base"),
    "eval": ("models", "data", "base"),
    "methods": ("models", "losses", "base"),
    "models": ("base",),
    "losses": ("base",),
    "data": ("base",),
    "base": (),
}
DYNAMIC_IMPORTS = {"import_module", "__import__"}


class Violation(NamedTuple):
    path: str
    line: int
    importer: str
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.importer} → {self.target}: {self.rule}"


def covers(name: str, module: str) -> bool:
    return module == name or (name != "dira" and module.startswith(name + "."))


def layer_of(module: str) -> str | None:
    """The layer of the longest name covering ``module`` (``dira.eval.x`` is eval, not base)."""
    matches = [(len(name), layer) for layer, names in LAYERS.items() for name in names if covers(name, module)]
    return max(matches)[1] if matches else None


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(tree: ast.AST, importer: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import anywhere in the tree, ``from a import b`` as ``a.b`` when that is a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = importer.split(".")[: None if is_package else -1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base) for a in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in DYNAMIC_IMPORTS):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                found.append((node.lineno, str(arg.values[0].value).rsplit(".", 1)[0]))  # f"dira.x.{y}" → dira.x
    return sorted(set(found))  # one entry for ``from a import b, c`` when neither is a module


def check(package: Path) -> list[Violation]:
    """Every import of the package that its layer rules forbid, and every module that belongs to no layer."""
    modules = module_names(package)
    root = package.parent
    violations = []
    for importer, path in modules.items():
        where = str(path.relative_to(root))
        layer = layer_of(importer)
        if layer is None:
            violations.append(Violation(where, 1, importer, "-", "module belongs to no layer of LAYERS"))
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported(tree, importer, path.name == "__init__.py", set(modules)):
            if target != package.name and not target.startswith(package.name + "."):
                continue  # a third-party module
            target_layer = layer_of(target)
            if target_layer == layer or any(
                    allowed == target_layer or covers(allowed, target) for allowed in ALLOWED[layer]):
                continue
            rule = ("nothing imports the CLI" if target_layer == "cli"
                    else f"{layer} may import only {', '.join(ALLOWED[layer]) or 'base'} (here: {target_layer})")
            violations.append(Violation(where, line, importer, target, rule))
    return violations


def test_dependencies_point_down_only():
    violations = check(Path(dira.__file__).parent)
    assert not violations, "forbidden imports:\n" + "\n".join(map(str, violations))


def test_checker_catches_planted_imports(tmp_path):
    files = {
        "__init__.py": "",
        "errors.py": "",
        "cli.py": "from dira.train import pretrain\n",
        "stray.py": "",
        "train/__init__.py": "",
        "train/pretrain.py": "from dira.methods import simsiam\nfrom dira.report import tables\n",
        "methods/__init__.py": "",
        "methods/simsiam.py": ("from dira.errors import InputError\n\n\ndef late():\n"
                               "    from ..train import pretrain\n    import dira.cli\n"),
        "eval/__init__.py": "",
        "eval/statistics.py": "",
        "eval/localize.py": "from . import statistics\nfrom dira.models import classifier\nimport dira.losses\n",
        "models/__init__.py": "",
        "models/classifier.py": "import importlib\nimportlib.import_module('dira.data.cache')\n",
        "report/__init__.py": "",
        "report/tables.py": ("import importlib\nfrom dira.eval import statistics\nfrom dira.eval.localize import x\n"
                             "importlib.import_module(f'dira.train.{x}')\n"),
    }
    for name, text in files.items():
        (tmp_path / "dira" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dira" / name).write_text(text)
    found = {(v.path, v.line, v.target) for v in check(tmp_path / "dira")}
    assert found == {
        ("dira/stray.py", 1, "-"),
        ("dira/train/pretrain.py", 2, "dira.report.tables"),
        ("dira/methods/simsiam.py", 5, "dira.train.pretrain"),
        ("dira/methods/simsiam.py", 6, "dira.cli"),
        ("dira/eval/localize.py", 3, "dira.losses"),
        ("dira/models/classifier.py", 2, "dira.data.cache"),
        ("dira/report/tables.py", 3, "dira.eval.localize"),
        ("dira/report/tables.py", 4, "dira.train"),
    }
