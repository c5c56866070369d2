"""Each synthetic finding is a distinct, visible lesion, and its box is the lesion's extent."""

from __future__ import annotations

import numpy as np
import pytest

from dira.data.labels import CHESTXRAY14_LABELS
from dira.data.synthetic.phantom import draw_chest

SIZE = 128


def render(labels, seed, size=SIZE):
    return draw_chest(labels, size, np.random.default_rng(seed), np.random.default_rng(99))


def lesion_change(label, seed, size=SIZE):
    """Image with the lesion minus the same patient without it (same anatomy, same grain), and its box."""
    with_lesion, boxes = render([label], seed, size)
    without, _ = render([], seed, size)
    return with_lesion.astype(np.int16) - without, boxes[label]


@pytest.mark.parametrize("label", CHESTXRAY14_LABELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_is_the_extent_of_the_change(label, seed):
    change, (x, y, w, h) = lesion_change(label, seed)
    rows, cols = np.flatnonzero((change != 0).any(axis=1)), np.flatnonzero((change != 0).any(axis=0))
    # Enclosing: nothing changes outside the box. Tight: at most one pixel row/column of faint tail.
    assert x <= cols[0] <= x + 1 and x + w - 1 <= cols[-1] + 1 <= x + w
    assert y <= rows[0] <= y + 1 and y + h - 1 <= rows[-1] + 1 <= y + h
    assert np.abs(change[y:y + h, x:x + w]).mean() > 8  # visible, not a faint smudge


def test_lesions_differ_in_kind_place_and_size():
    def box(label):
        return lesion_change(label, seed=0)[1]

    def centre_y(label):
        _, y, _, h = box(label)
        return (y + h / 2) / SIZE

    def mean_change(label):
        change, (x, y, w, h) = lesion_change(label, seed=0)
        return change[y:y + h, x:x + w].mean()

    area = {label: box(label)[2] * box(label)[3] for label in ("Nodule", "Mass")}
    assert area["Nodule"] * 4 < area["Mass"]
    for lower in ("Effusion", "Atelectasis", "Hernia"):
        for upper in ("Pneumothorax", "Consolidation"):
            assert centre_y(lower) > centre_y(upper) + 0.1
    assert mean_change("Pneumothorax") < -5 and mean_change("Emphysema") < -5  # air: darker
    for opacity in ("Nodule", "Mass", "Effusion", "Consolidation", "Edema", "Infiltration", "Fibrosis"):
        assert mean_change(opacity) > 5
    x, _, w, _ = box("Edema")  # bilateral
    assert x < SIZE * 0.4 and x + w > SIZE * 0.6
    assert box("Cardiomegaly")[2] > 1.3 * (2 * 0.14 * SIZE)  # wider than a normal heart


def test_one_seed_draws_the_same_patient_at_every_size():
    labels = ["Effusion", "Mass", "Nodule"]
    _, small = render(labels, seed=4, size=64)
    _, large = render(labels, seed=4, size=256)
    for label in labels:
        assert np.allclose(np.array(small[label]) / 64, np.array(large[label]) / 256, atol=2 / 64)


def test_unknown_label_is_rejected():
    with pytest.raises(ValueError, match="Infiltrate"):
        render(["Infiltrate"], seed=0)
