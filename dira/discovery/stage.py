"""The ``dira discover`` stage: LUNA16 training scans -> TransVW's pseudo-labelled visual-word crops.

Reads the scans that ``dira prepare luna16`` listed in ``splits.json`` (``pretrain_train`` from subsets 0-4,
``pretrain_val`` from 5-6), then:

1. whole scans, HU-windowed to [0, 1] and resized to ``discovery.autoencoder.volume_shape``, train the
   autoencoder (training split only) and give every patient of both splits a feature (:mod:`.autoencoder`);
2. ``discovery.classes`` visual words are planned on those features (:mod:`.words`);
3. each patient's scan is read once more and cut at every class it neighbours (:mod:`.patches`); rows are
   written in patient order (the crops of 44 x 200 x 3 instances do not fit in memory to be sorted by class).

Outputs in ``out_dir``, each written atomically: ``train.h5`` and ``val.h5`` (read by ``SplitCache``; rows laid out
as ``pretrain_train.h5``'s cubes, plus ``labels`` int64, ``resolution`` uint8, ``rank``, ``extent_zyx`` and the
rows' ``source_index`` / ``source_ids``), ``autoencoder.pt`` (the U-Net's state dict, plain tensors) and, last,
``discovery.json`` (each class's reference, coordinate and neighbours, the autoencoder's losses, provenance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dira.data.cache import SplitCache, VoxelGrid
from dira.data.prepare.luna16 import CUBE_SPLITS
from dira.data.prepare.rows import RowLayout, RowPlan, write_row_caches
from dira.data.prepare.volume_crops import CropSettings
from dira.data.sources.luna16 import Luna16Index, Scan, read_luna16
from dira.discovery.autoencoder import encode_features, train_autoencoder
from dira.discovery.frames import relative_position
from dira.discovery.patches import FIELDS, Cut, MultiResolution, PatientWords
from dira.discovery.volumes import oriented_volume, volume_stack
from dira.discovery.words import Patients, PlacementRule, VisualWord, check_counts, plan_words
from dira.errors import InputError
from dira.io import save_torch, write_json
from dira.provenance import provenance
from dira.runtime.allocator import keep_freed_buffers
from dira.runtime.device import configure_threads, resolve_device
from dira.runtime.rng import seed_everything

SPLITS = {"train": "pretrain_train", "val": "pretrain_val"}  # output split <- splits.json list
DISCOVERY_JSON = "discovery.json"
AUTOENCODER = "autoencoder.pt"
_PLAN = 1  # random stream of the reference and coordinate draws


def read_splits(path: Path, index: Luna16Index) -> dict[str, list[Scan]]:
    """The scans of each output split, in the order ``splits.json`` lists them; InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: splits file not found (run `dira prepare luna16` first)")
    try:
        listing = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    out: dict[str, list[Scan]] = {}
    for split, key in SPLITS.items():
        uids = listing.get(key) if isinstance(listing, dict) else None
        if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
            raise InputError(f"{path}: needs '{key}', a list of seriesuids (as `dira prepare luna16` writes it)")
        unknown = [u for u in uids if u not in index.scans]
        if unknown:
            raise InputError(f"{path}: {key} lists {len(unknown)} seriesuids with no scan under {index.root}, "
                             f"e.g. {unknown[0]}")
        if len(set(uids)) != len(uids):
            raise InputError(f"{path}: {key} lists a seriesuid twice")
        out[split] = [index.scans[u] for u in uids]
    shared = {s.seriesuid for s in out["train"]} & {s.seriesuid for s in out["val"]}
    if shared:
        raise InputError(f"{path}: {len(shared)} seriesuids are in both {SPLITS['train']} and {SPLITS['val']}, "
                         f"e.g. {sorted(shared)[0]}")
    if not out["train"]:
        raise InputError(f"{path}: {SPLITS['train']} is empty; discovery needs training scans")
    return out


def word_grid(settings: CropSettings) -> VoxelGrid:
    """The cubes' voxel grid (``pretrain_train.h5``), with each row's spacing in ``spacing_zyx``: rescaled rows
    differ from native ones even where the scans were resampled to one spacing."""
    return VoxelGrid("zyx", (float("nan"),) * 3,
                     {"unit": "HU", "window": list(settings.hu_window), "scaled_to": [0, 1],
                      "stored_as": settings.dtype + (" (x 255)" if settings.dtype == "uint8" else "")},
                     spacing_field="spacing_zyx")


def _cut_plans(words: list[VisualWord], scans: dict[str, list[Scan]], settings: CropSettings,
               multi: MultiResolution, mode: str) -> list[RowPlan]:
    """One source per patient that neighbours some class, in split order, its classes in label order."""
    plans = []
    for split, split_scans in scans.items():
        cuts: dict[str, list[Cut]] = {scan.seriesuid: [] for scan in split_scans}
        for word in words:
            for rank, uid in enumerate(word.train if split == "train" else word.val):
                cuts[uid].append(Cut(word.label, rank, word.placed, rescaled=split == "train" and multi.enabled))
        plans.append(RowPlan(split, [PatientWords(scan, settings, tuple(cuts[scan.seriesuid]), multi, mode)
                                     for scan in split_scans if cuts[scan.seriesuid]]))
    return plans


