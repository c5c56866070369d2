"""Which configuration keys each stage reads, so that a job is handed exactly those and nothing else.

The workflow slices every job's settings with :func:`job_settings` (so a job's Snakemake params change, and
the job reruns, only when a key it reads changes), and the stage's command checks the slice it is given with
:func:`check_complete`: a key the stage reads but the slice lacks is an error naming the key, never a silent
schema default. A person at the shell passes whole config files instead (``--config``), which are laid over
the schema's defaults like a workflow run.

Keys are dotted paths into the validated config; ``{dataset}``, ``{method}`` and ``{task}`` are filled in per
job. A path selects its whole subtree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from dira.config import ConfigError, load_schema
from dira.registry import METHODS, TASKS

RUNTIME = ("device", "threads")

# Keys of `finetune` that only the workflow reads (which studies to schedule), or that one kind of task reads.
_STUDY_KEYS = {"label_fractions", "label_fraction_tasks", "fraction_seed"}
_SEGMENTATION_KEYS = {"num_workers", "segmentation"}


def _section_keys(section: str, exclude: Iterable[str] = ()) -> list[str]:
    properties = load_schema()["properties"][section]["properties"]
    return [f"{section}.{key}" for key in properties if key not in set(exclude)]


def stage_keys(stage: str, *, dataset: str = "", method: str = "", task: str = "",
               fraction: bool = False) -> list[str]:
    """The keys the stage reads for one job (e.g. ``stage_keys('pretrain', method='mocov2')``)."""
    if stage == "synth":
        return [f"datasets.{dataset}.synthetic"]
    if stage == "prepare":
        return ["prepare", f"datasets.{dataset}"]
    if stage == "pretrain":
        # Every shared pre-training key, and this method's own section only: tuning one method reruns its jobs alone.
        model = "model3d" if METHODS[method].dims == 3 else "model"
        return [*RUNTIME, model, *_section_keys("pretrain", exclude=METHODS), f"pretrain.{method}"]
    if stage == "finetune":
        if TASKS[task].dims == 3:  # the 3D U-Net's own model and fine-tuning sections
            fraction_keys = ["finetune.fraction_seed"] if fraction else []
            return [*RUNTIME, "model3d", "finetune3d", *fraction_keys, f"datasets.{task}"]
        kind = TASKS[task].kind
        if kind == "segmentation":
            keys = [f"finetune.{key}" for key in sorted(_SEGMENTATION_KEYS)]
        else:
            keys = _section_keys("finetune", exclude=_STUDY_KEYS | {"segmentation"})
        if fraction:
            keys.append("finetune.fraction_seed")
        return [*RUNTIME, "model", *keys, f"datasets.{task}"]
    if stage == "discover":
        return [*RUNTIME, "model3d", "discovery", "datasets.luna16"]
    if stage == "import":
        return ["model.decoder_channels"]
    if stage == "localize":
        return [*RUNTIME, "model", "localization"]
    raise ValueError(f"unknown stage '{stage}'")


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def select(config: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The nested sub-config holding exactly ``keys`` of a validated config."""
    out: dict[str, Any] = {}
    for path in keys:
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(_get(config, path))
    return out


def _schema_at(path: str) -> dict[str, Any]:
    node = load_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _missing(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Keys the schema declares (with a default) under ``path`` that ``value`` lacks, recursively."""
    if schema.get("type") != "object" or "properties" not in schema or not isinstance(value, dict):
        return []
    missing = []
    for name, sub in schema["properties"].items():
        if name not in value:
            missing.append(f"{path}.{name}")
        else:
            missing.extend(_missing(value[name], sub, f"{path}.{name}"))
    return missing


def check_complete(settings: dict[str, Any], keys: Iterable[str]) -> None:
    """Raise ConfigError naming every key the stage reads that ``settings`` lacks (nothing is filled in)."""
    missing: list[str] = []
    for path in keys:
        try:
            value = _get(settings, path)
        except KeyError:
            missing.append(path)
            continue
        missing.extend(_missing(value, _schema_at(path), path))
    if missing:
        raise ConfigError("the job's settings lack keys this stage reads (the workflow hands every job all of "
                          "them; no default is filled in): " + ", ".join(missing))
