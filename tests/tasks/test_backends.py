"""The root backend is chosen once, from the root's URL, and is a value that crosses task
runners (threads, processes, Dask) whole."""

from __future__ import annotations

import pickle

import pytest

from tasks.backends import LocalBackend, ObjectBackend, backend_for


@pytest.mark.parametrize(
    ("url", "expected_type"),
    [
        ("/srv/photos", LocalBackend),
        ("relative/folder", LocalBackend),
        ("s3://bucket/prefix", ObjectBackend),
        ("r2://bucket", ObjectBackend),
    ],
)
def test_the_url_picks_the_backend(url: str, expected_type: type) -> None:
    backend = backend_for(url)
    assert type(backend) is expected_type
    assert backend.url == url


def test_what_differs_is_said_by_the_backend() -> None:
    folder, bucket = backend_for("/srv/photos"), backend_for("s3://bucket/prefix")
    assert (folder.folders_move, bucket.folders_move) == (True, False)
    assert (folder.ino_names_content, bucket.ino_names_content) == (False, True)
    assert folder.whole_in_prefix < bucket.whole_in_prefix
    assert (folder.processes(8), bucket.processes(8)) == (8, 1)


@pytest.mark.parametrize("url", ["/srv/photos", "s3://bucket/prefix"])
def test_a_backend_is_a_value_that_pickles(url: str) -> None:
    backend = backend_for(url)
    assert pickle.loads(pickle.dumps(backend)) == backend
    assert hash(backend) == hash(backend_for(url))
