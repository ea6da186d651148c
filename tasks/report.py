"""Report: what an operation found and planned (written as report.json by
storage.manifests.write_report), and its markdown for Prefect."""

from __future__ import annotations

import os
from typing import Any

from storage import manifests, queries
from storage.locations import DataStore
from storage.operations import OperationRecord

TOP_GROUPS = 10
TOP_LEFT_ALONE = 100


def build_report(store: DataStore, op_dir: str, record: OperationRecord) -> dict[str, Any]:
    include_empty = record.options.include_empty
    scan = manifests.done_info(store, op_dir, "scan") or {}
    plan = manifests.done_info(store, op_dir, "plan") or {}
    by_category, by_year = _totals(store, op_dir)
    problems = [{**p, "path": os.fsdecode(p["path"])} for p in queries.problems(store, op_dir)]
    return {
        "operation_id": record.id,
        "root": record.root,
        "dry_run": record.dry_run,
        "options": record.options.model_dump(),
        "files": scan.get("files", 0),
        "bytes": scan.get("bytes", 0),
        "entries": scan.get("entries", 0),
        "by_category": by_category,
        "by_year": by_year,
        "duplicates": _duplicates(store, op_dir, include_empty),
        "plan": {
            "moves": plan.get("move", 0),
            "quarantine": plan.get("quarantine", 0),
            "hardlink": plan.get("hardlink", 0),
            "unchanged": plan.get("keep", 0),
            "skipped": plan.get("skip", 0),
            "conflicts": plan.get("conflicts", 0),
        },
        # Plan rows per reason code (storage.manifests.REASON_CODES): the exact reasons.
        "by_reason": plan.get("by_reason", {}),
        "left_alone": _left_alone(store, op_dir),
        "errors": {"count": len(problems), "items": problems},
        "stages": {
            name: {"seconds": t.seconds, "files": t.files, "bytes": t.bytes}
            for name, t in record.stages.items()
        },
    }


def _totals(store: DataStore, op_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Files and bytes per category and per year ("unknown" when undated)."""
    by_category: dict[str, dict[str, int]] = {}
    by_year: dict[str, dict[str, int]] = {}
    for row in queries.totals_by_category_year(store, op_dir):
        for table, name in (
            (by_category, row["category"]),
            (by_year, str(row["year"] or "unknown")),
        ):
            slot = table.setdefault(name, {"files": 0, "bytes": 0})
            slot["files"] += row["files"]
            slot["bytes"] += int(row["bytes"] or 0)
    return by_category, by_year


def _duplicates(store: DataStore, op_dir: str, include_empty: bool) -> dict[str, Any]:
    groups, _ = queries.duplicate_groups(store, op_dir, include_empty, limit=TOP_GROUPS)
    return {
        **queries.duplicate_summary(store, op_dir, include_empty),
        # Kept in subfolders (--keep-subfolders): no duplicates policy touches them.
        "in_subfolders": queries.in_subfolders(store, op_dir, include_empty),
        "top_groups": [
            {
                "digest": g["digest"],
                "size": g["size"],
                "copies": g["copies"],
                "wasted_bytes": g["wasted_bytes"],
                # os.fsdecode: os.fsencode gives back the exact bytes (README).
                "paths": [os.fsdecode(path) for path in g["paths"]],
            }
            for g in groups
        ],
    }


def _left_alone(store: DataStore, op_dir: str) -> dict[str, Any]:
    """Left alone by a rule: each unit once (a folder with its files, or one entry)."""
    units, unit_count = queries.left_alone(store, op_dir, limit=TOP_LEFT_ALONE)
    return {
        "count": unit_count,
        **queries.left_alone_totals(store, op_dir),  # files, bytes, folders: all the units'
        "items": [
            {
                "path": os.fsdecode(u["path"]),
                "reason_code": u["reason_code"],
                "reason": u["reason"],
                "files": u["files"],
                "bytes": u["bytes"],
                "folders": u["folders"],
                "entered": u["entered"],
            }
            for u in units
        ],
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _shown(path: str) -> str:
    """A path for people: bytes that are not UTF-8 as \\xNN (markdown must be valid UTF-8)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def to_markdown(report: dict[str, Any]) -> str:
    dup = report["duplicates"]
    plan = report["plan"]
    lines = [
        f"# Operation {report['operation_id']}",
        f"Root: `{report['root']}` ({'dry run' if report['dry_run'] else 'applied'})",
        "",
        "| files | size | duplicate groups | wasted | moves | conflicts | skipped | errors |",
        "|---|---|---|---|---|---|---|---|",
        f"| {report['files']} | {human_bytes(report['bytes'])} | {dup['groups']} "
        f"| {human_bytes(dup['wasted_bytes'])} | {plan['moves']} | {plan['conflicts']} "
        f"| {plan['skipped']} | {report['errors']['count']} |",
        "",
        "## By category",
        "| category | files | size |",
        "|---|---|---|",
    ]
    for name, slot in sorted(report["by_category"].items()):
        lines.append(f"| {name} | {slot['files']} | {human_bytes(slot['bytes'])} |")
    lines += [
        "",
        "## Largest duplicate groups",
        "| copies | size | wasted | paths |",
        "|---|---|---|---|",
    ]
    for g in dup["top_groups"]:
        paths = "<br>".join(f"`{_shown(p)}`" for p in g["paths"][:5])
        more = f" (+{len(g['paths']) - 5})" if len(g["paths"]) > 5 else ""
        lines.append(
            f"| {g['copies']} | {human_bytes(g['size'])} | {human_bytes(g['wasted_bytes'])} "
            f"| {paths}{more} |"
        )
    return "\n".join(lines + _left_alone_markdown(report)) + os.linesep


def _left_alone_markdown(report: dict[str, Any]) -> list[str]:
    left = report.get("left_alone") or {"count": 0, "items": []}
    lines = ["", f"## Left alone ({left['count']})", "| path | reason | files | size |"]
    lines.append("|---|---|---|---|")
    for u in left["items"]:
        files = "not entered" if u["files"] is None else str(u["files"])
        size = "" if u["bytes"] is None else human_bytes(u["bytes"])
        lines.append(f"| `{_shown(u['path'])}` | {u['reason']} | {files} | {size} |")
    if left["count"] > len(left["items"]):
        lines.append(f"| ... | {left['count'] - len(left['items'])} more | | |")
    return lines
