"""Printing for the CLI: one JSON document on stdout with --json, rich tables otherwise.

Imported when the CLI starts, so it imports no more than the standard library: rich and the
storage vocabulary are imported by the functions that print with them (`fileorg --version`
and a usage error never need them).
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


@cache
def console(stderr: bool) -> Console:
    """The one rich Console for stdout or stderr, made at its first use (rich detects the
    terminal and its colours then: after terminal.install() in main, as when it was made at
    import). Give rich itself this one (a Progress), not the stand-ins below."""
    from rich.console import Console

    return (
        Console(stderr=True, highlight=False)
        if stderr
        else Console(highlight=False, soft_wrap=True)
    )


class _Later:
    """A stand-in for console(stderr) until its first use: attribute access only (`.print`,
    `.width`, `.file`), so that importing this module imports no rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(console(self._stderr), name)


out = cast("Console", _Later(stderr=False))
err = cast("Console", _Later(stderr=True))


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 folder`, `2 folders`, `1,000 files`: a count and its noun, singular for one."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def path_text(path: bytes | None) -> str | None:
    """Paths are bytes; JSON carries them as os.fsdecode strings (lone surrogates escaped as
    \\udcXX), which os.fsencode turns back into the exact bytes."""
    return None if path is None else os.fsdecode(path)


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=_default, ensure_ascii=True) + "\n")


def emit_jsonl(batches: Iterable[Iterable[Any]]) -> None:
    """One JSON object a line, written out (and flushed) a batch at a time as they come."""
    encode = json.JSONEncoder(default=_default, ensure_ascii=True).encode
    for batch in batches:
        sys.stdout.write("".join(encode(row) + "\n" for row in batch))
        sys.stdout.flush()


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


_C_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape(char: str) -> str:
    if char in _C_ESCAPES:
        return _C_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode carries it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: each would
# end a table's row, move the cursor or recolour the terminal. A backslash is escaped too, so
# that no name shows as another's escape (`a\\x07b` is not the name with a bell in it).
_CONTROL = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\udc80-\udcff]")


def escaped(name: str) -> str:
    """A name as a table shows it, on one line, the way `ls -b` does: a control character as
    its C escape (a newline is `\\n`, ESC `\\x1b`), a byte that is not UTF-8 (os.fsdecode's
    `\\udcXX`) as `\\xNN`, a backslash as `\\\\`. A name that is not in Unicode's composed
    form (NFC) shows its decomposed characters as `\\uXXXX`: "cafe\\u0301" (NFD, as macOS
    and some archives write it) beside "café" (NFC), two names that look alike and are two
    files. JSON output keeps names exact."""
    text = _CONTROL.sub(lambda found: _escape(found.group()), name)
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return "".join(_escape(c) if _decomposed(c) else c for c in text)


def _decomposed(char: str) -> bool:
    """A character NFC would compose or replace: a combining mark, a singleton such as the
    Angstrom sign, a conjoining Hangul jamo."""
    return bool(
        unicodedata.combining(char)
        or unicodedata.normalize("NFC", char) != char
        or "\u1100" <= char <= "\u11ff"
    )


def shown(path: bytes | None) -> str:
    """A byte path for a table, escaped (above)."""
    return "" if path is None else escaped(path.decode("utf-8", "surrogateescape"))


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, show_lines=False, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*map(Text, r))  # Text: a name such as "[/].txt" is not markup
    out.print(t)


def _skip_reasons(by_reason: dict[str, int]) -> str:
    """The skipped rows by their exact reason: "project 2, hidden 5, junk 4"."""
    from storage.manifests import LEFT_ALONE_CODES

    # Reason codes of the rows that stay where they are (storage.manifests.REASON_CODES).
    stays = (*LEFT_ALONE_CODES, "duplicate", "not-linked", "conflict")
    return ", ".join(f"{code} {by_reason[code]:,}" for code in stays if by_reason.get(code))


def _conflicts(by_reason: dict[str, int]) -> str:
    """Destinations taken: the files renamed ("name (1).jpg"), and those left where they are
    (a file stands where a folder of their destination would be made: reason `conflict`)."""
    parts = [
        f"{by_reason[code]:,} {what}"
        for code, what in (("renamed", "renamed"), ("conflict", "left where they are"))
        if by_reason.get(code)
    ]
    return ", ".join(parts)


def _left_alone_row(left: dict[str, Any]) -> list[list[str]]:
    """The files a rule leaves alone where they are (the tree after apply counts them beside
    the files to organize), and the folders left whole unentered, whose files nobody counted."""
    from tasks.report import human_bytes

    if "files" not in left:  # a report written before these totals
        return []
    folders = f", {counted(left['folders'], 'folder')} not entered" if left["folders"] else ""
    return [["left alone", f"{left['files']:,}", human_bytes(left["bytes"]) + folders]]


def _untouched(files: int, options: dict[str, Any]) -> str:
    """Why the duplicates policy leaves some copies: they are kept in subfolders."""
    if not files or options.get("duplicates", "report") == "report":
        return ""
    stays = "stays as it is" if files == 1 else "stay as they are"
    return f"{counted(files, 'file')} of duplicate groups in subfolders {stays}"


def _subfolder_row(files: int) -> list[list[str]]:
    if not files:
        return []
    return [["kept in subfolders", f"{files:,}", "--keep-subfolders sorts the top level only"]]


def _legend(op: str) -> str:
    """What the two counts of what stays mean (the tryout read 'left alone 5', 'skipped 9')."""
    return (
        "left alone: the files a rule keeps where they are, with their bytes.\n"
        "skipped: every entry the plan leaves where it is (those files, each folder kept\n"
        f"whole, symlinks, duplicates, conflicts): fileorg plan {op} --action skip"
    )


def summary(report: dict[str, Any]) -> None:
    from tasks.report import human_bytes

    dup = report["duplicates"]
    plan = report["plan"]
    by_reason = report.get("by_reason", {})
    in_subfolders = by_reason.get("subfolder", 0)  # kept, but not in place: --keep-subfolders
    untouched = _untouched(dup.get("in_subfolders", 0), report.get("options") or {})
    rows = [
        ["files to organize", f"{report['files']:,}", human_bytes(report["bytes"])],
        *_left_alone_row(report.get("left_alone") or {}),
        ["duplicate groups", f"{dup['groups']:,}", f"{human_bytes(dup['wasted_bytes'])} wasted"],
        ["planned moves", f"{plan['moves']:,}", ""],
        ["quarantine / hard link", f"{plan['quarantine']:,} / {plan['hardlink']:,}", untouched],
        ["already in place", f"{plan['unchanged'] - in_subfolders:,}", ""],
        *_subfolder_row(in_subfolders),
        ["name conflicts", f"{plan['conflicts']:,}", _conflicts(report.get("by_reason", {}))],
        ["skipped", f"{plan['skipped']:,}", _skip_reasons(report.get("by_reason", {}))],
        ["errors", f"{report['errors']['count']:,}", ""],
    ]
    table("Summary", ["", "count", ""], rows)
    if plan["skipped"]:
        out.print(_legend(str(report.get("operation_id") or "ID")[:8]), style="dim")
    cats = [
        [name, f"{slot['files']:,}", human_bytes(slot["bytes"])]
        for name, slot in sorted(report["by_category"].items(), key=lambda kv: -kv[1]["bytes"])
    ]
    if cats:  # a tree with no file has no category: an empty table would say nothing
        table("By category", ["category", "files", "size"], cats)
    stages = [
        [name, f"{t['seconds']:.2f} s" if t.get("seconds") is not None else "-", f"{t['files']:,}"]
        for name, t in report["stages"].items()
    ]
    table("Stages", ["stage", "time", "files"], stages)


def report_details(report: dict[str, Any]) -> None:
    """What `fileorg report` shows besides the summary: the years, the largest duplicate
    groups, what was left alone and why (the JSON has all of it; a person reads the top)."""
    from tasks.report import human_bytes

    years = sorted(report.get("by_year", {}).items())
    if years:  # an empty table says nothing the summary does not
        table(
            "By year",
            ["year", "files", "size"],
            [[y, f"{s['files']:,}", human_bytes(s["bytes"])] for y, s in years],
        )
    groups = report["duplicates"]["top_groups"]
    rows = [
        [
            f"{g['copies']}",
            human_bytes(g["size"]),
            human_bytes(g["wasted_bytes"]),
            "\n".join(shown(os.fsencode(p)) for p in g["paths"][:3])
            + (f"\n(+{len(g['paths']) - 3} more)" if len(g["paths"]) > 3 else ""),
        ]
        for g in groups
    ]
    if rows:
        table("Largest duplicate groups", ["copies", "size", "wasted", "paths"], rows)
    left = report.get("left_alone") or {"count": 0, "items": []}
    rows = [
        [
            shown(os.fsencode(u["path"])) or "(the root)",
            escaped(u["reason"]),  # it may name a path: `the target of a symlink (by X)`
            _unit_files(u),
        ]
        for u in left["items"]
    ]
    if left["count"] > len(left["items"]):
        rows.append(["...", f"{left['count'] - len(left['items']):,} more (--json lists them)", ""])
    if rows:
        table(f"Left alone ({left['count']:,})", ["path", "reason", "files"], rows)


def _unit_files(unit: dict[str, Any]) -> str:
    if unit["files"] is None:
        return "not entered"
    folders = unit.get("folders")
    inside = f" (+{counted(folders, 'folder')} not entered)" if folders else ""
    return f"{unit['files']:,}{inside}"
