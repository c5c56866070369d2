"""Truncated, garbage and inconsistent image files, 2D and 3D: every reader answers InputError naming the file.

Each property writes a damaged copy of a small valid file (conftest's ``valid_files``) and calls the reader
the pipeline uses on it. A truncated file or random bytes must never decode to a result, nor escape as
a library's own exception: the message must name the file so that one bad scan among thousands is found.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dira.data.prepare.common import load_image
from dira.data.sources import montgomery, pe, siim
from dira.data.volumes import dicom_series, metaimage, nifti
from dira.errors import InputError

HOSTILE = settings.get_profile("hostile")
GRID = (6, 5, 4)  # (z, y, x) of conftest's volumes


def _damaged(data: bytes) -> st.SearchStrategy[bytes]:
    """A strict prefix of ``data`` (truncation, empty included) or random bytes (a foreign or zeroed file)."""
    return st.one_of(st.integers(0, len(data) - 1).map(lambda n: data[:n]),
                     st.binary(max_size=512), st.integers(1, 4096).map(lambda n: bytes(n)))


def _refused(read: Callable[[Path], object], path: Path) -> InputError:
    with pytest.raises(InputError, match=re.escape(path.name)) as caught:
        read(path)
    return caught.value


def _refused_or_intact(read: Callable[[Path], object], path: Path, intact: object) -> None:
    """InputError naming ``path``, or exactly the undamaged file's result (a cut after the last needed byte,
    e.g. a PNG missing only its IEND chunk): anything else would be a silently wrong image."""
    try:
        result = read(path)
    except InputError as err:
        assert path.name in str(err), err
        return
    assert _same(result, intact), f"{path.name}: damaged file read as a different result"


def _same(a: object, b: object) -> bool:
    if isinstance(a, tuple | list):
        return isinstance(b, tuple | list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
                                          if f != "path")
    return a == b


# ---- 2D: PNG and JPEG (ChestX-ray14, CheXpert, Montgomery), DICOM (SIIM-ACR) -------------------------------

IMAGE_READERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "png via load_image": ("png", lambda p: load_image(p, 16)),
    "jpeg via load_image": ("jpeg", lambda p: load_image(p, 16)),
    "16-bit png via read_radiograph": ("png16", montgomery.read_radiograph),
    "png via png_size": ("png", montgomery.png_size),
    "dicom via read_dicom_pixels": ("dicom", siim.read_dicom_pixels),
    # the SIIM index reads headers only (pixels are checked when decoded, above): a cut that keeps
    # Rows and Columns is a readable header, one that loses them is refused
    "dicom via the index's frame size": ("dicom", siim._frame_size),
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about cut UIDs before refusing
@pytest.mark.parametrize("reader", IMAGE_READERS)
@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_damaged_2d_image_is_refused_naming_the_file(reader, data, valid_files, tmp_path):
    kind, read = IMAGE_READERS[reader]
    original = valid_files[kind]
    path = tmp_path / f"damaged_{kind}.bin"
    path.write_bytes(original)
    intact = read(path)
    path.write_bytes(data.draw(_damaged(original)))
    _refused_or_intact(read, path, intact)


def test_valid_2d_images_still_read(valid_files, tmp_path):
    """The control: the undamaged files decode, so the refusals above are about the damage."""
    for name, (kind, read) in IMAGE_READERS.items():
        path = tmp_path / f"ok_{kind}"
        path.write_bytes(valid_files[kind])
        assert read(path) is not None, name
    assert load_image(tmp_path / "ok_png", 16)[0].shape == (16, 16)


# ---- 3D: DICOM series (LIDC), NIfTI (LiTS, BraTS), MetaImage (LUNA16), NRRD (CAD-PE) ----------------------

@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(HOSTILE, max_examples=30)
@given(data=st.data())
def test_damaged_slice_of_a_dicom_series_is_refused_naming_it(data, valid_files, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir(exist_ok=True)
    (folder / "a.dcm").write_bytes(valid_files["dicom"])
    bad = folder / "b.dcm"
    bad.write_bytes(valid_files["dicom_z1"])
    intact = dicom_series.read_series(folder)
    bad.write_bytes(data.draw(_damaged(valid_files["dicom_z1"])))
    _refused_or_intact(lambda _: dicom_series.read_series(folder), bad, intact)


@pytest.mark.parametrize("kind", ["nii", "nii.gz"])
@pytest.mark.parametrize("labels", [False, True])
@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_damaged_nifti_is_refused_naming_the_file(kind, labels, data, valid_files, tmp_path):
    path = tmp_path / f"volume-7.{kind}"
    path.write_bytes(valid_files[kind])
    intact = nifti.read_nifti(path, labels=labels)
    path.write_bytes(data.draw(_damaged(valid_files[kind])))
    _refused_or_intact(lambda p: nifti.read_nifti(p, labels=labels), path, intact)


@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_damaged_nrrd_is_refused_naming_the_file(data, valid_files, tmp_path):
    path = tmp_path / "PE7.nrrd"
    path.write_bytes(valid_files["nrrd"])
    intact = pe.read_image(path)
    path.write_bytes(data.draw(_damaged(valid_files["nrrd"])))
    _refused_or_intact(pe.read_image, path, intact)


@pytest.mark.parametrize("part", ["mhd", "raw"])
@settings(HOSTILE, max_examples=40)
@given(data=st.data())
def test_damaged_metaimage_is_refused_naming_the_file(part, data, valid_files, tmp_path):
    header, raw = tmp_path / "scan.mhd", tmp_path / "scan.raw"
    header.write_bytes(valid_files["mhd"])
    raw.write_bytes(valid_files["raw"])
    intact = metaimage.read_volume(header, np.int16)
    damaged = header if part == "mhd" else raw
    damaged.write_bytes(data.draw(_damaged(valid_files[part])))
    _refused_or_intact(lambda _: metaimage.read_volume(header, np.int16), damaged, intact)


@settings(HOSTILE, max_examples=60)
@given(size=st.tuples(*[st.integers(-2, 9)] * 3), element=st.sampled_from(["MET_SHORT", "MET_UCHAR", "MET_FLOAT"]))
def test_metaimage_header_disagreeing_with_its_data_is_refused(size, element, valid_files, tmp_path):
    """DimSize / ElementType that do not match the .raw's length (or are not a volume) never read as one."""
    if min(size) > 0 and int(np.prod(size)) == int(np.prod(GRID)) and element == "MET_SHORT":
        return  # as many int16 voxels as the .raw holds: a consistent header (e.g. 4 5 6 read as 3 5 8)
    text = valid_files["mhd"].decode()
    text = re.sub(r"DimSize = .*", "DimSize = " + " ".join(map(str, size)), text)
    text = re.sub(r"ElementType = .*", f"ElementType = {element}", text)
    header = tmp_path / "scan.mhd"
    header.write_text(text)
    (tmp_path / "scan.raw").write_bytes(valid_files["raw"])
    _refused(lambda p: metaimage.read_volume(p, np.int16), header)


