"""Where a class's words are cut: the reference's border, tissue and distance rules, the ranking, the frames."""

from __future__ import annotations

import numpy as np
import pytest

from dira.data.prepare.luna16 import tissue_share
from dira.data.synthetic.luna16 import FLIPPED, IDENTITY
from dira.data.volumes.geometry import Geometry
from dira.discovery.frames import flipped_axes, map_centre, orient, relative_position, unorient
from dira.discovery.words import Patients, Placed, PlacementRule, nearest, place, plan_words
from dira.errors import InputError


def rule(**changes) -> PlacementRule:
    values = {"crop_shape": (4, 8, 8), "border": (1, 2, 2), "tissue_hu": -150.0, "tissue_lookahead": 3,
              "max_tissue_fraction": 0.15, "min_distance": 5.0, "tries": 200, "mode": "relative"}
    return PlacementRule(**{**values, **changes})


def half_tissue(shape=(20, 32, 32)) -> np.ndarray:
    """Air (-1000 HU) in y < 16, soft tissue (+40) beyond: only crops in the air half pass a 15 % tissue rule."""
    volume = np.full(shape, -1000.0, np.float32)
    volume[:, 16:] = 40.0
    return volume


def test_positions_keep_the_border_and_tissue_rules():
    volume = half_tissue()
    r = rule()
    for seed in range(20):
        placed = place(volume, np.random.default_rng(seed), r, [])
        assert placed is not None
        start = np.asarray(placed.centre) - (np.asarray(r.crop_shape) - 1) / 2
        assert np.all(start >= r.border)
        assert np.all(start + np.array([4 + 2, 8, 8]) <= np.asarray(volume.shape) - r.border)  # with lookahead
        window = volume[tuple(slice(int(a), int(a) + n) for a, n in zip(start, (6, 8, 8), strict=True))]
        assert tissue_share(window, -150, 3) <= 0.15


def test_all_tissue_gives_no_position_and_a_small_volume_none_at_all():
    assert place(np.full((20, 32, 32), 40.0, np.float32), np.random.default_rng(0), rule(), []) is None
    assert place(np.full((5, 32, 32), -1000.0, np.float32), np.random.default_rng(0), rule(), []) is None  # < 4 + 2


def test_positions_keep_their_distance_from_earlier_classes():
    volume = np.full((20, 32, 32), -1000.0, np.float32)
    rng, earlier = np.random.default_rng(3), []
    for _ in range(12):
        placed = place(volume, rng, rule(min_distance=6.0), earlier)
        assert placed is not None
        earlier.append(placed)
    centres = np.array([p.centre for p in earlier])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(len(centres), 1)]
    assert distances.min() >= 6.0


def test_earlier_positions_count_in_this_reference_s_frame():
    """A class placed on a 40-slice reference excludes the same relative spot on a 20-slice one."""
    earlier = Placed((19.5, 15.5, 15.5), (40, 32, 32), 1)
    assert np.allclose(earlier.centre_in((20, 32, 32), "relative"), (19.5 * 19 / 39, 15.5, 15.5))
    assert np.allclose(earlier.centre_in((20, 32, 32), "voxel"), (19.5, 15.5, 15.5))


def test_nearest_ranks_by_distance_with_ties_in_order():
    features = np.array([[0.0, 0], [3, 4], [1, 0], [0, 1], [10, 0]])
    order, distances = nearest(features, np.array([0.0, 0]), 4)
    assert order.tolist() == [0, 2, 3, 1] and np.allclose(distances, [0, 1, 1, 5])


def test_plan_draws_unused_references_and_gives_up_on_unusable_ones():
    ids = tuple(f"p{i}" for i in range(6))
    volumes = {uid: np.full((20, 32, 32), 40.0 if uid in ("p1", "p4") else -1000.0, np.float32) for uid in ids}
    train = Patients(ids, np.arange(12, dtype=float).reshape(6, 2))
    val = Patients(("v0", "v1"), np.array([[0.0, 0], [9, 9]]))
    words, given_up = plan_words(train, val, volumes.__getitem__, classes=4, neighbours_train=3, neighbours_val=1,
                                 rule=rule(), rng=np.random.default_rng(0))
    references = [w.reference for w in words]
    assert len(set(references)) == 4 and not {"p1", "p4"} & set(references)
    assert set(given_up) <= {"p1", "p4"}
    for word in words:
        assert word.train[0] == word.reference and len(word.train) == 3 and len(word.val) == 1
    with pytest.raises(InputError, match="found 4 of 5 classes"):
        plan_words(train, val, volumes.__getitem__, classes=5, neighbours_train=3, neighbours_val=1, rule=rule(),
                   rng=np.random.default_rng(0))


@pytest.mark.parametrize(("what", "kwargs"), [
    ("classes = 7 needs", {"classes": 7}),
    ("neighbours_train = 7", {"neighbours_train": 7}),
    ("neighbours_val = 3", {"neighbours_val": 3}),
])
def test_plan_refuses_more_than_the_splits_hold(what, kwargs):
    train = Patients(tuple(f"p{i}" for i in range(6)), np.zeros((6, 2)))
    val = Patients(("v0", "v1"), np.zeros((2, 2)))
    settings = {"classes": 2, "neighbours_train": 2, "neighbours_val": 1, **kwargs}
    with pytest.raises(InputError, match=what):
        plan_words(train, val, lambda uid: None, rule=rule(), rng=np.random.default_rng(0), **settings)


def test_flipped_scans_are_turned_to_the_common_orientation():
    def geometry(direction):
        return Geometry((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), direction, (4, 3, 2))

    assert flipped_axes(geometry(IDENTITY)) == (False, False, False)
    assert flipped_axes(geometry(FLIPPED)) == (False, True, True)  # z, y, x
    volume = np.arange(24).reshape(2, 3, 4)
    flips = (False, True, True)
    assert np.array_equal(orient(volume, flips), volume[:, ::-1, ::-1])
    index = np.array([1.0, 0.0, 3.0])
    assert np.allclose(unorient(index, volume.shape, flips), [1, 2, 0])
    assert orient(volume, flips)[1, 0, 3] == volume[tuple(unorient(index, volume.shape, flips).astype(int))]


def test_relative_centres_map_ends_to_ends():
    assert np.allclose(relative_position([0, 31, 15.5], (20, 32, 32)), [0, 1, 0.5])
    assert np.allclose(map_centre(np.array([19.0, 31, 0]), (20, 32, 32), (40, 64, 48), "relative"), [39, 63, 0])
    assert np.allclose(map_centre(np.array([5.0, 6, 7]), (20, 32, 32), (20, 32, 32), "relative"), [5, 6, 7])
    with pytest.raises(ValueError, match="coordinates"):
        map_centre(np.zeros(3), (2, 2, 2), (2, 2, 2), "world")
