import numpy as np
import pytest

from lymphonet.errors import GeometryError
from lymphonet.io.volume import StructureSet, Volume


def make(shape=(4, 5, 6), spacing=(1.0, 2.0, 3.0), origin=(10.0, -5.0, 2.0), direction=None):
    return Volume(np.zeros(shape, np.float32), spacing, origin,
                  np.eye(3) if direction is None else direction)


def test_index_physical_round_trip_with_flipped_axes():
    direction = np.diag([-1.0, 1.0, -1.0])
    vol = make(direction=direction)
    kji = np.array([[0, 0, 0], [3, 4, 5], [1, 2, 3]], float)
    xyz = vol.index_to_physical(kji)
    # voxel [k=3, j=4, i=5] -> x = 10 - 5*1, y = -5 + 4*2, z = 2 - 3*3
    np.testing.assert_allclose(xyz[1], [5.0, 3.0, -7.0])
    np.testing.assert_allclose(vol.physical_to_index(xyz), kji, atol=1e-12)


def test_voxel_volume_and_grid_checks():
    vol = make()
    assert vol.voxel_volume_cc == pytest.approx(6.0 / 1000)
    assert vol.same_grid(make())
    assert not vol.same_grid(make(origin=(10.0, -5.0, 2.5)))
    with pytest.raises(GeometryError, match="does not match"):
        vol.require_same_grid(make(shape=(4, 5, 7)), "mask", patient="P1")


def test_invalid_volumes_rejected():
    with pytest.raises(GeometryError):
        Volume(np.zeros((3, 3)), (1, 1, 1))
    with pytest.raises(GeometryError, match="spacing"):
        Volume(np.zeros((3, 3, 3)), (1, 0, 1))


def test_structure_set_shape_and_rename_merges():
    grid = make()
    a = np.zeros(grid.shape, bool)
    a[0, 0, 0] = True
    b = np.zeros(grid.shape, bool)
    b[1, 1, 1] = True
    s = StructureSet({"Lt Lung": a, "Rt Lung": b}, grid)
    merged = s.rename({"Lt Lung": "lungs", "Rt Lung": "lungs"})
    assert merged.names == ["lungs"] and merged["lungs"].sum() == 2
    with pytest.raises(GeometryError, match="Bad"):
        StructureSet({"Bad": np.zeros((1, 1, 1), bool)}, grid)
