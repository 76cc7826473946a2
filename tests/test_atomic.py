"""write_then_rename: a reader, or a run killed part-way, sees the old file or the whole new one."""

import numpy as np
import pytest

from shapetex.atomic import write_then_rename


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_one(tmp_path):
    path = tmp_path / "measurements.json"
    path.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_then_rename(path, half_then_fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["measurements.json"]
    write_then_rename(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["measurements.json"]


def test_numpy_savers_write_the_named_file_not_one_with_a_second_suffix(tmp_path):
    a, b = tmp_path / "img.npy", tmp_path / "feats.npz"
    write_then_rename(a, lambda tmp: np.save(tmp, np.arange(3)))
    write_then_rename(b, lambda tmp: np.savez(tmp, features=np.ones(2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.npz", "img.npy"]
    assert np.load(a).tolist() == [0, 1, 2] and np.load(b)["features"].tolist() == [1.0, 1.0]
