"""Each stage declares the keys it reads; a job's settings must carry all of them (no silent schema default)."""

import json

import pytest

from dira.cli import main
from dira.config import ConfigError, load_config
from dira.registry import METHODS, TASKS
from dira.stages import check_complete, select, stage_keys


@pytest.fixture(scope="module")
def defaults():
    return load_config([])


def test_select_takes_exactly_the_declared_subtrees(defaults):
    keys = stage_keys("pretrain", method="mocov2")
    settings = select(defaults, keys)
    assert set(settings) == {"device", "threads", "model", "pretrain"}
    # one method's job never carries another method's section, so tuning SimSiam reruns no MoCo-v2 job
    assert "mocov2" in settings["pretrain"] and not set(METHODS) - {"mocov2"} & set(settings["pretrain"])
    assert settings["model"] == defaults["model"]
    check_complete(settings, keys)


def test_finetune_jobs_carry_only_their_kind_of_settings(defaults):
    classification = select(defaults, stage_keys("finetune", task="chestxray14"))
    segmentation = select(defaults, stage_keys("finetune", task="montgomery"))
    assert "segmentation" not in classification["finetune"] and "lr" in classification["finetune"]
    assert set(segmentation["finetune"]) == {"num_workers", "segmentation"}
    assert set(classification["datasets"]) == {"chestxray14"}
    fraction = stage_keys("finetune", task="chexpert", fraction=True)
    assert "finetune.fraction_seed" in fraction and "finetune.fraction_seed" not in stage_keys("finetune",
                                                                                               task="chexpert")
    for task in TASKS:  # every task's keys exist in the schema
        check_complete(select(defaults, stage_keys("finetune", task=task)), stage_keys("finetune", task=task))


def test_a_missing_key_is_named_not_defaulted(defaults):
    keys = stage_keys("localize")
    settings = select(defaults, keys)
    del settings["localization"]["relu"]
    del settings["threads"]
    with pytest.raises(ConfigError, match=r"localization\.relu.*|threads") as err:
        check_complete(settings, keys)
    assert "localization.relu" in str(err.value) and "threads" in str(err.value)


def test_a_command_given_incomplete_job_settings_stops_naming_the_key(defaults, tmp_path, capsys):
    settings = select(defaults, stage_keys("prepare", dataset="montgomery"))
    del settings["prepare"]["workers"]
    code = main(["prepare", "montgomery", "--root", str(tmp_path), "--out", str(tmp_path / "h5"),
                 "--settings", json.dumps(settings)])
    assert code == 2 and "prepare.workers" in capsys.readouterr().err
    assert not (tmp_path / "h5").exists()


def test_job_settings_of_wrong_type_are_rejected(defaults, tmp_path, capsys):
    settings = select(defaults, stage_keys("synth", dataset="siim"))
    settings["datasets"]["siim"]["synthetic"]["images"] = "many"
    code = main(["synth", "siim", "--out", str(tmp_path), "--settings", json.dumps(settings)])
    assert code == 2 and "datasets.siim.synthetic.images: 'many' is not of type 'integer'" in capsys.readouterr().err


def test_job_settings_are_used_as_given_with_nothing_filled_in(defaults):
    import argparse

    from dira.cli.settings import stage_settings

    keys = stage_keys("finetune", task="montgomery")
    sliced = select(defaults, keys)
    seen = stage_settings(argparse.Namespace(settings=json.dumps(sliced), config=[]), keys)
    assert seen == sliced and "pretrain" not in seen and "localization" not in seen
