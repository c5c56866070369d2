"""The 3D jobs' settings: the keys they declare, the schema's per-task sections, and a run on exactly its slice
of caches written by the real LiTS preparer."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from dira import registry
from dira.cli import main
from dira.config import load_config, load_schema, validate
from dira.data.prepare.lits import prepare_lits
from dira.data.sources.brats import MODALITIES
from dira.data.synthetic.lits import write_lits
from dira.eval.metrics import score_predictions
from dira.stages import RUNTIME, check_complete, select, stage_keys
from dira.train.finetune import TASKS, VolumeClassificationTask, VolumeSegmentationTask

TASKS_3D = registry.tasks(dims=3)


@pytest.fixture(scope="module")
def defaults() -> dict:
    return load_config([])


@pytest.mark.parametrize("task", TASKS_3D)
def test_a_3d_job_reads_the_3d_sections(defaults, task):
    keys = stage_keys("finetune", task=task)
    assert keys == [*RUNTIME, "model3d", "finetune3d", f"datasets.{task}"]
    check_complete(select(defaults, keys), keys)
    fraction = stage_keys("finetune", task=task, fraction=True)
    assert "finetune.fraction_seed" in fraction and set(fraction) - set(keys) == {"finetune.fraction_seed"}


def test_every_3d_task_has_its_section_and_spec():
    properties = load_schema()["properties"]["finetune3d"]["properties"]
    assert [name for name in properties if name in registry.TASKS] == TASKS_3D
    for task in TASKS_3D:
        spec = TASKS[task]
        assert isinstance(spec, VolumeClassificationTask | VolumeSegmentationTask), task
        assert {"lr", "patience", "batch_size"} <= set(properties[task]["properties"])
    assert properties["brats"]["properties"]["modality"]["enum"] == list(MODALITIES)


def test_the_paper_learning_rates_are_the_defaults(defaults):
    lrs = {task: defaults["finetune3d"][task]["lr"] for task in TASKS_3D}
    assert lrs == {"luna16": 0.01, "pe": 0.01, "lidc": 0.01, "lits": 0.01, "brats": 0.001}  # appendix C.2


def test_a_task_bound_replaces_the_shared_one_only_where_set(defaults):
    from dira.train.finetune.volumes import task_max_epochs

    assert {task: task_max_epochs(defaults["finetune3d"], task) for task in TASKS_3D} == dict.fromkeys(TASKS_3D, 10000)
    config = validate({"finetune3d": {"max_epochs": 7, "brats": {"max_epochs": 3}}})
    assert {task: task_max_epochs(config["finetune3d"], task) for task in TASKS_3D} == {
        "luna16": 7, "pe": 7, "lidc": 7, "lits": 7, "brats": 3}


@pytest.fixture(scope="module")
def prepared_lits(tmp_path_factory):
    raw = write_lits(tmp_path_factory.mktemp("lits_raw"), count=6, image_size=32, seed=3)
    out = tmp_path_factory.mktemp("lits_h5")
    prepare_lits(raw, out, validate({"prepare": {"workers": 1},
                                     "datasets": {"lits": {"crop_shape": [8, 16, 16], "patches": {"per_case": 4}}}}))
    return out


def test_a_job_runs_on_exactly_its_slice_of_the_real_preparers_caches(prepared_lits, tmp_path, capsys):
    config = validate({"device": "cpu", "threads": 1, "model3d": {"base_width": 2},
                       "finetune3d": {"num_workers": 0, "max_epochs": 1, "lits": {"batch_size": 4, "max_epochs": 2}}})
    settings = select(config, stage_keys("finetune", task="lits"))
    code = main(["finetune", "--task", "lits", "--data", str(prepared_lits), "--init", "random", "--seed", "0",
                 "--out", str(tmp_path / "run"), "--settings", json.dumps(settings)])
    assert code in (0, None), capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    with np.load(tmp_path / "run" / "predictions.npz", allow_pickle=False) as npz:
        predictions = {name: npz[name] for name in npz.files}
    assert score_predictions("iou", predictions) == metrics["value"]
    assert list(metrics["test_volumes"]) == ["volume-115"] and metrics["n_train"] == 16
    assert metrics["epochs_trained"] == 2  # the task's own bound, not finetune3d.max_epochs
    assert metrics["provenance"]["config"] == settings  # exactly the slice it was handed


def test_a_slice_without_a_3d_key_is_refused_naming_it(defaults, tmp_path, capsys):
    settings = select(defaults, stage_keys("finetune", task="pe"))
    broken = copy.deepcopy(settings)
    del broken["finetune3d"]["pe"]["patience"]
    code = main(["finetune", "--task", "pe", "--data", str(tmp_path), "--init", "random", "--seed", "0",
                 "--out", str(tmp_path / "run"), "--settings", json.dumps(broken)])
    assert code == 2 and "finetune3d.pe.patience" in capsys.readouterr().err
