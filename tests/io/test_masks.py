import numpy as np
import pytest

from lymphonet.errors import GeometryError, InputError
from lymphonet.io.loaders import read_structures
from lymphonet.io.masks import read_mask_folder, write_mask_folder
from lymphonet.io.nifti import write_label_map
from lymphonet.io.volume import StructureSet, Volume


def _grid(shape=(6, 7, 8)):
    return Volume(np.zeros(shape, np.float32), (2.0, 2.0, 3.0), (-5.0, 1.0, 2.0))


def _overlapping(grid):
    body = np.zeros(grid.shape, bool)
    body[1:5, 1:6, 1:7] = True
    heart = np.zeros(grid.shape, bool)
    heart[2:4, 2:4, 2:4] = True
    target = np.zeros(grid.shape, bool)
    target[3:5, 3:5, 3:5] = True
    return StructureSet({"body": body, "heart": heart, "target": target}, grid)


def test_mask_folder_round_trip_keeps_overlaps(tmp_path):
    grid = _grid()
    s = _overlapping(grid)
    s = StructureSet(s.masks, grid, ("spleen",))
    folder = write_mask_folder(s, tmp_path / "masks")
    back = read_mask_folder(folder, grid)
    assert set(back.names) == {"body", "heart", "target"} and back.empty == ("spleen",)
    for name in s.names:
        np.testing.assert_array_equal(back[name], s[name])
    assert (back["heart"] & back["target"]).any()  # the overlap survived


def test_mask_folder_grid_mismatch_and_empty_folder(tmp_path):
    write_mask_folder(_overlapping(_grid()), tmp_path / "m")
    with pytest.raises(GeometryError, match="body.nii.gz"):
        read_mask_folder(tmp_path / "m", _grid((6, 7, 9)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no mask files"):
        read_mask_folder(tmp_path / "empty", _grid())


def test_label_map_body_contains_every_structure(tmp_path):
    grid = _grid()
    s = _overlapping(grid)
    path, _ = write_label_map(s, tmp_path / "labels.nii.gz")  # heart/target carve out body
    raw = read_structures(path, grid, canonical=False)
    assert raw["body"].sum() < s["body"].sum()
    canonical = read_structures(path, grid)
    np.testing.assert_array_equal(canonical["body"], s["body"])
    # Through a folder, masks come back exactly, overlaps included.
    folder = write_mask_folder(s, tmp_path / "masks")
    np.testing.assert_array_equal(read_structures(folder, grid)["heart"], s["heart"])
