"""storage/leave_alone.py root_rule: a root inside what a walk from higher up would leave alone
(a project's subfolder, fileorg's data folder, ~/.ssh, node_modules) is found, with the
folder that decides it; a home kept in git is not a project of all it holds."""

from __future__ import annotations

import os
from pathlib import Path

from storage.leave_alone import ScanRules, root_rule


def _rule(root: Path, home: Path, rules: ScanRules | None = None) -> tuple[str, str] | None:
    found = root_rule(os.fsencode(root), rules or ScanRules(), os.fsencode(home))
    return None if found is None else (os.fsdecode(found[0]), found[1].code)


def test_folders_above_the_root_are_judged_as_the_walk_would(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for folder in ("Code/app/.git", "Code/app/src/pkg", "Downloads/photos", ".ssh/keys"):
        (home / folder).mkdir(parents=True)
    (home / "web/node_modules/left-pad").mkdir(parents=True)
    (home / ".git").mkdir()  # the home itself in git: its own business

    assert _rule(home / "Downloads/photos", home) is None
    assert _rule(home / "Code/app/src/pkg", home) == (str(home / "Code/app"), "project")
    assert _rule(home / ".ssh/keys", home) == (str(home / ".ssh"), "credentials")
    left_pad = home / "web/node_modules/left-pad"
    assert _rule(left_pad, home) == (str(home / "web/node_modules"), "tool-folder")
    # The root's own entries are the walk's: a project root is left alone whole, by it.
    assert _rule(home / "Code/app", home) is None


def test_hidden_folders_unless_opted_in_and_sealed_folders_always(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".notes/2019").mkdir(parents=True)
    (home / ".config/app").mkdir(parents=True)
    (home / "data/operations").mkdir(parents=True)
    hidden = ScanRules(include_hidden=True)
    sealed = ScanRules(include_hidden=True, sealed=((os.fsencode(home / "data"), "data"),))

    assert _rule(home / ".notes/2019", home) == (str(home / ".notes"), "hidden")
    assert _rule(home / ".notes/2019", home, hidden) is None
    assert _rule(home / ".config/app", home, hidden) == (str(home / ".config"), "tool-folder")
    assert _rule(home / "data/operations", home, sealed) == (str(home / "data"), "data-folder")
    assert _rule(home / "data", home, sealed) == (str(home / "data"), "data-folder")
    assert _rule(home / "data2", home, sealed) is None  # a sibling whose name starts alike


def test_outside_the_home_names_count_from_the_top(tmp_path: Path) -> None:
    elsewhere = tmp_path / "srv" / ".snapshots" / "daily"
    elsewhere.mkdir(parents=True)
    (tmp_path / "srv" / "Makefile").write_text("all:\n")
    home = tmp_path / "home"

    assert _rule(elsewhere, home) == (str(tmp_path / "srv"), "project")
    (tmp_path / "srv" / "Makefile").unlink()
    assert _rule(elsewhere, home) == (str(tmp_path / "srv" / ".snapshots"), "hidden")
