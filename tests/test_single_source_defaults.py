"""The config schema is the one source of every default: code that takes config-derived settings has none.

Two guards. (1) The public constructors and functions below take their settings without defaults, so a
value the config leaves out is an error, never a literal in the code that may drift from the schema.
Only the structural parameters named beside an entry (not config keys) may keep a default. Entries are
dotted names resolved at test time, so a class another change renames or moves shows up as skipped,
not as a collection error. (2) What ``build_dira`` and the optimiser builders make from
``load_config([])`` carries exactly the defaults written in the schema file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from itertools import pairwise
from typing import Any

import pytest
import torch

from dira.config import load_config, load_schema
from dira.methods import METHODS, TRAINER_KEYS
from dira.methods.dira import LossWeights, build_dira
from dira.registry import METHODS as REGISTRY_METHODS
from dira.train.optim import build_optimizer, parameter_groups
from dira.train.pretrain import model_section

# dotted name -> parameters that may keep a default (structural, not config keys)
TAKE_CONFIG_SETTINGS: dict[str, frozenset[str]] = {
    # methods and their assembly
    "dira.methods.mocov2.MoCoV2": frozenset(),
    "dira.methods.simsiam.SimSiam": frozenset(),
    "dira.methods.barlow_twins.BarlowTwins": frozenset(),
    "dira.methods.build_method": frozenset(),
    "dira.methods.dira.build_dira": frozenset({"structure"}),
    "dira.methods.transvw.TransVW": frozenset(),
    "dira.methods.dira.DiRA": frozenset(),
    "dira.methods.dira.LossWeights": frozenset(),
    # models
    "dira.models.unet.UNet": frozenset({"out_channels"}),
    "dira.models.segmentation.build_segmentation_model": frozenset(),
    "dira.models.classifier.build_classifier": frozenset(),
    # losses with a config-derived argument (adversarial_loss, temperature, lambd)
    "dira.losses.generator_adversarial_loss": frozenset(),
    "dira.losses.discriminator_loss": frozenset(),
    "dira.losses.infonce_loss": frozenset(),
    "dira.losses.barlow_twins_loss": frozenset(),
    # optimisers and schedules
    "dira.train.optim.LARS": frozenset(),
    "dira.train.optim.base_learning_rate": frozenset(),
    "dira.train.optim.parameter_groups": frozenset({"fixed_lr"}),
    "dira.train.optim.build_optimizer": frozenset({"fused"}),  # a device choice, not a setting
    "dira.train.optim.schedule_factor": frozenset(),
    "dira.train.optim.set_learning_rate": frozenset(),
    "dira.train.pretrainer.Pretrainer": frozenset({"ctx", "views"}),  # None only where benchmarks drive train_step
    # Grad-CAM and localization
    "dira.eval.gradcam.grad_cam": frozenset(),
    "dira.eval.localization.localization_accuracy": frozenset(),
    "dira.eval.localization.accuracy_from_boxes": frozenset(),
    "dira.eval.localize.class_heatmaps": frozenset(),
    "dira.eval.localize.predicted_boxes": frozenset(),
    # augmentation settings (pretrain.<method>.views, pretrain.distortion, pretrain.restoration)
    "dira.data.view_recipe.ViewRecipe": frozenset(),
    "dira.data.views.Restoration": frozenset(),
    "dira.data.distortions.DistortionProbabilities": frozenset(),
    "dira.models.official.import_official": frozenset(),
    # 3D fine-tuning (finetune3d.*, model3d.*)
    "dira.data.augment3d.Augmentation3D": frozenset(),
    "dira.data.augment3d.augment": frozenset(),
    "dira.data.crop_datasets.CropDataset": frozenset(),
    "dira.eval.sliding_window.sliding_window_probabilities": frozenset(),
    "dira.train.finetune.volumes.build_volume_model": frozenset(),
    "dira.train.finetune.volumes.optimizer_and_scheduler": frozenset(),
    "dira.train.finetune.volumes.loaders": frozenset(),
    "dira.train.finetune.volumes.crop_splits": frozenset(),
    "dira.train.finetune.volumes.train_volume_model": frozenset(),
    # visual-word discovery (discovery.*, model3d.base_width)
    "dira.discovery.autoencoder.train_autoencoder": frozenset(),
    "dira.discovery.autoencoder.build_autoencoder": frozenset(),
    "dira.discovery.words.PlacementRule": frozenset(),
    "dira.discovery.words.plan_words": frozenset(),
    "dira.discovery.patches.MultiResolution": frozenset(),
}

# Known exceptions, each waiting for a change elsewhere (none left).
PENDING: dict[str, str] = {}


def _resolve(dotted: str) -> Any:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = None
    if module is None or not hasattr(module, attr):
        pytest.skip(f"{dotted} does not exist (renamed or not there yet)")
    return getattr(module, attr)


def _defaulted(obj: Any) -> set[str]:
    """Parameters (or dataclass fields) of ``obj`` that have a default."""
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    return {name for name, p in inspect.signature(obj).parameters.items() if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("dotted", [
    *TAKE_CONFIG_SETTINGS,
    *(pytest.param(d, marks=pytest.mark.xfail(strict=True, reason=r)) for d, r in PENDING.items()),
])
def test_config_derived_parameters_have_no_default(dotted):
    allowed = TAKE_CONFIG_SETTINGS.get(dotted, frozenset())
    assert _defaulted(_resolve(dotted)) <= allowed, f"{dotted}: defaults belong in the schema"


# ------------------------------------------------------------------------------------------ the schema's values
def _schema_defaults(section: dict[str, Any]) -> dict[str, Any]:
    """The defaults written in a schema section, nested sections as dicts (independent of load_config)."""
    out = {}
    for name, prop in section["properties"].items():
        out[name] = _schema_defaults(prop) if "properties" in prop else prop["default"]
    return out


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return _schema_defaults(load_schema())


@pytest.fixture(scope="module")
def paper_models() -> dict[str, Any]:
    """Every method at the paper's settings, on the meta device (no 8192² projector or 65536 queue allocated)."""
    config = load_config([])
    with torch.device("meta"):
        return {name: build_dira(name, True, config[model_section(name)], config["pretrain"], {"classes": 44})
                for name in METHODS}