def _word_record(word: VisualWord) -> dict[str, Any]:
    centre = np.asarray(word.placed.centre)
    return {"label": word.label, "reference": word.reference,
            "centre_zyx": [float(c) for c in centre], "reference_shape_zyx": list(word.placed.reference_shape),
            "centre_relative_zyx": [float(c) for c in relative_position(centre, word.placed.reference_shape)],
            "tries": word.placed.tries, "train": list(word.train), "train_distances": list(word.train_distances),
            "val": list(word.val), "val_distances": list(word.val_distances)}


def discover(luna_root: Path, splits_path: Path, out_dir: Path, config: Mapping[str, Any]) -> None:
    """Write ``train.h5``, ``val.h5``, ``autoencoder.pt`` and ``discovery.json`` into ``out_dir``.

    ``config`` holds the stage's keys (``dira.stages.stage_keys('discover')``): device, threads, model3d,
    discovery, datasets.luna16. ``threads`` processes read and cut the scans.
    """
    settings, model3d, luna = config["discovery"], config["model3d"], config["datasets"]["luna16"]
    crops = CropSettings.of(luna)
    if crops.hu_window[1] <= crops.hu_window[0]:
        raise InputError(f"datasets.luna16.hu_window must be [lower, upper], lower < upper; got {luna['hu_window']}")
    low, high = settings["multi_resolution_scale"]
    if high <= low:
        raise InputError(f"discovery.multi_resolution_scale must be [low, high), low < high; got {[low, high]}")
    mode, ae = settings["coordinates"], settings["autoencoder"]
    index = read_luna16(Path(luna_root))
    scans = read_splits(Path(splits_path), index)
    check_counts(classes=settings["classes"], neighbours_train=settings["neighbours_train"],
                 neighbours_val=settings["neighbours_val"], train=len(scans["train"]), val=len(scans["val"]))
    device = resolve_device(config["device"])
    configure_threads(config["threads"])
    keep_freed_buffers()  # each step's batch buffers reuse the last step's pages
    seed_everything(settings["seed"])
    workers = config["threads"]
    stack = volume_stack([*scans["train"], *scans["val"]], crops, tuple(ae["volume_shape"]), mode, workers)
    volumes = {"train": stack[:len(scans["train"])], "val": stack[len(scans["train"]):]}  # one worker pool for both
    model, losses = train_autoencoder(volumes["train"], base_width=model3d["base_width"], epochs=ae["epochs"],
                                      lr=ae["lr"], batch_size=ae["batch_size"], seed=settings["seed"], device=device)
    patients = {split: Patients(tuple(s.seriesuid for s in scans[split]),
                                encode_features(model, volumes[split], device=device)) for split in scans}
    del volumes, stack
    by_uid = {scan.seriesuid: scan for scan in scans["train"]}
    words, given_up = plan_words(
        patients["train"], patients["val"], lambda uid: oriented_volume(by_uid[uid], crops, mode),
        classes=settings["classes"], neighbours_train=settings["neighbours_train"],
        neighbours_val=settings["neighbours_val"], rule=PlacementRule.of(luna, settings),
        rng=np.random.default_rng([settings["seed"], _PLAN]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage_config = {"model3d": model3d, "discovery": settings, "datasets": {"luna16": luna}}
    attrs = {"dataset": "luna16", "source": index.source, "kind": "visual words", "classes": len(words),
             "manifest": {"root": str(index.root.resolve()), "scans": len(index.scans), "synthetic": index.synthetic,
                          "splits": str(Path(splits_path).resolve())},
             "provenance": provenance(stage_config), "discovery": settings}
    layout = RowLayout(crops.shape, np.dtype(crops.dtype), FIELDS, word_grid(crops))
    plans = write_row_caches(_cut_plans(words, scans, crops, MultiResolution.of(settings), mode), out_dir, layout,
                             workers, attrs, "discover: cut visual words")
    save_torch(out_dir / AUTOENCODER, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    write_json(out_dir / DISCOVERY_JSON, {
        "dataset": "luna16", "splits_file": str(splits_path), "folds": {s: CUBE_SPLITS[k] for s, k in SPLITS.items()},
        "patients": {split: len(scans[split]) for split in scans},
        "rows": {plan.split: len(SplitCache(out_dir / f"{plan.split}.h5")) for plan in plans},
        "coordinates": mode, "classes": [_word_record(w) for w in words], "references_given_up": given_up,
        "autoencoder": {"file": AUTOENCODER, "feature_channels": int(model.widths[-1][1]), "epoch_losses": losses},
        "provenance": provenance(stage_config)})
    print(f"discover: {len(words)} visual words from {len(scans['train'])} training / {len(scans['val'])} "
          f"validation scans -> {out_dir}")
