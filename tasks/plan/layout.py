"""Where a file belongs: organization modes as templates, validated before anything runs.

A template is a `/`-separated path of components with fields {category}, {year}, {month},
{day}, {name}, {stem}, {ext}, {parent} (the name of the file's folder), {relative_dir} (the
file's folder relative to the root, a whole component of its own: it may span several),
{artist} and {album} (from audio tags), and format specs (`{month:02d}`, storage.templates).
The last component names the file; a template that does not name it gets `/{name}` appended.
A field that renders empty takes its separator with it (`{stem}.{ext}` of README: `README`),
and a rendered file name never ends with a dot or a blank.
A file with no usable date goes to an `Unknown` folder instead of a date folder (never a wrong
year), or to the folder the caller names (`Undated`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import string
from dataclasses import dataclass
from datetime import datetime

from storage.errors import InvalidPlanOptions
from storage.templates import (
    DATE_FIELDS,
    NAME_FIELDS,
    RELATIVE_DIR,
    UNKNOWN,
    parse_template,
    strip_date_specs,
)

MODES: dict[str, str] = {
    "category_year": "{category}/{year}/{name}",
    "category": "{category}/{name}",
    "year_month": "{year}/{month:02d}/{name}",
    "extension": "{ext}/{name}",
}
NO_EXTENSION = "no-extension"
UNDATED = "Undated"
UNKNOWN_ARTIST = "Unknown Artist"
UNKNOWN_ALBUM = "Unknown Album"
# Fields that vary with where a file is and what its tags say: part of the folder cache key.
PLACE_FIELDS = ("parent", "relative_dir", "artist", "album")
_PLACE_SET = frozenset(PLACE_FIELDS)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a file is and what its tags say: the values of the place fields."""

    folder: bytes = b""  # the file's folder, relative to the root
    artist: str | None = None
    album: str | None = None

    def values(self) -> dict[str, str]:
        text = self.folder.decode("utf-8", "surrogateescape")
        return {
            "parent": text.rpartition("/")[2],
            "relative_dir": text,
            "artist": self.artist or UNKNOWN_ARTIST,
            "album": self.album or UNKNOWN_ALBUM,
        }


NOWHERE = Place()


@dataclass(frozen=True)
class Component:
    template: str
    fields: frozenset[str]

    @property
    def dated(self) -> bool:
        return bool(self.fields & DATE_FIELDS)


