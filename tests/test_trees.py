"""The home-folder fixture is what it claims to be: real tags, real EXIF, every unit there."""

from __future__ import annotations

import os
from pathlib import Path

import mutagen

from tasks.classify.dates import date_from_exif
from tests.trees import (
    HOME_ALBUM,
    HOME_EXIF,
    HOME_LEFT_ALONE,
    HOME_PHOTO_COPIES,
    HOME_UNTAGGED_ALBUM,
    make_home_tree,
)


def test_the_home_tree_holds_every_unit_it_lists(tmp_path: Path) -> None:
    make_home_tree(tmp_path)

    for rel in HOME_LEFT_ALONE:
        assert os.path.lexists(tmp_path / os.fsdecode(rel)), rel
    for original, copy in HOME_PHOTO_COPIES.items():
        assert (tmp_path / os.fsdecode(original)).read_bytes() == (
            tmp_path / os.fsdecode(copy)
        ).read_bytes()


def test_the_album_has_real_tags_and_the_demo_none(tmp_path: Path) -> None:
    make_home_tree(tmp_path)

    tracks = sorted((tmp_path / os.fsdecode(HOME_ALBUM)).glob("*.mp3"))
    tags = [mutagen.File(track, easy=True) for track in tracks]
    assert [(t["artist"], t["album"]) for t in tags] == [(["The Artist"], ["The Album"])] * 3
    for demo in (tmp_path / os.fsdecode(HOME_UNTAGGED_ALBUM)).glob("*.mp3"):
        found = mutagen.File(demo, easy=True)
        assert found is not None and not found.tags


def test_the_photos_carry_their_exif_dates(tmp_path: Path) -> None:
    make_home_tree(tmp_path)

    for rel, when in HOME_EXIF.items():
        found = date_from_exif((tmp_path / os.fsdecode(rel)).read_bytes())
        assert found is not None and found.strftime("%Y:%m:%d %H:%M:%S") == when
