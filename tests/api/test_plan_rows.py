"""The plan the API serves carries what `fileorg plan --json` does: why a file is left alone
(`reason_code`, and `unit` for what a folder left whole holds) and which copy a duplicate
duplicates (`twin`), read from a real plan of a real small tree (the organize stages run in
process by the fake orchestrator)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.api.conftest import Api, User
from tests.apply_helpers import plan_rows

PHOTO = b"\xff\xd8\xff\xe0" + b"cat" * 2000
FACTS = ("action", "reason_code", "kind", "unit", "twin", "date_source")


def test_plan_rows_say_why_and_of_what_as_the_plan_does(api: Api, tree: Path, alice: User) -> None:
    root = tree / "alice"
    (root / "photos" / "cat.jpg").write_bytes(PHOTO)
    (root / "photos" / "cat copy.jpg").write_bytes(PHOTO)
    (root / ".notes.txt").write_text("hidden")
    (root / ".stash").mkdir()
    (root / ".stash" / "old.txt").write_text("hidden, whole folder")
    api.fake.real_plan = True
    op_id = api.started(alice, root, duplicates="quarantine")

    response = api.client.get(
        f"/api/v1/operations/{op_id}/plan", params={"limit": 100}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    served = {item["src"]: item for item in response.json()["data"]}
    ((_, parameters),) = api.fake.started  # the organize run, and the operation it wrote
    shard = plan_rows(api.store, api.store.operation_dir(parameters["operation_id"]))
    assert response.json()["count"] == len(shard)
    for row in shard:
        expected = {k: os.fsdecode(v) if isinstance(v, bytes) else v for k, v in row.items()}
        item = served[expected["src"]]
        assert {k: item[k] for k in FACTS} == {k: expected[k] for k in FACTS}

    assert served[".notes.txt"]["reason_code"] == "hidden"
    assert served[".notes.txt"]["action"] == "skip"
    assert served[".stash"]["kind"] == "dir"
    kept, copy = served["photos/cat.jpg"], served["photos/cat copy.jpg"]
    assert kept["reason_code"] == "duplicate-kept"
    assert (copy["reason_code"], copy["kind"]) == ("duplicate-quarantined", "file")
    assert copy["twin"] == "photos/cat.jpg"
