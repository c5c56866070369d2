"""Tiny valid files in every format the readers take, as bytes, for the hostile-input tests to damage.

Each is a few hundred bytes to a few kB so that hundreds of damaged copies are written and read in seconds.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The suite's settings, registered (not loaded, so other suites keep theirs): reproducible in CI
# (derandomize), no per-example deadline on the shared 2-core machine. Each test passes its own
# max_examples: ``@settings(settings.get_profile("hostile"), max_examples=N)``.
settings.register_profile("hostile", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

GRID = (6, 5, 4)  # (z, y, x) of the test volumes


def _png(mode: str) -> bytes:
    from PIL import Image

    pixels = (np.arange(24 * 20) % 251).reshape(24, 20)
    image = Image.fromarray(pixels.astype(np.uint16 if mode == "I;16" else np.uint8))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray((np.arange(24 * 20) % 251).reshape(24, 20).astype(np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def _dicom(z_mm: float = 0.0) -> bytes:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid = generate_uid(entropy_srcs=["hostile", str(z_mm)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
    ds.Rows, ds.Columns = 16, 12
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z_mm], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.InstanceNumber = [0.8, 0.8], int(z_mm) + 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = (np.arange(16 * 12) % 251).astype(np.uint8).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _nifti(compressed: bool) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(np.arange(np.prod(GRID), dtype=np.int16).reshape(GRID[::-1]), np.diag([1.5, 1.5, 2.0, 1]))
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0) if compressed else raw


def _sitk_file(tmp: Path, name: str) -> dict[str, bytes]:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.arange(np.prod(GRID), dtype=np.int16).reshape(GRID))
    image.SetSpacing((0.7, 0.7, 1.25))
    sitk.WriteImage(image, str(tmp / name), useCompression=False)
    return {p.name: p.read_bytes() for p in tmp.iterdir()}


@pytest.fixture(scope="session")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    """Format name -> the bytes of one small valid file (``mhd`` and ``raw`` are the two halves of one)."""
    files = {"png": _png("L"), "png16": _png("I;16"), "jpeg": _jpeg(), "dicom": _dicom(), "dicom_z1": _dicom(1.0),
             "nii": _nifti(False), "nii.gz": _nifti(True)}
    meta = _sitk_file(tmp_path_factory.mktemp("mhd"), "scan.mhd")
    files["mhd"], files["raw"] = meta["scan.mhd"], meta["scan.raw"]
    files["nrrd"] = _sitk_file(tmp_path_factory.mktemp("nrrd"), "case.nrrd")["case.nrrd"]
    return files
