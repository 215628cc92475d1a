"""One volume type for every reader: a numpy array plus its physical geometry.

Conventions (the only place they are defined):

* ``array`` is indexed ``[k, j, i]`` = (slice, row, column), i.e. numpy order ``(nz, ny, nx)``, the
  order pydicom's ``pixel_array`` and ``SimpleITK.GetArrayFromImage`` use.
* ``spacing_mm``, ``origin_mm`` and ``direction`` use ITK / DICOM patient (LPS) order ``(x, y, z)``:
  ``spacing_mm[0]`` is the column (i) spacing, ``origin_mm`` is the centre of voxel ``[0, 0, 0]``,
  and ``direction`` is a 3x3 matrix whose columns are the unit vectors of the i, j, k axes.
* The physical position of voxel ``[k, j, i]`` is ``origin + direction @ (spacing * [i, j, k])``.
* Dose arrays are float in Gy (total course dose unless stated otherwise); masks are bool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lymphonet.errors import GeometryError


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array on a physical grid.

    Attributes:
        array: Voxel values, shape ``(nz, ny, nx)``.
        spacing_mm: Voxel size ``(dx, dy, dz)`` in mm.
        origin_mm: Centre of voxel ``[0, 0, 0]`` in patient coordinates ``(x, y, z)``, mm.
        direction: 3x3 direction cosines, columns = i, j, k axes in patient coordinates.
        units: ``"Gy"`` for dose, ``"label"`` for label maps, ``"mask"``, or free text.
        metadata: Non-identifying extra facts (modality, summation type, frame of reference UID).
    """

    array: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    units: str = "Gy"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise GeometryError(f"volume must be 3D, got shape {self.array.shape}", field="array")
        spacing = tuple(float(s) for s in self.spacing_mm)
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise GeometryError(f"spacing must be 3 positive numbers, got {self.spacing_mm}",
                                field="spacing_mm")
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", tuple(float(o) for o in self.origin_mm))
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nz, ny, nx)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_cc(self) -> float:
        """Volume of one voxel in cm^3."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    def index_to_physical(self, kji: np.ndarray) -> np.ndarray:
        """Map voxel indices ``[..., (k, j, i)]`` to patient coordinates ``[..., (x, y, z)]`` in mm."""
        ijk = np.asarray(kji, dtype=float)[..., ::-1]
        return np.asarray(self.origin_mm) + (ijk * np.asarray(self.spacing_mm)) @ self.direction.T

    def physical_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map patient coordinates ``[..., (x, y, z)]`` (mm) to fractional indices ``[..., (k, j, i)]``."""
        rel = np.asarray(xyz, dtype=float) - np.asarray(self.origin_mm)
        ijk = (rel @ np.linalg.inv(self.direction).T) / np.asarray(self.spacing_mm)
        return ijk[..., ::-1]

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape, spacing, origin and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=atol_mm)
            and np.allclose(self.origin_mm, other.origin_mm, atol=atol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def require_same_grid(self, other: Volume, what: str = "volume", **context) -> None:
        """Raise :class:`GeometryError` naming ``what`` unless ``other`` is on this grid."""
        if not self.same_grid(other):
            raise GeometryError(
                f"{what} grid (shape {other.shape}, spacing {other.spacing_mm}, origin "
                f"{other.origin_mm}) does not match the dose grid (shape {self.shape}, spacing "
                f"{self.spacing_mm}, origin {self.origin_mm}); resample one onto the other first",
                **context,
            )

    def with_array(self, array: np.ndarray, units: str | None = None) -> Volume:
        """A new volume on the same grid holding ``array``."""
        if array.shape != self.array.shape:
            raise GeometryError(f"array shape {array.shape} != grid shape {self.array.shape}")
        return Volume(array, self.spacing_mm, self.origin_mm, self.direction,
                      units if units is not None else self.units, dict(self.metadata))


@dataclass(frozen=True, eq=False)
class StructureSet:
    """Named boolean masks on one grid (the dose grid, normally).

    Attributes:
        masks: Structure name -> bool array of shape ``(nz, ny, nx)``. Names are as in the source
            file; map them to canonical organs with :mod:`lymphonet.io.structure_map`.
        grid: The volume whose geometry the masks share (its array is not used).
        empty: Names of structures present in the file but with no voxel (reported, not dropped).
        source: Path the structures came from (for error messages), if any.
    """

    masks: dict[str, np.ndarray]
    grid: Volume
    empty: tuple[str, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        for name, mask in self.masks.items():
            if mask.shape != self.grid.shape:
                raise GeometryError(
                    f"mask shape {mask.shape} != grid shape {self.grid.shape}",
                    file=self.source, field=name,
                )

    @property
    def names(self) -> list[str]:
        return list(self.masks)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.masks[name]

    def __contains__(self, name: object) -> bool:
        return name in self.masks

    def __len__(self) -> int:
        return len(self.masks)

    def rename(self, mapping: dict[str, str]) -> StructureSet:
        """Return a set with names replaced via ``mapping``; several sources to one name are OR-ed."""
        out: dict[str, np.ndarray] = {}
        for name, mask in self.masks.items():
            new = mapping.get(name, name)
            out[new] = out[new] | mask if new in out else mask
        return StructureSet(out, self.grid, tuple(mapping.get(n, n) for n in self.empty),
                            self.source)
