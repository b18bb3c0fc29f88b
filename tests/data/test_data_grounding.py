"""Grounding files: `collect_grounding` writes them whole and deterministic, `GroundingSet` validates them."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vla.data.grounding import GroundingSet, collect_grounding


def test_data_grounding_round_trip(tmp_path) -> None:
    out = tmp_path / "g.h5"
    res = collect_grounding("tabletop", out=out, scenes=4, views=2, workers=2, image_size=32)
    assert res["views"] == 8
    g = GroundingSet(out)
    assert len(g) == 8 and g.cameras == ("scene", "wrist") and g.suite == "tabletop"
    assert g.feature.name == "scene" and g.feature.layout()[0] == ("target", "position", 3)
    assert g.family[:4] == ["pick_up", "pick_up", "put_in", "put_in"]  # families take turns
    batch = g.get_batch(np.array([0, 5, 7]))
    assert batch.images["scene"].shape == (3, 1, 32, 32, 3)
    assert batch.labels.shape == batch.mask.shape == (3, 8)
    assert batch.instruction == [g.instruction[i] for i in (0, 5, 7)]
    # Targets lie on the table, inside the placement region.
    assert np.all(g.labels[:, 0] > 0.3) and np.all(g.labels[:, 0] < 0.7)
    # Deterministic: the same arguments write the same views.
    again = tmp_path / "g2.h5"
    collect_grounding("tabletop", out=again, scenes=4, views=2, workers=1, image_size=32)
    np.testing.assert_array_equal(GroundingSet(again).images["wrist"], g.images["wrist"])
    # Written whole: an existing file is never overwritten.
    with pytest.raises(FileExistsError, match="written whole"):
        collect_grounding("tabletop", out=out, scenes=1, views=1, workers=1)


def test_data_grounding_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="collect-grounding"):
        GroundingSet(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ValueError, match="not a grounding set"):
        GroundingSet(other)
    with pytest.raises(ValueError, match="unknown families"):
        collect_grounding("tabletop", out=tmp_path / "x.h5", scenes=1, families=["juggle"])
    with pytest.raises(ValueError, match="scenes must be"):
        collect_grounding("tabletop", out=tmp_path / "x.h5", scenes=0)
    assert not (tmp_path / "x.h5").exists()
