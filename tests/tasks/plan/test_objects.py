"""Planning a bucket, against moto's S3 server: rel keys, folder markers, the left-alone
rules by key names, the policies a bucket refuses."""

from __future__ import annotations

from datetime import datetime

import pytest

from storage import queries
from storage.errors import InvalidPlanOptions
from storage.locations import DataStore
from storage.operations import PlanOptions, check_options_for_root
from tasks.backends import backend_for
from tasks.plan import stage as plan
from tests.conftest import S3Env
from tests.tasks.buckets import (
    BUCKET,
    make_duplicates,
    put,
    run_stages,
)
from tests.tasks.pipeline import exif_jpeg, stage_rows

SHOT = datetime(2019, 4, 12, 15, 30, 0)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def test_plan_of_a_bucket_moves_rel_keys_and_leaves_markers_alone(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    make_duplicates(s3)
    put(s3, "h/dir one/été 2019.jpg", exif_jpeg("2019:04:12 15:30:00"))
    put(s3, "h/folder/", b"")
    root = f"s3://{BUCKET}/h"
    op_dir = run_stages(store, root)

    counts = plan.plan_operation(
        store, op_dir, PlanOptions(duplicates="quarantine"), 100, backend_for(root)
    )

    rows = {r["src"]: r for r in stage_rows(store, op_dir, "plan")}
    photo = rows["dir one/été 2019.jpg".encode()]
    assert (photo["action"], photo["dst"]) == ("move", "Images/2019/été 2019.jpg".encode())
    marker = rows[b"folder/"]  # scanned as kind "other", planned as a skip with its reason
    assert (marker["action"], marker["dst"], marker["reason_code"]) == ("skip", None, "special")
    quarantined = [r for r in rows.values() if r["action"] == "quarantine"]
    assert len(quarantined) == 2 == counts["quarantine"]
    for row in rows.values():
        dst = row["dst"]
        assert dst is None or not (dst.startswith(b"/") or b"//" in dst or dst.endswith(b"/"))


def test_hardlink_policy_is_refused_on_object_roots(s3: S3Env) -> None:
    with pytest.raises(InvalidPlanOptions) as info:
        check_options_for_root(PlanOptions(duplicates="hardlink"), f"s3://{BUCKET}/x")
    assert "\n" not in str(info.value)
    check_options_for_root(PlanOptions(duplicates="hardlink"), "/srv/photos")
    check_options_for_root(PlanOptions(duplicates="quarantine"), f"s3://{BUCKET}/x")


def test_a_bucket_gets_the_same_left_alone_rules_by_key_names(
    s3: S3Env, bucket: str, store: DataStore
) -> None:
    for key, body in {
        "home/.bashrc": b"alias ll='ls -l'\n",
        "home/.ssh/id_rsa": b"-----BEGIN KEY-----\n",
        "home/node_modules/left-pad/index.js": b"module.exports = 1;\n",
        "home/Code/app/package.json": b'{"name": "app"}\n',
        "home/Code/app/src/a.js": b"let a = 1;\n",
        "home/Code/app/logo.png": b"\x89PNG\r\n\x1a\n logo",
        "home/Photos/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "home/Photos/._IMG.jpg": b"\x00\x05\x16\x07",
        "home/Photos/Thumbs.db": b"thumbs",
        "home/Photos/IMG.jpg": exif_jpeg("2015:05:07 10:11:12"),
    }.items():
        put(s3, key, body)
    root = f"s3://{BUCKET}/home"
    op_dir = run_stages(store, root)

    plan.plan_operation(store, op_dir, PlanOptions(), 100, backend_for(root))

    rows = {r["src"]: r for r in stage_rows(store, op_dir, "plan")}
    assert {p: (r["action"], r["reason_code"], r["unit"]) for p, r in rows.items()} == {
        b".bashrc": ("skip", "hidden", None),
        b".ssh/id_rsa": ("skip", "credentials", b".ssh"),
        b"node_modules/left-pad/index.js": ("skip", "tool-folder", b"node_modules"),
        b"Code/app/package.json": ("skip", "project", b"Code/app"),
        b"Code/app/src/a.js": ("skip", "project", b"Code/app"),
        b"Code/app/logo.png": ("skip", "project", b"Code/app"),
        b"Photos/.DS_Store": ("skip", "junk", None),
        b"Photos/._IMG.jpg": ("skip", "junk", None),
        b"Photos/Thumbs.db": ("skip", "junk", None),
        b"Photos/IMG.jpg": ("move", "organized", None),
    }
    assert rows[b"Photos/IMG.jpg"]["reason"] == "images by .jpg, EXIF 2015-05-07"
    # What the names leave alone is never read: not classified, not hashed.
    classified = {r["path"] for r in stage_rows(store, op_dir, "classify")}
    assert b"node_modules/left-pad/index.js" not in classified and b".bashrc" not in classified
    units, _ = queries.left_alone(store, op_dir)
    project = next(u for u in units if u["path"] == b"Code/app")
    assert (project["files"], project["reason"]) == (3, "left alone: project (package.json)")


def test_moving_projects_whole_is_refused_on_object_roots(s3: S3Env) -> None:
    with pytest.raises(InvalidPlanOptions) as info:
        check_options_for_root(PlanOptions(projects="move"), f"s3://{BUCKET}/x")
    assert "\n" not in str(info.value) and "projects 'move'" in str(info.value)
    check_options_for_root(PlanOptions(projects="move"), "/srv/home")
