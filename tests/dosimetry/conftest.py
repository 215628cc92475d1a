"""A small phantom plan shared by the blood-dose tests."""

from __future__ import annotations

import numpy as np
import pytest

from lymphonet.io.volume import StructureSet, Volume

BOXES = {"body": (slice(None),) * 3, "lungs": (slice(2, 12), slice(2, 10), slice(0, 20)),
         "lung_left": (slice(2, 12), slice(2, 10), slice(0, 10)),
         "heart": (slice(12, 16), slice(4, 10), slice(5, 15)),
         "aorta": (slice(16, 18), slice(4, 6), slice(5, 15)),
         "superior_vena_cava": (slice(16, 18), slice(7, 9), slice(5, 10)),
         "inferior_vena_cava": (slice(16, 18), slice(7, 9), slice(10, 15)),
         "great_vessels": (slice(16, 18), slice(4, 9), slice(5, 15)),
         "ptv": (slice(5, 9), slice(5, 9), slice(10, 18)),
         "gtv": (slice(6, 8), slice(6, 8), slice(12, 16)),
         "gtv_straddling": (slice(10, 14), slice(6, 8), slice(12, 16)),
         "bone_marrow": (slice(0, 20), slice(16, 19), slice(8, 12)),
         "optic_nerve": (slice(0, 1), slice(0, 1), slice(0, 2))}


def phantom(names=("body", "lungs", "heart", "ptv")):
    """20x20x20 grid of 5 mm voxels (0.125 cc): course dose 0..60 Gy ramp along x."""
    shape = (20, 20, 20)
    grid = Volume(np.zeros(shape), (5.0, 5.0, 5.0))
    ramp = np.broadcast_to(np.linspace(0.0, 60.0, 20)[None, None, :], shape).copy()
    masks = {}
    for name in names:
        m = np.zeros(shape, bool)
        m[BOXES[name]] = True
        masks[name] = m
    return grid.with_array(ramp, "Gy"), StructureSet(masks, grid)


@pytest.fixture
def make_phantom():
    return phantom
