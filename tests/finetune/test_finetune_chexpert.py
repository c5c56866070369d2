from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dira.data.classification import ClassificationDataset, certain_targets, uncertainty_targets
from dira.data.sources.chexpert import CHEXPERT_LABELS, COMPETITION_LABELS
from dira.errors import InputError
from dira.eval.metrics import mean_auc
from dira.train.finetune import classification as classification_runner
from dira.train.finetune import finetune
from dira.train.finetune.classification import masked_bce_with_logits

SCORED = [CHEXPERT_LABELS.index(name) for name in COMPETITION_LABELS]


def read_outputs(out_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    metrics = json.loads((out_dir / "metrics.json").read_text())
    with np.load(out_dir / "predictions.npz", allow_pickle=False) as npz:
        return metrics, {name: npz[name] for name in npz.files}


def codes_of(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["labels"][()]


@pytest.fixture
def loader_targets(monkeypatch) -> dict[str, list[np.ndarray]]:
    """Targets of two passes over the runner's training loader and one over its validation loader."""
    seen: dict[str, list[np.ndarray]] = {}
    real_fit = classification_runner.fit

    def spy(model, train_loader, val_loader, *args, **kwargs):
        seen["train"] = [torch.cat([t for _, t in train_loader]).numpy() for _ in range(2)]
        seen["val"] = [torch.cat([t for _, t in val_loader]).numpy()]
        return real_fit(model, train_loader, val_loader, *args, **kwargs)

    monkeypatch.setattr(classification_runner, "fit", spy)
    return seen


def chexpert_config(base: dict, policy: str) -> dict:
    config = copy.deepcopy(base)
    config["datasets"]["chexpert"]["uncertainty"] = policy
    return config


def test_run_trains_with_the_policy_and_scores_the_five_competition_labels(tiny_chexpert, finetune_config,
                                                                         loader_targets, tmp_path):
    finetune("chexpert", tiny_chexpert, "random", None, 0, tmp_path, chexpert_config(finetune_config, "lsr-ones"))
    train_codes = codes_of(tiny_chexpert / "train.h5")

    # Training targets: LSR-Ones draws for the uncertain cells, anew in each pass; certain cells as labelled.
    first, second = loader_targets["train"]
    soft = [np.sort(t[(t > 0) & (t < 1)]) for t in (first, second)]
    assert soft[0].size == soft[1].size == (train_codes == -1).sum()
    assert soft[0].min() >= 0.55 and soft[0].max() <= 0.85 and not np.allclose(soft[0], soft[1])
    assert (first == 1).sum() == (train_codes == 1).sum() and (first == 0).sum() == np.isin(train_codes, (0, -2)).sum()
    # Validation targets: uncertain cells unknown (nan), so the loss and AUC skip them.
    val_codes = codes_of(tiny_chexpert / "val.h5")
    assert np.isnan(loader_targets["val"][0]).sum() == (val_codes == -1).sum() > 0

    metrics, predictions = read_outputs(tmp_path)
    np.testing.assert_array_equal(predictions["class_names"], COMPETITION_LABELS)
    np.testing.assert_array_equal(predictions["y_true"], codes_of(tiny_chexpert / "test.h5")[:, SCORED] == 1)
    assert predictions["y_true"].dtype == np.uint8 and predictions["y_score"].shape == (24, 5)
    assert metrics["value"] == mean_auc(predictions["y_true"], predictions["y_score"])
    assert list(metrics["per_class"]) == list(COMPETITION_LABELS)
    assert metrics["trained_classes"] == list(CHEXPERT_LABELS) and metrics["uncertainty"] == "lsr-ones"
    assert metrics["provenance"]["config"]["datasets"]["chexpert"]["uncertainty"] == "lsr-ones"
    assert all(math.isfinite(row["val_auc"]) and math.isfinite(row["val_loss"]) for row in metrics["history"])


@pytest.mark.parametrize(("policy", "uncertain_value"), [("ones", 1.0), ("zeros", 0.0)])
def test_deterministic_policies_set_uncertain_targets(tiny_chexpert, finetune_config, loader_targets, tmp_path,
                                                      policy, uncertain_value):
    config = chexpert_config(finetune_config, policy)
    config["finetune"]["max_epochs"] = 1
    finetune("chexpert", tiny_chexpert, "random", None, 0, tmp_path, config)
    codes = codes_of(tiny_chexpert / "train.h5")
    for targets in loader_targets["train"]:
        assert set(np.unique(targets)) <= {0.0, 1.0}
        assert targets.sum() == (codes == 1).sum() + uncertain_value * (codes == -1).sum()


def test_lsr_draws_differ_per_draw_and_repeat_per_seed(tiny_chexpert):
    dataset = ClassificationDataset(tiny_chexpert / "train.h5", target_fn=uncertainty_targets("lsr-zeros"))
    uncertain = dataset.labels == -1

    def draw(seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        return np.stack([dataset[i][1].numpy() for i in range(len(dataset))])

    first, again, other = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[uncertain], other[uncertain])
    assert first[uncertain].min() >= 0 and first[uncertain].max() <= 0.3
    np.testing.assert_array_equal(first[~uncertain], (dataset.labels[~uncertain] == 1).astype(np.float32))


def test_validation_targets_and_loss_skip_uncertain_labels():
    codes = np.array([[1, 0, -1, -2]], dtype=np.int8)
    targets = certain_targets(codes)
    np.testing.assert_array_equal(targets[:, [0, 1, 3]], [[1.0, 0.0, 0.0]])
    assert np.isnan(targets[0, 2])
    logits = torch.tensor([[2.0, -1.0, 5.0, 0.5]])
    expected = F.binary_cross_entropy_with_logits(logits[:, [0, 1, 3]], torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(masked_bce_with_logits(logits, torch.from_numpy(targets)), expected)


def with_edited_labels(source_dir: Path, target_dir: Path, split: str, row: int, column: int, code: int) -> Path:
    """The caches of ``source_dir`` in ``target_dir``, one label code of ``split`` changed."""
    for name in ("train", "val", "test"):
        with h5py.File(source_dir / f"{name}.h5", "r") as source, h5py.File(target_dir / f"{name}.h5", "w") as copy_:
            for key in source:
                source.copy(key, copy_)
            if name == split:
                copy_["labels"][row, column] = code
    return target_dir


@pytest.mark.parametrize(("split", "column", "code", "problem"), [
    ("test", SCORED[0], -1, r"test\.h5: uncertain labels in the evaluated observations"),
    ("train", 0, 3, r"train\.h5: labels hold values \[3\] outside the chexpert codes"),
])
def test_caches_with_impossible_codes_are_rejected(tiny_chexpert, finetune_config, tmp_path, split, column, code,
                                                   problem):
    data = with_edited_labels(tiny_chexpert, tmp_path, split, 0, column, code)
    with pytest.raises(InputError, match=problem):
        finetune("chexpert", data, "random", None, 0, tmp_path / "out", finetune_config)
    assert not (tmp_path / "out").exists()


def test_chestxray14_cache_is_not_a_chexpert_cache(tiny_chestxray14, finetune_config, tmp_path):
    with pytest.raises(InputError, match=r"train\.h5: label_names"):
        finetune("chexpert", tiny_chestxray14, "random", None, 0, tmp_path, finetune_config)
