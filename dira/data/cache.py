"""HDF5 caches: one file per dataset and split, one chunk per image, written atomically.

Layout of ``<split>.h5`` (what every reader in the package relies on):

- ``images``   uint8 (N, H, W), one chunk per image, grey levels as stored by the source, resized.
- ``ids``      UTF-8 strings (N,), the source's image identifier (ChestX-ray14: the PNG file name).
- ``labels``   uint8 (N, C) for classification sets; the attribute ``label_names`` gives the columns.
- ``patients`` int64 (N,) where the source has patient ids (splits are made at patient level).
- ``masks``    uint8 (N, H, W) for segmentation sets (0/1).
- ``original_size`` int32 (N, 2): (width, height) of the source image, to map boxes back.
- ``boxes`` float32 (M, 4) (x, y, w, h) in original pixel coordinates, with ``box_index`` int64 (M,)
  (row in ``images``) and ``box_labels`` int64 (M,) (column in ``labels``); only where the source has boxes.
- file attributes: ``dataset``, ``split``, ``cache_size`` (= H = W), ``source``, ``manifest`` (JSON),
  ``provenance`` (JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dira.errors import InputError
from dira.io import atomic_path

PER_IMAGE_ARRAYS = ("ids", "labels", "patients", "masks")  # one row per image, checked against N


class CacheWriter:
    """Stream images into a new split file; nothing appears at ``path`` until the block succeeds.

    Use as a context manager. On an exception, or when the file would be incomplete (an image slot
    never written, no ``ids``), the temporary file is deleted and a cache that existed before at
    ``path`` is left as it was.
    """

    def __init__(self, path: str | os.PathLike, n_images: int, image_size: int, attrs: dict[str, Any]):
        self.path = Path(path)
        self.n_images = n_images
        self.image_size = image_size
        self.attrs = attrs
        self._atomic = None
        self._file: h5py.File | None = None
        self._written = np.zeros(n_images, bool)

    def __enter__(self) -> CacheWriter:
        self._atomic = atomic_path(self.path, suffix=".h5.tmp")
        tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            s = self.image_size
            self._file.create_dataset("images", shape=(self.n_images, s, s), dtype=np.uint8,
                                      chunks=(1, s, s) if self.n_images else None)
            self._file.create_dataset("original_size", shape=(self.n_images, 2), dtype=np.int32)
            for key, value in self.attrs.items():
                self._file.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
        except BaseException as err:
            if self._file is not None:
                self._file.close()
            self._atomic.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write_image(self, index: int, image: np.ndarray, original_size: tuple[int, int]) -> None:
        if image.shape != (self.image_size, self.image_size) or image.dtype != np.uint8:
            raise ValueError(f"image {index}: expected uint8 {self.image_size}x{self.image_size}, "
                             f"got {image.dtype} {image.shape}")
        self._file["images"][index] = image
        self._file["original_size"][index] = original_size
        self._written[index] = True

    def write_array(self, name: str, data: np.ndarray | Sequence[str], **attrs: Any) -> None:
        """Write a whole per-sample (or per-box) array such as ``ids``, ``labels`` or ``boxes``."""
        if name in PER_IMAGE_ARRAYS and len(data) != self.n_images:
            raise ValueError(f"{self.path}: '{name}' has {len(data)} rows for {self.n_images} images")
        if _is_text(data):
            ds = self._file.create_dataset(name, data=[str(v) for v in data],
                                           dtype=h5py.string_dtype("utf-8"))
        else:
            ds = self._file.create_dataset(name, data=np.asarray(data))
        for key, value in attrs.items():
            ds.attrs[key] = value

    def _incomplete(self) -> ValueError | None:
        if "ids" not in self._file:
            return ValueError(f"{self.path}: cache written without 'ids'")
        if not self._written.all():
            missing = np.flatnonzero(~self._written)
            return ValueError(f"{self.path}: {missing.size} of {self.n_images} images never written "
                              f"(first: index {missing[0]})")
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        error = exc if exc is not None else self._incomplete()
        try:
            self._file.close()
        except Exception as close_error:  # e.g. disk full while flushing: never rename a broken file
            error = error or close_error
        if error is None:
            self._atomic.__exit__(None, None, None)  # renames into place
        else:
            self._atomic.__exit__(type(error), error, error.__traceback__)  # deletes the temporary file
        if exc is None and error is not None:
            raise error
        return False


def _is_text(data: np.ndarray | Sequence[Any]) -> bool:
    if isinstance(data, np.ndarray):
        return data.dtype.kind in "US" or (data.dtype.kind == "O" and data.size > 0
                                            and isinstance(data.flat[0], str))
    return len(data) > 0 and isinstance(data[0], str)


class SplitCache:
    """Read access to one split file. Opens lazily so that DataLoader workers each get their own handle."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: HDF5 cache not found (run `dira prepare` first)")
        self._file: h5py.File | None = None
        try:
            f = h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(f"{self.path}: not a readable HDF5 file ({err})") from err
        with f:
            if "images" not in f or "ids" not in f:
                raise InputError(f"{self.path}: not a dira cache (needs 'images' and 'ids')")
            self._len = f["images"].shape[0]

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __len__(self) -> int:
        return self._len

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot cross process boundaries; workers reopen.
        return {**self.__dict__, "_file": None}

    def image(self, index: int) -> np.ndarray:
        return self.file["images"][index]

    def images(self) -> np.ndarray:
        """All images in memory (uint8); fine for the demo sizes and a few GB of real data."""
        return self.file["images"][()]

    def has(self, name: str) -> bool:
        return name in self.file

    def array(self, name: str) -> np.ndarray:
        if name not in self.file:
            raise KeyError(f"{self.path}: no dataset '{name}'")
        data = self.file[name]
        if h5py.check_string_dtype(data.dtype) is not None:
            return np.array(data.asstr()[()], dtype=object)
        return data[()]

    @property
    def ids(self) -> np.ndarray:
        return self.array("ids")

    @property
    def label_names(self) -> list[str]:
        return [str(n) for n in self.file["labels"].attrs["label_names"]]

    @property
    def attrs(self) -> dict[str, Any]:
        out = {}
        for key, value in self.file.attrs.items():
            if isinstance(value, str) and value[:1] in "{[":
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            out[key] = value
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