def _linear_widths(head: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in head.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_schema_key_of_a_method_is_a_required_setting_of_it(schema, name):
    parameters = inspect.signature(METHODS[name]).parameters
    settings = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert settings == set(schema["pretrain"][name]) - TRAINER_KEYS
    assert all(parameters[n].default is inspect.Parameter.empty for n in settings)


def test_loss_weights_are_the_schema_section(schema):
    assert {f.name for f in dataclasses.fields(LossWeights)} == set(schema["pretrain"]["loss_weights"])


def test_dira_from_the_defaults_has_the_schemas_model_and_loss_settings(schema, paper_models):
    model_cfg, pretrain = schema["model"], schema["pretrain"]
    for name, model in paper_models.items():
        if REGISTRY_METHODS[name].dims == 3:
            continue  # test_transvw_from_the_defaults_has_the_schemas_settings
        assert model.unet.backbone == model_cfg["backbone"]
        assert [b.conv1[0].out_channels for b in model.unet.decoder.blocks] == model_cfg["decoder_channels"]
        assert dataclasses.asdict(model.weights) == pretrain["loss_weights"]
        assert model.adversarial_loss == pretrain["adversarial_loss"]


def test_mocov2_from_the_defaults_has_the_schemas_settings(schema, paper_models):
    s, moco = schema["pretrain"]["mocov2"], paper_models["mocov2"].method
    assert tuple(moco.queue.shape) == (s["out_dim"], s["queue_size"])
    assert (moco.momentum, moco.temperature, moco.bn_splits) == (s["momentum"], s["temperature"], s["bn_splits"])
    assert _linear_widths(moco.head) == [(2048, s["hidden_dim"]), (s["hidden_dim"], s["out_dim"])]


def test_simsiam_from_the_defaults_has_the_schemas_settings(schema, paper_models):
    s, simsiam = schema["pretrain"]["simsiam"], paper_models["simsiam"].method
    assert _linear_widths(simsiam.projector) == [(2048, s["proj_dim"]), *[(s["proj_dim"], s["proj_dim"])] * 2]
    assert _linear_widths(simsiam.predictor) == [(s["proj_dim"], s["pred_dim"]), (s["pred_dim"], s["proj_dim"])]
    assert simsiam.fix_predictor_lr == s["fix_predictor_lr"]


def test_barlow_twins_from_the_defaults_has_the_schemas_settings(schema, paper_models):
    s, barlow = schema["pretrain"]["barlowtwins"], paper_models["barlowtwins"].method
    widths = [2048, *s["proj_dims"]]
    assert _linear_widths(barlow.projector) == list(pairwise(widths))
    assert barlow.lambd == s["lambd"]


def test_transvw_from_the_defaults_has_the_schemas_settings(schema, paper_models):
    model, s = paper_models["transvw"], schema["pretrain"]["transvw"]
    assert model.unet.widths[0] == (schema["model3d"]["base_width"], 2 * schema["model3d"]["base_width"])
    assert model.unet.down_tr64.ops[0].bn1.batch_stats_in_eval == schema["model3d"]["batch_stats_in_eval"]
    assert dataclasses.asdict(model.weights) == s["dira_loss_weights"]
    assert _linear_widths(model.method.head) == [(1024, 44)]  # Conv3d 512 -> 1024, then the classes


@pytest.mark.parametrize("name", list(METHODS))
def test_optimisers_from_the_defaults_have_the_schemas_settings(schema, name):
    s = schema["pretrain"][name]["optimizer"]
    section = load_config([])["pretrain"][name]["optimizer"]
    layer = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    optimizer = build_optimizer(parameter_groups(layer, section, batch_size=256), section)
    assert type(optimizer).__name__.lower() == s["name"]
    if s["name"] == "adam":
        assert list(optimizer.defaults["betas"]) == s["betas"]
    else:
        assert optimizer.defaults["momentum"] == s["momentum"]
    assert optimizer.defaults["weight_decay"] == s["weight_decay"]
    if s["name"] == "lars":
        assert optimizer.defaults["eta"] == s["eta"]
    lrs = {g["base_lr"] for g in optimizer.param_groups}
    assert lrs == {s["lr"], *([s["bias_lr"]] if s["bias_lr"] is not None else [])}  # batch 256: no scaling
