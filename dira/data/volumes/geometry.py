"""Where a volume's voxels lie in the world: ITK's image geometry and the maps world mm ↔ voxel index.

A voxel at continuous index ``(i, j, k)`` (ITK order, x fastest) lies at world point
``origin + direction @ (spacing * index)``: column ``c`` of the direction matrix is the world direction of
index axis ``c``. LUNA16 has scans whose matrix is ``diag(-1, -1, 1)``, so dividing by the spacing after
subtracting the origin, which ignores the matrix, lands a nodule on the far side of the body. The array
of such a volume is indexed ``[k, j, i]`` (:func:`array_index`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

Vector = tuple[float, float, float]
Matrix = tuple[Vector, Vector, Vector]


class HasGeometry(Protocol):
    """What ``SimpleITK.Image`` and ``SimpleITK.ImageFileReader`` (after ``ReadImageInformation``) offer."""

    def GetOrigin(self) -> tuple[float, ...]: ...
    def GetSpacing(self) -> tuple[float, ...]: ...
    def GetDirection(self) -> tuple[float, ...]: ...
    def GetSize(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Geometry:
    origin: Vector
    """World mm (x, y, z) of the centre of voxel (0, 0, 0)."""
    spacing: Vector
    """mm between voxel centres along index axes i, j, k."""
    direction: Matrix
    """Rows of the 3×3 matrix (ITK's row-major ``GetDirection``); column c is the world direction of axis c."""
    size: tuple[int, int, int]
    """Voxels along i, j, k: the array's shape reversed."""

    def __post_init__(self) -> None:
        origin = _floats(self.origin, "origin")
        spacing = _floats(self.spacing, "spacing")
        size = tuple(int(n) for n in np.asarray(self.size).reshape(-1))
        matrix = np.asarray(self.direction, dtype=float)
        if matrix.size != 9:
            raise ValueError(f"direction must have 9 entries, got {matrix.size}")
        matrix = matrix.reshape(3, 3)
        if len(size) != 3 or min(size) < 1:
            raise ValueError(f"size must be 3 positive counts, got {self.size}")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-6:
            raise ValueError(f"direction is not an invertible matrix: {matrix.tolist()}")
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in matrix))
        object.__setattr__(self, "size", size)

    @classmethod
    def of(cls, image: HasGeometry) -> Geometry:
        """The geometry of a 3-D SimpleITK image, or of a reader that has read the header only."""
        if len(image.GetSize()) != 3:
            raise ValueError(f"expected a 3-D image, got size {image.GetSize()}")
        return cls(image.GetOrigin(), image.GetSpacing(), _rows(image.GetDirection()), image.GetSize())

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """Shape (z, y, x) of the volume's array."""
        return self.size[2], self.size[1], self.size[0]

    @property
    def index_to_world_matrix(self) -> np.ndarray:
        """``direction @ diag(spacing)``: world offset (mm) of a unit step along each index axis (columns)."""
        return np.asarray(self.direction) * np.asarray(self.spacing)

    @property
    def flat_direction(self) -> tuple[float, ...]:
        """The 9 entries row by row, as SimpleITK's ``SetDirection`` takes them."""
        return tuple(v for row in self.direction for v in row)


def _floats(values: object, name: str) -> Vector:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size != 3 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be 3 finite numbers, got {values}")
    return float(array[0]), float(array[1]), float(array[2])


def _rows(flat: tuple[float, ...]) -> Matrix:
    return flat[0:3], flat[3:6], flat[6:9]  # type: ignore[return-value]


def index_to_world(geometry: Geometry, index: np.ndarray) -> np.ndarray:
    """World mm (..., 3) of continuous voxel indices (..., 3) in (i, j, k) order."""
    index = np.asarray(index, dtype=float)
    return np.asarray(geometry.origin) + index @ geometry.index_to_world_matrix.T


def world_to_index(geometry: Geometry, world: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (..., 3) in (i, j, k) order of world points (..., 3) in mm (x, y, z).

    The inverse of :func:`index_to_world`, as ITK's ``TransformPhysicalPointToContinuousIndex``.
    """
    world = np.asarray(world, dtype=float)
    inverse = np.linalg.inv(geometry.index_to_world_matrix)
    return (world - np.asarray(geometry.origin)) @ inverse.T


def array_index(index: np.ndarray) -> np.ndarray:
    """(i, j, k) indices (..., 3) reordered to (k, j, i), the order that indexes the (z, y, x) array."""
    return np.asarray(index)[..., ::-1]


def inside(geometry: Geometry, index: np.ndarray) -> np.ndarray:
    """Whether continuous indices (..., 3) fall within the volume's voxels (centres ± half a voxel)."""
    index = np.asarray(index, dtype=float)
    size = np.asarray(geometry.size, dtype=float)
    return np.all((index >= -0.5) & (index <= size - 0.5), axis=-1)
