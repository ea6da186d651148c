"""A root's identity: device and inode, reached one component at a time without a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.errors import RootError
from storage.root_identity import RootChanged, check_identity, identify


def test_the_identity_is_the_folders_device_and_inode(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    assert identify(str(tmp_path)) == [st.st_dev, st.st_ino]
    assert identify("s3://bucket/prefix") is None
    check_identity(str(tmp_path), [st.st_dev, st.st_ino])


@pytest.mark.parametrize("where", ["root", "parent"])
def test_a_symlink_anywhere_on_the_way_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "real" / "a").mkdir(parents=True)
    (tmp_path / "other" / "a").mkdir(parents=True)
    root = tmp_path / "real" / "a"
    expected = identify(str(root))
    if where == "root":  # the granted folder itself
        root.rename(tmp_path / "real" / "a.old")
        root.symlink_to(tmp_path / "other" / "a")
    else:  # a folder above it
        (tmp_path / "real").rename(tmp_path / "real.old")
        (tmp_path / "real").symlink_to(tmp_path / "other")
    with pytest.raises(RootChanged, match="symlink"):
        check_identity(str(root), expected)
    with pytest.raises(RootChanged):
        check_identity(str(root), None)  # a record without an identity: links still refused


def test_another_folder_under_the_same_name_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "a"
    root.mkdir()
    expected = identify(str(root))
    root.rename(tmp_path / "a.old")
    root.mkdir()
    with pytest.raises(RootChanged, match="no longer the folder"):
        check_identity(str(root), expected)


def test_a_missing_root_is_a_root_error(tmp_path: Path) -> None:
    with pytest.raises(RootError, match="cannot be opened"):
        identify(str(tmp_path / "nope"))
