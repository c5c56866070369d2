"""One registry per concept: the schema's enums, the CLI's choices and the stage code agree with dira/registry.py."""

import copy
import importlib

from dira import registry
from dira.cli import build_parser
from dira.config import load_schema


def schema_disagreements(schema: dict) -> list[str]:
    """Every place where the schema's vocabulary differs from the registry's."""
    props = schema["properties"]
    expected = {
        "methods": list(registry.METHODS),
        "variants": list(registry.VARIANTS),
        "tasks": list(registry.TASKS),
        "inits": list(registry.BASELINE_INITS),
        "volume_datasets": registry.datasets(dims=3, prepared=True),
    }
    problems = [f"{key}: schema {props[key]['items']['enum']} != registry {values}"
                for key, values in expected.items() if props[key]["items"]["enum"] != values]
    fraction_tasks = props["finetune"]["properties"]["label_fraction_tasks"]["items"]["enum"]
    if fraction_tasks != list(registry.TASKS):
        problems.append(f"finetune.label_fraction_tasks: schema {fraction_tasks} != registry {list(registry.TASKS)}")
    pattern = props["imported_weights"]["propertyNames"]["pattern"]
    if pattern != registry.imported_init_pattern():
        problems.append(f"imported_weights names: schema {pattern} != registry {registry.imported_init_pattern()}")
    schema_datasets = list(props["datasets"]["properties"])
    if schema_datasets != registry.datasets(prepared=True):
        problems.append(f"datasets: schema {schema_datasets} != registry {registry.datasets(prepared=True)}")
    methods_with_section = [m for m in props["pretrain"]["properties"] if m in registry.METHODS]
    if sorted(methods_with_section) != sorted(registry.METHODS):
        problems.append(f"pretrain.<method> sections {methods_with_section} != registry {list(registry.METHODS)}")
    return problems


def test_the_schema_speaks_the_registry():
    assert schema_disagreements(load_schema()) == []


def test_a_schema_that_drifts_from_the_registry_is_caught():
    schema = copy.deepcopy(load_schema())
    schema["properties"]["methods"]["items"]["enum"].remove("simsiam")
    del schema["properties"]["datasets"]["properties"]["montgomery"]
    problems = schema_disagreements(schema)
    assert len(problems) == 2 and problems[0].startswith("methods:") and problems[1].startswith("datasets:")


def _choices(command: str, option: str) -> list[str]:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]
    return list(next(a for a in parser._actions if a.dest == option).choices)


def test_cli_choices_come_from_the_registry():
    assert _choices("pretrain", "method") == list(registry.METHODS)
    assert _choices("pretrain", "variant") == list(registry.VARIANTS)
    assert _choices("finetune", "task") == list(registry.TASKS)
    assert _choices("prepare", "dataset") == registry.datasets(prepared=True)
    assert _choices("synth", "dataset") == registry.datasets(prepared=True)
    assert _choices("download", "dataset") == list(registry.DATASETS)


def test_stage_code_matches_the_registry():
    from dira.data.download.catalog import load_catalog
    from dira.models.resnet import BACKBONES
    from dira.train.finetune.tasks import TASKS, SegmentationTask

    assert list(load_catalog()) == list(registry.DATASETS)
    assert list(TASKS) == list(registry.TASKS)
    for name, task in registry.TASKS.items():
        assert (task.kind == "segmentation") == isinstance(TASKS[name], SegmentationTask), name
        assert TASKS[name].metric == task.metric, name
    assert load_schema()["properties"]["model"]["properties"]["backbone"]["enum"] == list(BACKBONES)
    for name, method in registry.METHODS.items():
        module, cls = method.implementation.split(":")
        assert getattr(importlib.import_module(module), cls).name == name
    for dataset in registry.datasets(prepared=True):
        assert callable(importlib.import_module(f"dira.data.synthetic.{dataset}").write)


def test_init_names_round_trip():
    for method in registry.METHODS:
        for variant in registry.VARIANTS:
            init = registry.pretrained_init(method, variant)
            assert registry.split_pretrained_init(init) == (method, variant) and registry.is_known_init(init)
    assert registry.split_pretrained_init("random") is None and registry.is_known_init("supervised_imagenet")
    assert not registry.is_known_init("mocov2_extra")
