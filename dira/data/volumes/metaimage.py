"""MetaImage (``.mhd`` + ``.raw``) volumes, checked before SimpleITK reads them.

SimpleITK reports a truncated data file or a header whose ``DimSize`` disagrees with it as a bare ITK
exception (or reads garbage past a short file on some versions), without saying which of thousands of
scans is at fault. The header is a few ``Key = Value`` lines, so it is parsed here first and the data
file's size compared with what ``DimSize``, ``ElementType`` and ``ElementNumberOfChannels`` require; only
then is the volume read, with SimpleITK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dira.data.volumes.geometry import Geometry
from dira.errors import InputError

ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                 "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                 "MET_DOUBLE": 8}
NUMPY_TYPES = {"MET_CHAR": np.dtype(np.int8), "MET_UCHAR": np.dtype(np.uint8), "MET_SHORT": np.dtype(np.int16),
               "MET_USHORT": np.dtype(np.uint16), "MET_INT": np.dtype(np.int32), "MET_UINT": np.dtype(np.uint32),
               "MET_FLOAT": np.dtype(np.float32), "MET_DOUBLE": np.dtype(np.float64)}
REQUIRED_KEYS = ("NDims", "DimSize", "ElementType", "ElementDataFile")
MAX_HEADER_BYTES = 1 << 16  # a MetaImage header is a few hundred bytes; more means this is not one


@dataclass(frozen=True)
class MetaHeader:
    path: Path
    fields: dict[str, str]
    size: tuple[int, ...]  # DimSize, x fastest
    element_type: str
    data_file: Path | None  # None when ElementDataFile = LOCAL (data after the header, same file)
    data_offset: int  # bytes before the data in its file
    compressed: bool

    @property
    def data_bytes(self) -> int:
        """Bytes of uncompressed data the header declares."""
        channels = int(self.fields.get("ElementNumberOfChannels", "1"))
        return math.prod(self.size) * channels * ELEMENT_BYTES[self.element_type]


def read_header(path: Path) -> MetaHeader:
    """Parse and check a ``.mhd`` header (no data is read); InputError naming the file for what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: MetaImage header not found")
    with path.open("rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    fields: dict[str, str] = {}
    offset = 0
    for raw_line in head.splitlines(keepends=True):
        offset += len(raw_line)
        line = raw_line.decode("latin-1").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InputError(f"{path}: not a MetaImage header (line {line[:60]!r} is not 'Key = Value')")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break  # the header's last line; LOCAL data follows it
    missing = [key for key in REQUIRED_KEYS if key not in fields]
    if missing:
        raise InputError(f"{path}: MetaImage header lacks {', '.join(missing)}")
    try:
        ndims = int(fields["NDims"])
        size = tuple(int(v) for v in fields["DimSize"].split())
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise InputError(f"{path}: NDims / DimSize / ElementNumberOfChannels are not integers: "
                         f"{fields['NDims']!r} / {fields['DimSize']!r}") from None
    if len(size) != ndims or min(size, default=0) < 1 or channels < 1:
        raise InputError(f"{path}: DimSize {fields['DimSize']!r} is not {ndims} positive sizes (NDims = {ndims})")
    element_type = fields["ElementType"]
    if element_type not in ELEMENT_BYTES:
        raise InputError(f"{path}: unknown ElementType {element_type!r}")
    compressed = fields.get("CompressedData", "False").lower() == "true"
    name = fields["ElementDataFile"]
    if name.upper() == "LOCAL":
        data_file, data_offset = None, offset
    elif name.upper() == "LIST" or "%" in name:
        raise InputError(f"{path}: ElementDataFile {name!r} (one file per slice) is not supported")
    else:
        data_file, data_offset = path.parent / name, max(0, int(fields.get("HeaderSize", "0")))
    return MetaHeader(path, fields, size, element_type, data_file, data_offset, compressed)


def check_data(header: MetaHeader) -> None:
    """InputError naming both files when the data file is missing or its size disagrees with the header."""
    data = header.data_file or header.path
    if not data.is_file():
        raise InputError(f"{data}: data file of {header.path} not found")
    if header.compressed:
        return  # zlib: the stored size says nothing; SimpleITK's inflate checks it
    have = data.stat().st_size - header.data_offset
    need = header.data_bytes
    if have != need:
        dims = "×".join(str(n) for n in header.size)
        problem = "truncated data file" if have < need else "data file longer than declared"
        raise InputError(f"{data}: {have} data bytes, but {header.path} declares DimSize {dims} of "
                         f"{header.element_type} = {need} bytes ({problem}, or a header that disagrees with it)")


def read_geometry(path: Path) -> Geometry:
    """The geometry from the header alone (checked as :func:`read_volume` checks it), without reading voxels."""
    import SimpleITK as sitk

    header = read_header(path)
    _require_3d(header)
    check_data(header)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(header.path))
    try:
        reader.ReadImageInformation()
        return Geometry.of(reader)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"{header.path}: unreadable MetaImage header ({_first_line(err)})") from None


def read_volume(path: Path, dtype: np.dtype | type = np.int16) -> tuple[np.ndarray, Geometry]:
    """The (z, y, x) array of a 3-D MetaImage, which must be stored as ``dtype``, and its geometry."""
    import SimpleITK as sitk

    header = read_header(path)
    _require_3d(header)
    want = np.dtype(dtype)
    channels = header.fields.get("ElementNumberOfChannels", "1")
    if NUMPY_TYPES.get(header.element_type) != want or channels != "1":
        raise InputError(f"{header.path}: ElementType {header.element_type} with {channels} channel(s), "
                         f"but one channel of {want} is expected")
    check_data(header)
    try:
        image = sitk.ReadImage(str(header.path))
    except RuntimeError as err:
        raise InputError(f"{header.path}: SimpleITK could not read it ({_first_line(err)})") from None
    array = sitk.GetArrayFromImage(image)
    geometry = Geometry.of(image)
    if array.dtype != want or array.shape != geometry.array_shape:
        raise InputError(f"{header.path}: read {array.dtype} {array.shape}, expected {want} {geometry.array_shape}")
    return array, geometry


def _require_3d(header: MetaHeader) -> None:
    if len(header.size) != 3:
        raise InputError(f"{header.path}: a 3-D volume is expected, but NDims = {len(header.size)}")


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
