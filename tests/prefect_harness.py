"""Prefect's test harness on a copy of the migrated template database (flows/cli/prefect_db.py).

`prefect_test_harness` starts its server on a new SQLite file in a new temporary folder, and the
server migrates it: about 9-12 s of a core per xdist worker, every session, for the schema the
cached template already holds. Here the harness runs as Prefect wrote it, except that its
temporary folder already holds that file, copied from the template: the server finds the
schema at its head revision and starts serving. It is still a private database of this session
(a copy, never the template), empty as the harness's own would be.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

HARNESS_DATABASE = "prefect-test.db"  # the name prefect_test_harness gives its database


@contextmanager
def seeded_test_harness(template: Path, server_startup_timeout: int) -> Iterator[Path]:
    """`prefect_test_harness`, its database a copy of `template`; yields that database."""
    import prefect.testing.utilities as harness

    folder = Path(tempfile.mkdtemp(prefix="prefect-harness-"))
    database = folder / HARNESS_DATABASE
    shutil.copyfile(template, database)
    with (
        mock.patch.object(harness, "mkdtemp", return_value=str(folder)),
        harness.prefect_test_harness(server_startup_timeout=server_startup_timeout),
    ):
        yield database
