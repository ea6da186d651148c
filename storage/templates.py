"""Layout templates (and exclude patterns) as users write them, checked before anything runs:
pure, no I/O.

A template is a `/`-separated path of components made of literal text and the fields
{category}, {year}, {month}, {day}, {name}, {stem}, {ext}, {parent}, {relative_dir},
{artist}, {album} ({relative_dir} is a whole component of its own: it may span folders).
Shared by the planner (tasks.plan.layout), the CLI and the API, so all three refuse the same
templates with the same line.

Format specs are restricted to what makes sense for each field, with bounded widths (a width
is memory the planner allocates for every file: `{name:>4000000000}` is 4 GB a file):
- numbers (year, month, day): `[[fill]align][0][width][d]`, e.g. `{month:02d}`;
- text (category, name, stem, ext, parent, relative_dir, artist, album):
  `[[fill]align][width][.precision][s]`, e.g. `{stem:.40}`.
Widths and precisions are at most MAX_WIDTH; a fill is a printable character.
A component that renders longer than NAME_MAX bytes even for a short name (the sample file
below) is refused too: no filesystem in common use would take it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from storage.errors import InvalidPlanOptions

FIELDS = frozenset(
    {"category", "year", "month", "day", "name", "stem", "ext"}
    | {"parent", "relative_dir", "artist", "album"}  # where a file is, what its tags say
)
RELATIVE_DIR = "{relative_dir}"
DATE_FIELDS = frozenset({"year", "month", "day"})
NAME_FIELDS = frozenset({"name", "stem"})
NUMBER_FIELDS = DATE_FIELDS
NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, APFS, NTFS in UTF-16 units)
MAX_WIDTH = NAME_MAX
UNKNOWN = "Unknown"  # what a date field renders as when the file has no usable date

_NUMBER_SPEC = re.compile(r"(?:(?P<fill>.)?[<>=^])?0?(?P<width>\d+)?d?", re.DOTALL)
_TEXT_SPEC = re.compile(
    r"(?:(?P<fill>.)?[<>^])?(?P<width>\d+)?(?:\.(?P<precision>\d+))?s?", re.DOTALL
)
SAMPLE: dict[str, object] = {
    "category": "Images",
    "year": 2019,
    "month": 4,
    "day": 12,
    "name": "a.jpg",
    "stem": "a",
    "ext": "jpg",
    "parent": "Taxes 2019",
    "relative_dir": "Documents/Finance",
    "artist": "Artist",
    "album": "Album",
}
_UNDATED = {**SAMPLE, "year": UNKNOWN, "month": UNKNOWN, "day": UNKNOWN}


@dataclass(frozen=True)
class Part:
    """One checked component: its template text and the fields it uses."""

    template: str
    fields: frozenset[str]


def parse_template(template: str) -> list[Part]:
    """The components of a template, each checked; InvalidPlanOptions with one line if not."""
    if not template.strip() or template.startswith("/"):
        raise InvalidPlanOptions(f"template {template!r} must be a relative path")
    return [_part(raw, template) for raw in template.split("/")]


def check_exclude(patterns: list[str]) -> None:
    """Exclude patterns match names (fnmatch, case-sensitive). One that cannot match what it
    says is a mistake, not a request, and the CLI and the API refuse it: an empty one (an
    unset variable in `--exclude "$PATTERN"`), one with a '/' (a name holds none), and a '['
    that fnmatch would read as a plain character or as nothing (no closing ']', a backwards
    range): such a pattern leaves alone none of the files meant, and an apply moves them."""
    for pattern in patterns:
        if not pattern or len(pattern) > 255 or "\x00" in pattern:
            raise InvalidPlanOptions("each exclude pattern must be 1-255 characters, without NUL")
        problem = _pattern_problem(pattern)
        if problem is not None:
            raise InvalidPlanOptions(f"exclude pattern {pattern!r} {problem}")


def _pattern_problem(pattern: str) -> str | None:
    """What makes fnmatch read `pattern` otherwise than written, or None. Its sets are read as
    fnmatch.translate reads them: a '!' first negates, a ']' first (after it) is a member."""
    if "/" in pattern:
        return "has a '/': patterns match one file or folder name, never a path"
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] != "[":
            i += 1
            continue
        start = i + 1 + (pattern[i + 1 : i + 2] == "!")
        end = pattern.find("]", start + (pattern[start : start + 1] == "]"))
        if end < 0:
            return "has a '[' with no closing ']' (for a '[' itself, write [[])"
        members, k = pattern[start:end], 0
        while k < len(members):
            if members[k + 1 : k + 2] != "-" or k + 2 >= len(members):
                k += 1
                continue
            low, high = members[k], members[k + 2]
            if low > high:
                return f"has a set whose range {low}-{high} is backwards: write {high}-{low}"
            k += 3
        i = end + 1
    return None


def check_template(template: str) -> None:
    """What a user may ask for (the CLI and the API): a template the planner can render whose
    file names keep their extension. A name of {stem} without {ext}, or a {name} cut short by a
    precision, makes the files it moves unopenable by the programs that read them by it."""
    last = parse_template(template)[-1].template
    for _, field, spec, _ in string.Formatter().parse(last):
        found = _TEXT_SPEC.fullmatch(spec or "")
        if field == "name" and found is not None and found.group("precision"):
            raise InvalidPlanOptions(
                f"template {template!r} can cut the extension off a file name: {{name:{spec}}}"
                " (write {stem:.N}.{ext} to shorten names)"
            )
    fields = {f for _, f, _, _ in string.Formatter().parse(last) if f}
    if "stem" in fields and not fields & {"ext", "name"}:
        raise InvalidPlanOptions(
            f"template {template!r} drops the files' extensions: its file name has {{stem}}"
            " without {ext} (write {stem}.{ext}, or {name})"
        )


def _part(raw: str, template: str) -> Part:
    if raw in ("", ".", ".."):
        raise InvalidPlanOptions(f"template {template!r} has an empty, '.' or '..' component")
    try:
        parsed = list(string.Formatter().parse(raw))
    except ValueError as exc:
        raise InvalidPlanOptions(f"template {template!r} is malformed: {exc}") from None
    fields = set()
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise InvalidPlanOptions(
                f"unknown template field {{{field}}}: use {', '.join(sorted(FIELDS))}"
            )
        if conv:
            raise InvalidPlanOptions(
                f"template {template!r}: conversions like !{conv} are not allowed"
            )
        _check_spec(field, spec or "", template)
        fields.add(field)
    if "relative_dir" in fields and raw != RELATIVE_DIR:
        raise InvalidPlanOptions(
            f"template {template!r}: {{relative_dir}} must be a whole component "
            "(it may span several folders), such as '{category}/{relative_dir}/{name}'"
        )
    _check_length(raw, template)
    return Part(raw, frozenset(fields))


def _check_spec(field: str, spec: str, template: str) -> None:
    number = field in NUMBER_FIELDS
    found = (_NUMBER_SPEC if number else _TEXT_SPEC).fullmatch(spec)
    if found is None:
        shape = "[[fill]align][0][width][d]" if number else "[[fill]align][width][.precision]"
        kind = "a number" if number else "text"
        raise InvalidPlanOptions(
            f"template {template!r}: {{{field}:{spec}}} is not a format for {kind}: use {shape}"
        )
    fill = found.group("fill")
    if fill is not None and not fill.isprintable():
        raise InvalidPlanOptions(f"template {template!r}: the fill of {{{field}}} is not printable")
    for bound in ("width", "precision"):
        value = found.groupdict().get(bound)
        if value is not None and int(value) > MAX_WIDTH:
            raise InvalidPlanOptions(
                f"template {template!r}: the {bound} of {{{field}}} is over {MAX_WIDTH}"
            )


def _check_length(raw: str, template: str) -> None:
    undated = strip_date_specs(raw)
    for rendered in (raw.format(**SAMPLE), undated.format(**_UNDATED)):
        size = len(rendered.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise InvalidPlanOptions(
                f"template {template!r}: a folder or file name would be {size} bytes long "
                f"(at most {NAME_MAX})"
            )


def strip_date_specs(component: str) -> str:
    """The component with its date fields' specs dropped: `:02d` cannot format "Unknown"."""
    out = []
    for literal, field, spec, conv in string.Formatter().parse(component):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is not None:
            if field in DATE_FIELDS:
                out.append("{" + field + "}")
            else:
                out.append(
                    "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                )
    return "".join(out)
