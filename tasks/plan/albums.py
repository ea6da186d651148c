"""Album folders: audio files gathered in one folder are one album, and move together.

A folder is an album when it holds at least two audio files directly and audio is at least
half of what it holds (the rest is cover art, a cue sheet, a rip log). Its name comes from the
tracks' tags when they agree (ID3, Vorbis comments, MP4 atoms, read by tasks.classify.tags),
else from the folders: `Music/Artist/Album/` names itself.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

MIN_TRACKS = 2
UNKNOWN_ARTIST = "Unknown Artist"
UNKNOWN_ALBUM = "Unknown Album"
VARIOUS_ARTISTS = "Various Artists"
# Folders that hold albums without naming their artist.
CONTAINERS = frozenset(
    {"music", "audio", "downloads", "desktop", "documents", "media", "mp3", "songs", "albums"}
    | {"musik", "musique", "música", "musica", "itunes", "itunes media", "my music"}
)


class Track(Protocol):
    @property
    def path(self) -> bytes: ...
    @property
    def category(self) -> str: ...
    @property
    def artist(self) -> str | None: ...
    @property
    def album(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Album:
    directory: bytes  # where the album is now, relative to the root
    first_track: bytes
    artist: str
    title: str
    by_tags: bool

    def reason(self) -> str:
        source = "tags" if self.by_tags else "folder names"
        return f"album {self.artist}/{self.title} ({source})"


def find_albums(files: Iterable[Track]) -> list[Album]:
    """The album folders among `files` (regular files to organize), in path order."""
    by_dir: dict[bytes, list[Track]] = defaultdict(list)
    for f in files:
        by_dir[f.path.rpartition(b"/")[0]].append(f)
    albums = []
    for directory, held in sorted(by_dir.items()):
        tracks = [f for f in held if f.category == "audio"]
        if len(tracks) >= MIN_TRACKS and 2 * len(tracks) >= len(held):
            albums.append(_named(directory, tracks))
    return albums


def _agreed(values: Sequence[str | None], total: int) -> str | None:
    """The value at least half of the tracks carry, if there is one."""
    counted = Counter(v.strip() for v in values if v and v.strip())
    if not counted:
        return None
    value, n = counted.most_common(1)[0]
    return value if 2 * n >= total else None


def _named(directory: bytes, tracks: Sequence[Track]) -> Album:
    first = min(t.path for t in tracks)
    title = _agreed([t.album for t in tracks], len(tracks))
    if title is not None:
        artists = {a.strip() for t in tracks if (a := t.artist) and a.strip()}
        artist = _agreed([t.artist for t in tracks], len(tracks))
        if artist is None:
            artist = VARIOUS_ARTISTS if len(artists) > 1 else UNKNOWN_ARTIST
        return Album(directory, first, artist, title, by_tags=True)
    parent, _, name = directory.rpartition(b"/")
    folder_title = os.fsdecode(name) if name else UNKNOWN_ALBUM
    parent_name = os.fsdecode(parent.rpartition(b"/")[2])
    artist = parent_name if parent and parent_name.casefold() not in CONTAINERS else UNKNOWN_ARTIST
    return Album(directory, first, artist, folder_title, by_tags=False)


def folder_name(text: str) -> bytes:
    """A tag as one folder name of an album's destination (never a path, never empty)."""
    cleaned = text.replace("/", "_").replace("\x00", "_").strip()
    return os.fsencode(cleaned if cleaned not in ("", ".", "..") else "_")