@dataclass(frozen=True)
class Layout:
    directories: tuple[Component, ...]
    filename: Component
    # Folders depend only on category, date and extension (unless a folder names the file):
    # rendered once per distinct combination, not once per file.
    _folders: dict[tuple[object, ...], list[bytes]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @functools.cached_property
    def _used(self) -> frozenset[str]:
        """The fields the folder components use."""
        return frozenset().union(*(c.fields for c in self.directories))

    def destination(
        self,
        category: str,
        date: datetime | None,
        name: bytes,
        ext: str,
        place: Place = NOWHERE,
        unknown: str = UNKNOWN,
    ) -> list[bytes]:
        """Path components (bytes) of the destination, relative to the root. A file without
        a date goes to the `unknown` folder in place of the date levels."""
        folder = self._folder(category, date, name, ext, place, unknown)
        if self.filename.template == "{name}":
            return [*folder, name]  # the common case: the name as it is, byte for byte
        values = _values(category, name, ext, place)
        rendered_name = _render(self.filename.template, values, date, "", unknown)
        return [*folder, _safe_name(rendered_name, name)]

    def _folder(
        self,
        category: str,
        date: datetime | None,
        name: bytes,
        ext: str,
        place: Place,
        unknown: str,
    ) -> list[bytes]:
        used = self._used
        if used & NAME_FIELDS:
            return self._render_folder(category, date, name, ext, place, unknown)
        when = (date.year, date.month, date.day) if date is not None else None
        cache_key: tuple[object, ...] = (category, when, ext, unknown)
        if used & _PLACE_SET:
            placed = place.values()
            cache_key += tuple(placed[f] for f in PLACE_FIELDS if f in used)
        found = self._folders.get(cache_key)
        if found is None:
            found = self._render_folder(category, date, name, ext, place, unknown)
            self._folders[cache_key] = found
        return found

    def _render_folder(
        self,
        category: str,
        date: datetime | None,
        name: bytes,
        ext: str,
        place: Place,
        unknown: str,
    ) -> list[bytes]:
        values = _values(category, name, ext, place)
        parts: list[str] = []
        unknown_placed = False
        for component in self.directories:
            if component.dated and date is None:
                # One Unknown folder stands for all the missing date levels.
                if not unknown_placed:
                    parts.append(unknown)
                    unknown_placed = True
                continue
            if component.template == RELATIVE_DIR:
                # The file's own folders, one component each (none for a file at the root).
                text = str(values["relative_dir"])
                parts.extend(_safe(p) for p in text.split("/") if text)
                continue
            rendered = _render(component.template, values, date, NO_EXTENSION, unknown)
            if not rendered.strip() and "parent" in component.fields and not values["parent"]:
                continue  # {parent} of a file at the root: no folder rather than "_"
            parts.append(_safe(rendered))
        return [os.fsencode(p) for p in parts]


def _values(category: str, name: bytes, ext: str, place: Place) -> dict[str, object]:
    text_name = os.fsdecode(name)
    stem = (
        text_name[: -len(ext) - 1] if ext and text_name.lower().endswith("." + ext) else text_name
    )
    return {
        "category": category.capitalize(),
        "name": text_name,
        "stem": stem,
        "ext": ext,
        **place.values(),
    }


def _render(
    template: str, values: dict[str, object], date: datetime | None, empty_ext: str, unknown: str
) -> str:
    merged = dict(values)
    if not merged["ext"]:
        merged["ext"] = empty_ext
    if date is not None:
        merged.update(year=date.year, month=date.month, day=date.day)
    else:
        merged.update(year=unknown, month=unknown, day=unknown)
        # Format specs like :02d cannot apply to the word Unknown: drop them.
        template = strip_date_specs(template)
    return _format(template, merged)


# What joins fields in a name ("{stem}.{ext}", "{year}-{stem}"): a field that renders empty
# takes its separator with it, else "{stem}.{ext}" names a file without extension "README.",
# a name Windows and SMB shares refuse and that reads as a mistake.
SEPARATORS = " .-_"


_BRACKETS = {"(": ")", "[": "]", "{": "}"}


def _format(template: str, values: dict[str, object]) -> str:
    """str.format, but an empty field drops the brackets around it ("{stem} ({ext})") and
    the separators just before it (the literal text since the last field), or when there are
    none, those just after it."""
    parsed = list(string.Formatter().parse(template))
    literals = [literal for literal, _, _, _ in parsed] + [""]
    out = ""
    for i, (_, field, spec, _) in enumerate(parsed):
        literal = literals[i]
        text = "" if field is None else format(values[field], spec or "")
        if field is not None and not text:
            closer = _BRACKETS.get(literal[-1:])
            if closer is not None and literals[i + 1].startswith(closer):
                literal, literals[i + 1] = literal[:-1], literals[i + 1][1:]
            kept = literal.rstrip(SEPARATORS)
            if kept == literal:
                literals[i + 1] = literals[i + 1].lstrip(SEPARATORS)
            literal = kept
        out += literal + text
    return out


def _safe(component: str) -> str:
    """A directory component can never climb out of the root or be empty."""
    cleaned = component.replace("/", "_").replace("\x00", "_").strip()
    if cleaned in ("", ".", ".."):
        return "_"
    return cleaned


def _safe_name(rendered: str, original: bytes) -> bytes:
    """A rendered file name, with no trailing dot or blank (Windows and SMB refuse them),
    or the original name when nothing is left."""
    cleaned = _safe(rendered.rstrip(". "))
    encoded = os.fsencode(cleaned)
    return encoded if cleaned != "_" or rendered == "_" else original


def parse_layout(mode: str, template: str | None = None) -> Layout:
    """The layout for a mode name or a user template; InvalidPlanOptions on anything unknown."""
    if template is None:
        if mode not in MODES:
            raise InvalidPlanOptions(
                f"unknown mode {mode!r}: choose one of {', '.join(MODES)} or give a template"
            )
        template = MODES[mode]
    components = [Component(p.template, p.fields) for p in parse_template(template)]
    if not components[-1].fields & NAME_FIELDS:
        components.append(Component("{name}", frozenset({"name"})))
    return Layout(tuple(components[:-1]), components[-1])
