"""Which copy `fileorg organize --duplicates quarantine` keeps among identical files of one
mtime, on real files: the plain name, not "Copy of ..." (Windows XP, Google Drive and Office
name a copy so). The tryout's downloads kept "Copy of report.pdf" and quarantined
"report.pdf"."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.flows.cli_helpers import Cli, write_tree


def test_the_plain_name_is_kept_before_copy_of(tmp_path: Path, prefect_server: str) -> None:
    root = tmp_path / "Downloads"
    names = ["Copy of report.pdf", "Copy (2) of report.pdf", "report.pdf"]
    write_tree(root, {name: b"the same report" for name in names})
    for name in names:
        os.utime(root / name, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    cli = Cli(
        {**env, "FILEORG_DATA_URL": str(tmp_path / "data"), "PREFECT_API_URL": prefect_server}
    )

    ran = cli.run("organize", root, "--duplicates", "quarantine", "--json")
    assert ran.returncode == 0, ran.stderr
    listed = cli.run("plan", "last", "--all", "--json")
    assert listed.returncode == 0, listed.stderr

    actions = {i["src"]: i["action"] for i in json.loads(listed.stdout)["items"]}
    assert actions == {
        "report.pdf": "move",
        "Copy of report.pdf": "quarantine",
        "Copy (2) of report.pdf": "quarantine",
    }
