"""Where a file belongs: organization modes as templates, validated before anything runs.

A template is a `/`-separated path of components with fields {category}, {year}, {month},
{day}, {name}, {stem}, {ext} and Python format specs (`{month:02d}`). The last component names
the file; a template that does not name it gets `/{name}` appended. A file with no usable date
goes to an `Unknown` folder instead of a date folder (never a wrong year).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime

from storage.errors import InvalidPlanOptions
from storage.templates import (
    DATE_FIELDS,
    NAME_FIELDS,
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

    def destination(
        self, category: str, date: datetime | None, name: bytes, ext: str
    ) -> list[bytes]:
        """Path components (bytes) of the destination, relative to the root."""
        folder = self._folder(category, date, name, ext)
        if self.filename.template == "{name}":
            return [*folder, name]  # the common case: the name as it is, byte for byte
        values = _values(category, name, ext)
        rendered_name = _render(self.filename.template, values, date, empty_ext="")
        return [*folder, _safe_name(rendered_name, name)]

    def _folder(self, category: str, date: datetime | None, name: bytes, ext: str) -> list[bytes]:
        if any(c.fields & NAME_FIELDS for c in self.directories):
            return self._render_folder(category, date, name, ext)
        when = (date.year, date.month, date.day) if date is not None else None
        cache_key = (category, when, ext)
        found = self._folders.get(cache_key)
        if found is None:
            found = self._folders[cache_key] = self._render_folder(category, date, name, ext)
        return found

    def _render_folder(
        self, category: str, date: datetime | None, name: bytes, ext: str
    ) -> list[bytes]:
        values = _values(category, name, ext)
        parts: list[str] = []
        unknown_placed = False
        for component in self.directories:
            if component.dated and date is None:
                # One Unknown folder stands for all the missing date levels.
                if not unknown_placed:
                    parts.append(UNKNOWN)
                    unknown_placed = True
                continue
            rendered = _render(component.template, values, date, empty_ext=NO_EXTENSION)
            parts.append(_safe(rendered))
        return [os.fsencode(p) for p in parts]


def _values(category: str, name: bytes, ext: str) -> dict[str, object]:
    text_name = os.fsdecode(name)
    stem = (
        text_name[: -len(ext) - 1] if ext and text_name.lower().endswith("." + ext) else text_name
    )
    return {"category": category.capitalize(), "name": text_name, "stem": stem, "ext": ext}


def _render(template: str, values: dict[str, object], date: datetime | None, empty_ext: str) -> str:
    merged = dict(values)
    if not merged["ext"]:
        merged["ext"] = empty_ext
    if date is not None:
        merged.update(year=date.year, month=date.month, day=date.day)
    else:
        merged.update(year=UNKNOWN, month=UNKNOWN, day=UNKNOWN)
        # Format specs like :02d cannot apply to the word Unknown: drop them.
        template = strip_date_specs(template)
    return template.format(**merged)


def _safe(component: str) -> str:
    """A directory component can never climb out of the root or be empty."""
    cleaned = component.replace("/", "_").replace("\x00", "_").strip()
    if cleaned in ("", ".", ".."):
        return "_"
    return cleaned


def _safe_name(rendered: str, original: bytes) -> bytes:
    cleaned = _safe(rendered)
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
