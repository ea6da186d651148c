"""How plans read on a terminal: rows that fit the width (paths shortened in the middle, whole
and folded in their columns with --wide), the tree a plan would leave, and what became of the
files an apply or a rollback could not carry out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# rich.cells alone (no Console): a few small modules, cheap when the CLI starts.
from rich.cells import cell_len, get_character_cell_size

from flows.cli.render import counted, err, escaped, out, shown

if TYPE_CHECKING:
    from storage.previews import Folder

ELLIPSIS = "…"
GAP = 2  # cells between two columns
REASON = 16  # cells a reason keeps when paths need the room


def _head(text: str, cells: int) -> str:
    taken, used = [], 0
    for ch in text:
        used += get_character_cell_size(ch)
        if used > cells:
            break
        taken.append(ch)
    return "".join(taken)


def _tail(text: str, cells: int) -> str:
    return _head(text[::-1], cells)[::-1]


def middle(text: str, width: int) -> str:
    """`text` in at most `width` cells, shortened in the middle: its top folder (when short)
    and the end of its file name survive (`Photos/…IMG_0001.jpg`)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    room = width - 1
    top = text.split("/", 1)[0] + "/" if "/" in text else ""
    if top and cell_len(top) <= room // 2:
        head = cell_len(top)
    else:
        name = text.rsplit("/", 1)[-1]
        tail = cell_len(name) + 1 if "/" in text else room * 2 // 3
        head = room - min(max(tail, room * 2 // 3), room - min(4, room // 3))
    return _head(text, head) + ELLIPSIS + _tail(text, room - head)


def end(text: str, width: int) -> str:
    return text if cell_len(text) <= width else _head(text, max(width - 1, 0)) + ELLIPSIS


def fitted(rows: Sequence[Sequence[str]], paths: int, width: int) -> list[list[str]]:
    """Rows whose first `paths` columns are paths (shortened in the middle) and whose others
    are words (cut at the end), so that each row fits `width` cells. Word columns keep their
    width, but the last one (a reason) gives way to the paths down to REASON cells."""
    columns = len(rows[0]) if rows else 0
    natural = [max((cell_len(r[i]) for r in rows), default=0) for i in range(columns)]
    room = width - GAP * (columns - 1)
    words = natural[paths:]
    overflow = sum(natural) - room
    if overflow > 0 and words and paths:
        words[-1] -= max(min(overflow, words[-1] - REASON), 0)
    widths = _share(natural[:paths], room - sum(words)) + words
    return [
        [
            middle(v, w) if i < paths else end(v, w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ]
        for r in rows
    ]


def _share(natural: list[int], room: int) -> list[int]:
    widths = [0] * len(natural)
    left = list(range(len(natural)))
    while left:
        each = max(room // len(left), 1)
        small = [i for i in left if natural[i] <= each]
        if not small:
            for i in left:
                widths[i] = each
            break
        for i in small:
            widths[i] = natural[i]
            room -= natural[i]
            left.remove(i)
    return widths


def rows_table(columns: list[str], rows: list[list[str]], paths: int, wide: bool) -> None:
    """A table of plan-like rows fitted to the terminal (80 columns when it is not one): each
    value shortened (paths in the middle), or with --wide every value whole, folded inside its
    column over as many lines as it needs. One line a row at any width was 650 cells wide in
    the tryout: the terminal wrapped it, and no column stayed a column."""
    from rich.table import Table
    from rich.text import Text

    body = rows if wide else fitted([columns, *rows], paths, out.width)[1:]
    t = Table(box=None, pad_edge=False, padding=(0, GAP // 2), header_style="bold")
    for name in columns:
        t.add_column(name, no_wrap=not wide, overflow="fold" if wide else "ellipsis")
    for row in body:
        t.add_row(*map(Text, row))  # Text: a name such as "[draft].txt" is not markup
    out.print(t)


def preview(folders: list[Folder], limit: int = 30) -> None:
    """The tree a plan leaves: each top folder, then its subfolders, with files and bytes."""
    if not folders:
        return
    from rich.table import Table
    from rich.text import Text

    from tasks.report import human_bytes

    total, rest = folders[0], folders[1:]
    kept = f", {total.left_alone:,} left alone where they are" if total.left_alone else ""
    err.print(
        f"\n[bold]After apply[/bold]: {counted(total.files, 'file')}, {human_bytes(total.bytes)}"
        f" ({total.arriving:,} moved into place{kept})"
    )
    top = [f for f in rest if b"/" not in f.path]
    loose = total.files - sum(f.files for f in top)
    rows: list[list[str]] = []
    for folder in rest[:limit]:
        depth = folder.path.count(b"/")
        name = shown(folder.path.rsplit(b"/", 1)[-1]) + "/"
        arriving = f"+{folder.arriving:,}" if folder.arriving else ""
        rows.append(["  " * depth + name, f"{folder.files:,}", human_bytes(folder.bytes), arriving])
    if len(rest) > limit:
        rows.append([f"… {counted(len(rest) - limit, 'more folder')}", "", "", ""])
    if loose:
        rows.append(["(files directly in the root)", f"{loose:,}", "", ""])
    t = Table(box=None, pad_edge=False, padding=(0, GAP // 2), header_style="bold")
    for name, justify in (("folder", "left"), ("files", "right"), ("size", "right")):
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    t.add_column("moved in", justify="right", no_wrap=True)
    for row in rows:
        t.add_row(*map(Text, row))
    err.print(t)


def not_done(
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    hint: str,
    kind: str,
    listed_too: dict[str, int] | None = None,
) -> None:
    """The first files that did not end as asked, with why, and the commands that list them
    all (`hint` is a command that takes --outcome), counting what those list besides
    (`listed_too`: the rows the plan skipped, which `--outcome skipped` lists too)."""
    if not counts:
        return
    from rich.table import Table
    from rich.text import Text

    total = sum(counts.values())
    files = counted(total, "file")
    first = f"; the first {len(rows)}" if total > len(rows) else ""
    err.print(f"\n{files} not {kind}{first}:")
    body = [
        [
            shown(r["src"]),
            shown(r["dst"]) if r["dst"] is not None else "",
            r["rollback_outcome"] or r["apply_outcome"] or "",
            escaped(r["outcome_reason"] or ""),
        ]
        for r in rows
    ]
    t = Table(box=None, pad_edge=False, show_header=False, padding=(0, 1))
    for _ in range(4):
        t.add_column(no_wrap=True, overflow="ellipsis")
    for row in fitted(body, 2, err.width - 2):
        t.add_row(*map(Text, row))
    err.print(t)
    listed = dict(counts)
    for name, more in (listed_too or {}).items():
        if more:
            listed[name] = listed.get(name, 0) + more
    for name, count in listed.items():
        err.print(f"  all {count:,} {name}: {hint} --outcome {name}")
