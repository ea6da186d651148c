"""`fileorg profiles`: the storage profiles this machine's configuration defines.

What an operator may see: name, endpoint, region, whether credentials are configured. Never a
secret, nor the access key id: StorageProfile.describe() is the only view printed.
"""

from __future__ import annotations

from typing import Any

import typer

from flows.cli import app
from flows.cli.render import emit_json, table


def rows() -> list[dict[str, Any]]:
    from storage.settings import get_profiles

    return [{"name": name, **p.describe()} for name, p in sorted(get_profiles().items())]


@app.command()
def profiles(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """The storage profiles roots such as s3://bucket/prefix name (credentials never shown)."""
    found = rows()
    if json_output:
        emit_json(found)
        return
    columns = ["name", "endpoint_url", "region", "credentials", "conditional_writes"]
    table("storage profiles", columns, [[str(r[c] or "") for c in columns] for r in found])