@pytest.mark.parametrize("mismatch", ["shape", "affine"])
def test_nifti_mask_off_its_image_grid_is_refused_naming_both(mismatch, tmp_path):
    import nibabel as nib

    image, mask = tmp_path / "volume-3.nii", tmp_path / "segmentation-3.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)), image)
    shape = (4, 5, 7) if mismatch == "shape" else (4, 5, 6)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.diag([1, 1, 1.5, 1]) if mismatch == "affine" else np.eye(4)),
             mask)
    with pytest.raises(InputError, match=f"{re.escape(mask.name)}.*{re.escape(image.name)}"):
        nifti.read_aligned(image, [mask])


def test_nifti_header_declaring_fewer_voxels_than_the_file_holds_is_refused(valid_files, tmp_path):
    """Found by this suite: dim[3] cut from 6 to 3 used to read silently as a (3, 5, 4) volume."""
    damaged = bytearray(valid_files["nii"])
    damaged[46:48] = (3).to_bytes(2, "little")  # dim[3], the k size
    path = tmp_path / "volume-9.nii"
    path.write_bytes(bytes(damaged))
    error = _refused(nifti.read_nifti, path)
    assert "header declares (4, 5, 3)" in str(error)


def test_dicom_pixel_data_shorter_than_rows_by_columns_is_refused(valid_files, tmp_path):
    """A header/size mismatch inside one DICOM: Rows x Columns promises more pixels than PixelData holds."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(valid_files["dicom"]))
    ds.Rows = 20
    path = tmp_path / "tall.dcm"
    ds.save_as(path, enforce_file_format=True)
    _refused(siim.read_dicom_pixels, path)
