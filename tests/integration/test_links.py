"""dataset.follow_symlinks on real LFW photos: a folder dataset whose identity folders link into the LFW copy."""

from dataclasses import replace

import pytest

from facequant.config.sections import DatasetConfig
from facequant.data.folder import load_folder
from facequant.data.lfw import DatasetError
from helpers import settings


def test_identity_folders_linked_from_elsewhere_are_refused_unless_followed(lfw, tmp_path):
    root = tmp_path / "people"
    root.mkdir()
    people = ("Colin_Powell", "Tony_Blair")
    for person in people:
        (root / person).symlink_to(lfw.images_dir / person, target_is_directory=True)
    cfg = DatasetConfig(root=str(root), name="folder", protocol="all", pairs=None)
    refused = rf"{root}/Colin_Powell is a symbolic link out of dataset.root=.*to {lfw.images_dir}/Colin_Powell"
    with pytest.raises(DatasetError, match=refused):
        load_folder(cfg)
    followed = load_folder(replace(cfg, follow_symlinks=True))
    assert followed.image_count == sum(len(list((lfw.images_dir / p).glob("*.jpg"))) for p in people)
    # following links reads the same data, so it is not a setting that keys variants
    keys = [settings(f"dataset.follow_symlinks={v}").variant_key for v in ("false", "true")]
    assert keys[0] == keys[1]
