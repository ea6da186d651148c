"""storage.roots: an empty root is refused; roots too broad to organize unasked are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import RootError
from storage.roots import broad_refusal, broad_root, check_root, home_state, overlaps


@pytest.mark.parametrize("given", ["", " ", "\t\n"])
def test_an_empty_or_blank_root_is_refused(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # what "" used to mean: the folder the script ran in

    with pytest.raises(RootError, match="the root is empty"):
        check_root(given)


def test_a_root_that_is_a_broken_symlink_says_which_break(tmp_path: Path) -> None:
    """The tryout's loop read 'does not exist', which sends a user looking for a folder."""
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "dangling").symlink_to("gone")

    with pytest.raises(RootError) as loop:
        check_root(str(tmp_path / "loop1"))
    with pytest.raises(RootError) as dangling:
        check_root(str(tmp_path / "dangling"))
    with pytest.raises(RootError) as missing:
        check_root(str(tmp_path / "nothing"))

    assert str(loop.value) == f"root {tmp_path}/loop1 is a symlink loop"
    assert (
        str(dangling.value)
        == f"root {tmp_path}/dangling is a symlink to 'gone', which does not exist"
    )
    assert str(missing.value) == f"root {tmp_path}/nothing does not exist"


HOME = "/home/alice"


@pytest.mark.parametrize(
    ("root", "expected_reason"),
    [
        ("/", "a system folder"),
        ("/usr", "a system folder"),
        ("/usr/share/doc", "a system folder"),
        ("/etc", "a system folder"),
        ("/etc/nginx", "a system folder"),
        ("/var", "a system folder"),
        ("/var/lib/postgresql", "a system folder"),
        ("/boot", "a system folder"),
        ("/proc/self", "a system folder"),
        ("/sys", "a system folder"),
        ("/dev", "a system folder"),
        ("/lib", "a system folder"),
        ("/lib64/x", "a system folder"),
        ("/opt", "a system folder"),
        ("/srv", "a system folder"),
        ("/home", "a system folder"),
        ("/System/Library", "a system folder"),
        ("/private/var/db", "a system folder"),
        ("/Users", "a system folder"),
        ("C:\\", "a system folder"),
        ("C:\\Windows\\System32", "a system folder"),
        ("D:\\Program Files\\App", "a system folder"),
        (HOME, "your whole home folder"),
        ("/home/alice/Downloads", None),
        ("/srv/photos", None),
        ("/opt/archive", None),
        ("/mnt/disk/photos", None),
        ("/var/www/pictures", None),
        ("/tmp/pytest-of-root/x", None),
        ("/libraries/mine", "a system folder"),  # /lib*: refused rather than guessed at
        ("C:\\Users\\alice\\Pictures", None),
        ("s3://bucket", None),
    ],
)
def test_broad_roots(root: str, expected_reason: str | None) -> None:
    assert broad_root(root, HOME) == expected_reason


@pytest.mark.parametrize(
    ("root", "expected_reason"),
    [
        ("/home/alice", "your whole home folder"),
        ("/home/bob", "a whole home folder"),  # another's: as broad (the API's users)
        ("/root", "a whole home folder"),  # root's home, no longer "a system folder"
        ("/Users/carol", "a whole home folder"),
        ("/home/bob/Downloads", None),
        ("/root/photos", None),
    ],
)
def test_a_whole_home_is_broad_whoever_it_belongs_to(
    root: str, expected_reason: str | None
) -> None:
    assert broad_root(root, HOME) == expected_reason


def test_the_cli_and_the_api_refuse_a_broad_root_with_one_line() -> None:
    system = (
        "/usr is a system folder: programs and the system expect its files where they are;"
        " organize a folder of your files instead"
    )
    # a system folder whatever is asked: the tryout's `organize /usr --i-mean-it` planned
    # 92,282 moves of programs
    assert broad_refusal("/usr", HOME, "--i-mean-it") == system
    assert broad_refusal("/usr", HOME, "--i-mean-it", i_mean_it=True) == system
    assert broad_refusal("/", HOME, "i_mean_it", i_mean_it=True) == system.replace("/usr", "/", 1)
    assert broad_refusal("/root", HOME, "i_mean_it") == (
        "/root is a whole home folder: it holds your settings and programs' state: organize"
        " a folder in it (~/Downloads); add i_mean_it to organize it anyway"
    )
    assert broad_refusal("/root", HOME, "i_mean_it", i_mean_it=True) is None  # asked for
    assert broad_refusal("/srv/photos", HOME, "--i-mean-it") is None


def test_a_folder_that_holds_the_home_folder_is_broad() -> None:
    assert (
        broad_root("/data/users", "/data/users/alice")
        == "a folder that holds your whole home folder"
    )
    assert broad_root("/data/users/bob", "/data/users/alice") is None
    assert broad_root("/data", None) is None


@pytest.mark.parametrize(
    ("a", "b", "expected_overlap"),
    [
        ("/data/alice", "/data/alice/photos", True),
        ("/data/alice", "/data/alice2", False),
        ("/data/alice", "/data/alice", True),
        ("s3://b/data", "s3://b/data/x", True),
        ("s3://b/data", "/data", False),
    ],
)
def test_overlaps(a: str, b: str, expected_overlap: bool) -> None:
    assert overlaps(a, b) is expected_overlap
    assert overlaps(b, a) is expected_overlap


def test_a_whole_homes_program_folders_are_sealed_and_no_other_roots() -> None:
    sealed = dict(home_state("/home/bob", HOME))
    assert sealed[b"/home/bob/Library"] == "a home's Library"
    assert set(sealed) >= {b"/home/bob/snap", b"/home/bob/AppData", b"/home/bob/bin"}
    assert home_state("/root", HOME)  # root's home too
    for other in ("/home/bob/Downloads", "/srv/photos", "/usr", "s3://bucket"):
        assert home_state(other, HOME) == []
