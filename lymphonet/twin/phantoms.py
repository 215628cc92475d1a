"""Parametric phantoms built from ellipsoids and cylinders (simulated anatomy).

A phantom is a label map on a regular grid: each canonical organ (lymphonet.organs) is a union of
simple shapes placed at plausible adult positions, scaled by body size. They are cartoons, not
anatomy: sizes and positions are chosen so organ volumes and the dose an organ receives from a
typical plan are in a realistic range (lungs ~2.5-4 L, heart ~0.5-0.8 L, spleen ~0.15-0.25 L).

Coordinates: patient LPS in mm, origin at the centre of the field of view; x to the patient's left,
y posterior, z superior. Arrays follow :class:`~lymphonet.io.volume.Volume` (``(nz, ny, nx)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lymphonet.io.volume import StructureSet, Volume


@dataclass(frozen=True)
class Shape:
    """An axis-aligned ellipsoid (``kind="ellipsoid"``) or z-cylinder (``"cylinder"``), in mm."""

    kind: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        cx, cy, cz = self.centre_mm
        rx, ry, rz = self.radii_mm
        inplane = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
        if self.kind == "ellipsoid":
            return inplane + ((z - cz) / rz) ** 2 <= 1.0
        if self.kind == "cylinder":
            return (inplane <= 1.0) & (np.abs(z - cz) <= rz)
        raise ValueError(f"unknown shape kind {self.kind!r}")


def _thorax_shapes(scale: float, width: float) -> dict[str, list[Shape]]:
    """Organ shapes of an adult thorax/upper abdomen; ``scale`` stretches lengths, ``width`` girth."""
    s, w = scale, width

    def e(c, r):
        return Shape("ellipsoid", (c[0] * w, c[1] * w, c[2] * s), (r[0] * w, r[1] * w, r[2] * s))

    def cyl(c, r):
        return Shape("cylinder", (c[0] * w, c[1] * w, c[2] * s), (r[0] * w, r[1] * w, r[2] * s))

    return {
        "body": [cyl((0, 0, 0), (170, 115, 200))],
        "lung_right": [e((-75, 5, 40), (55, 70, 110))],
        "lung_left": [e((80, 5, 40), (50, 70, 110))],
        "heart": [e((25, -35, -10), (55, 45, 55))],
        "great_vessels": [cyl((5, 10, 60), (14, 14, 60)), cyl((-20, 5, 40), (10, 10, 70))],
        "esophagus": [cyl((0, 45, 20), (9, 9, 150))],
        "bone_marrow": [cyl((0, 75, 0), (18, 16, 200)), cyl((0, -95, 40), (12, 6, 80))],
        "lymph_nodes": [e((-12, 15, 45), (12, 12, 25)), e((15, 15, 30), (10, 10, 20))],
        "liver": [e((-60, 0, -140), (85, 75, 60))],
        "spleen": [e((90, 45, -130), (30, 40, 45))],
        "stomach": [e((50, -10, -150), (45, 35, 40))],
    }


def thorax_phantom(
    *,
    spacing_mm: tuple[float, float, float] = (5.0, 5.0, 5.0),
    shape: tuple[int, int, int] = (88, 56, 76),
    height_scale: float = 1.0,
    girth_scale: float = 1.0,
    target_centre_mm: tuple[float, float, float] = (0.0, 45.0, 20.0),
    target_radii_mm: tuple[float, float, float] = (25.0, 25.0, 45.0),
) -> StructureSet:
    """A thorax + upper-abdomen phantom with an oesophageal target (SIMULATED anatomy).

    Args:
        spacing_mm: Voxel size ``(dx, dy, dz)``.
        shape: Grid shape ``(nz, ny, nx)``.
        height_scale: Stretch of cranio-caudal sizes (1.0 = reference adult).
        girth_scale: Stretch of in-plane sizes (larger for higher BMI).
        target_centre_mm: Centre of the ellipsoidal target (mm, LPS).
        target_radii_mm: Radii of the target (mm).

    Returns:
        Canonical organs + ``"target"`` as masks on a grid centred on the origin. Later organs in
        the list win where shapes overlap; every organ is clipped to the body.
    """
    nz, ny, nx = shape
    origin = tuple(-(n - 1) * d / 2.0 for n, d in zip((nx, ny, nz), spacing_mm))
    grid = Volume(np.zeros(shape, np.float32), spacing_mm, origin, units="label",
                  metadata={"simulated": True})
    z, y, x = np.meshgrid(*(origin[a] + spacing_mm[a] * np.arange(n)
                            for a, n in ((2, nz), (1, ny), (0, nx))), indexing="ij")
    shapes = _thorax_shapes(height_scale, girth_scale)
    shapes["target"] = [Shape("ellipsoid", target_centre_mm, target_radii_mm)]
    masks: dict[str, np.ndarray] = {}
    for name, parts in shapes.items():
        m = np.zeros(shape, bool)
        for part in parts:
            m |= part.mask(x, y, z)
        masks[name] = m
    body = masks["body"]
    for name in masks:
        masks[name] &= body
    masks["lungs"] = masks["lung_left"] | masks["lung_right"]
    return StructureSet(masks, grid, source="simulated:thorax_phantom")
