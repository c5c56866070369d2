"""Load, merge and validate pipeline configuration against the one JSON schema of the package.

A run's configuration is its config files laid, in order, over the schema's defaults (which are the paper's
values). The workflow loads the demo (config/demo.yaml) only when it is given no config file, so the demo's
settings never leak into a run of config/paper.yaml; :func:`run_config` is that rule, shared by the Snakefile
and ``dira config``. Validation fills in the schema's defaults, so a partial config is a complete one after
loading.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dira.errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "config.schema.yaml"
# The synthetic demo: what `snakemake` runs when it is given no --configfile (next to the package in a checkout).
DEMO_CONFIG = Path("config") / "demo.yaml"


class ConfigError(InputError):
    """A configuration value is missing, of the wrong type, or unknown."""


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict[str, Any]:
    """The schema (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_schema())


def _defaulting_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    # The usual jsonschema extension: fill each missing property with its declared default, then
    # validate, so nested sections get complete even when the user omits them entirely.
    base = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema_)

    cls = jsonschema.validators.extend(base, {"properties": set_defaults})
    return cls(schema)


def validate(config: dict[str, Any], schema: dict[str, Any] | None = None, *, defaults: bool = True) -> dict[str, Any]:
    """Return a validated copy of ``config`` (with the schema's defaults filled in unless ``defaults`` is False);
    raise ConfigError naming the key."""
    config = copy.deepcopy(config)
    schema = schema or _schema()
    validator = _defaulting_validator(schema) if defaults else jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"  {where}: {err.message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return config


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_source(source: str) -> dict[str, Any]:
    """A config source is a YAML/JSON file path or an inline JSON object (as Snakemake rules pass it)."""
    text = source.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"inline config is not valid JSON: {err}") from err
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{source[:80]}: a config must be a mapping, got {type(data).__name__}")
    return data


def load_config(sources: Iterable[str] = ()) -> dict[str, Any]:
    """Merge the sources in order (later wins) and validate; no sources gives the schema defaults."""
    return validate(load_sources(sources))


def demo_config_path(workflow_dir: Path | None = None) -> Path:
    """config/demo.yaml of the workflow checkout (the folder holding the Snakefile)."""
    candidates = [workflow_dir] if workflow_dir else [Path.cwd(), Path(__file__).resolve().parents[1]]
    for folder in candidates:
        if (folder / DEMO_CONFIG).is_file():
            return folder / DEMO_CONFIG
    raise ConfigError(f"no config file given and no demo config ({DEMO_CONFIG}) found in "
                      f"{', '.join(str(c) for c in candidates)}")


def run_config(configfiles: Iterable[str | Path] = (), overrides: dict[str, Any] | None = None,
               workflow_dir: Path | None = None) -> dict[str, Any]:
    """The effective configuration of a workflow run: its config files (the demo when there are none) laid in
    order over the schema's defaults, then ``overrides`` (Snakemake's ``--config KEY=VALUE``), validated."""
    files = [str(f) for f in configfiles] or [str(demo_config_path(workflow_dir))]
    merged = load_sources(files)
    return validate(deep_merge(merged, overrides or {}))


def load_sources(sources: Iterable[str]) -> dict[str, Any]:
    """Merge config sources in order (later wins), without validating or filling defaults."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged = deep_merge(merged, read_config_source(source))
    return merged
