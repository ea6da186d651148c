"""Audio tags: the artist and album of a track, from ID3, Vorbis comments or MP4 atoms.

Read with mutagen (its "easy" interface names the same fields alike in every format) from a
file descriptor the caller opened without following symlinks. Tags are untrusted bytes:
anything mutagen cannot make sense of means "no tags", never an error for the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import mutagen

# Longer values are not names a folder should carry.
MAX_TAG = 200


def tags_from_fd(fd: int) -> tuple[str | None, str | None]:
    """(artist, album) of the audio file open at `fd` (album artist first), or Nones."""
    try:
        with os.fdopen(os.dup(fd), "rb") as fh:
            found = mutagen.File(fh, easy=True)
    # mutagen parses arbitrary bytes; whatever it trips on (MutagenError, struct.error,
    # ValueError, IndexError...) means the file has no tags we can use.
    except Exception:
        return None, None
    tags = getattr(found, "tags", None)
    if found is None or tags is None:
        return None, None
    return _first(tags, "albumartist") or _first(tags, "artist"), _first(tags, "album")


def _first(tags: Mapping[str, object], name: str) -> str | None:
    try:
        values = tags.get(name)
    except Exception:  # some tag classes raise on keys they do not map
        return None
    if not isinstance(values, list) or not values:
        return None
    value = str(values[0]).replace("\x00", "").strip()
    return value[:MAX_TAG] or None
