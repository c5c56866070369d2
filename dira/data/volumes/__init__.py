"""CT / MRI volumes: voxel geometry (world mm ↔ voxel index), MetaImage reading, resampling, HU windowing.

Array convention everywhere in this package: a volume is a C-ordered numpy array indexed ``[k, j, i]``
(z, y, x), as ``SimpleITK.GetArrayFromImage`` returns it, while indices and sizes in :class:`Geometry` are
in ITK's order ``(i, j, k)`` (x fastest). World points are LPS millimetres ``(x, y, z)``, the order of
LUNA16's ``coordX, coordY, coordZ``.
"""
