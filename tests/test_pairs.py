"""The split of ``air add-degradation``'s data: seeded, whole scenes on one side."""

from __future__ import annotations

import pytest
import torch

from air_restore.core.errors import InvalidValueError
from air_restore.registry.pairs import scene, split


def test_shots_of_one_scene_stay_on_one_side_of_the_split():
    names = [f"Cam{c}_{obj}_{i}.JPG" for c in range(3) for obj in ("chair", "plant", "door", "desk", "toy")
             for i in range(1, 1 + (c + 2))]  # 15 scenes of 2-4 shots, 45 photos
    for seed in range(5):
        train, held = split(names, 0.2, seed)
        assert sorted(train + held) == list(range(len(names)))
        assert not {scene(names[i]) for i in train} & {scene(names[i]) for i in held}
        assert 9 <= len(held) <= 9 + 3  # 20% of 45, rounded up to the last scene taken
    assert split(names, 0.2, 0) == split(names, 0.2, 0) != split(names, 0.2, 1)


def test_a_photo_per_scene_splits_as_a_seeded_permutation():
    names = [f"{i}.png" for i in range(1, 101)]  # Rain100H: the held-out photos of every earlier run
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(0)).tolist()
    assert split(names, 0.2, 0) == (sorted(perm[20:]), sorted(perm[:20]))


def test_a_numbering_scheme_is_not_a_scene():
    names = [f"img_{i:03d}.png" for i in range(50)]  # one "scene" holding every photo: split photo by photo
    train, held = split(names, 0.2, 0)
    assert len(held) == 10 and len(train) == 40
    assert scene("chair_11.JPG") == scene("chair_5.JPG") == "chair" and scene("0001.png") == "0001"


def test_too_few_photos_to_split_is_an_error():
    with pytest.raises(InvalidValueError, match="at least 2"):
        split(["a.png"], 0.2, 0)
    assert split(["a_1.png", "a_2.png"], 0.5, 0) in (([0], [1]), ([1], [0]))  # one scene: one of each
