"""Sidecars (IMG_1.xmp, IMG_1.jpg.json...): small files that belong to a main file beside them
and follow it wherever it goes, under its new name."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol, TypeVar

from tasks.plan.names import key

SIDECAR_EXTS = frozenset({"xmp", "aae", "srt", "json", "thm"})


class Named(Protocol):
    @property
    def path(self) -> bytes: ...
    @property
    def ext(self) -> str: ...


F = TypeVar("F", bound=Named)


def sidecars_of(files: Iterable[F]) -> dict[bytes, F]:
    """Path of each sidecar -> its main file, among `files`."""
    listed = list(files)
    # Main files by (directory, name) and (directory, stem), so sidecars can follow them.
    by_stem: dict[tuple[bytes, str], F] = {}
    by_name: dict[tuple[bytes, str], F] = {}
    for f in listed:
        if f.ext not in SIDECAR_EXTS:
            directory, _, name = f.path.rpartition(b"/")
            text = os.fsdecode(name)
            stem = text[: -len(f.ext) - 1] if f.ext else text
            by_stem.setdefault((directory, stem.casefold()), f)
            by_name[(directory, key(name))] = f
    out = {}
    for f in listed:
        if f.ext not in SIDECAR_EXTS:
            continue
        directory, _, name = f.path.rpartition(b"/")
        stem = key(name.rpartition(b".")[0])
        # IMG_1.jpg.xmp (the whole name of its main file) first, then IMG_1.xmp (its stem).
        main = by_name.get((directory, stem)) or by_stem.get((directory, stem))
        if main is not None and main is not f:
            out[f.path] = main
    return out


def sidecar_name(sidecar: Named, main: Named, main_final: bytes) -> bytes:
    """The sidecar's new name: the main file's new name (or stem) and its own extension."""
    own = os.path.basename(sidecar.path)
    own_ext = own.rpartition(b".")[2]
    if key(own) == key(os.path.basename(main.path) + b"." + own_ext):
        return main_final + b"." + own_ext
    final_stem, dot, final_ext = main_final.rpartition(b".")
    if main.ext and dot and final_stem and key(final_ext) == main.ext.casefold():
        return final_stem + b"." + own_ext
    return main_final + b"." + own_ext
