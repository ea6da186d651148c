"""What the CLI checks before files change (data-safety rule 8: nothing changes unasked).

Each refusal is one line (UserError, exit 2) naming what to do instead: a root too broad to
organize without --i-mean-it, a resumed operation asked for with another root or other
options, a plan another operation has made stale since (--force), a rollback under a newer
operation's moves (--force), and on a terminal the
question before an apply (--yes answers it; a script, whose stdin is not a terminal, asked
explicitly already).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flows.cli.render import err
from storage.errors import OperationStateError, UserError

if TYPE_CHECKING:
    from storage.locations import DataStore
    from storage.operations import OperationRecord, PlanOptions

BROAD_FLAG = "--i-mean-it"
# Options as the user types them, for a refusal that says which one differs.
OPTION_FLAGS = {
    "mode": "--mode",
    "template": "--template",
    "duplicates": "--duplicates",
    "keep": "--keep",
    "include_empty": "--include-empty",
    "exclude": "--exclude",
}


def refuse_broad_root(root: str, i_mean_it: bool) -> None:
    """The whole disk or a system folder always, a whole home unless --i-mean-it (the API
    refuses them with the same rule: storage.roots.broad_refusal)."""
    from storage.roots import broad_refusal, home_folder

    refused = broad_refusal(root, home_folder(), BROAD_FLAG, i_mean_it)
    if refused is not None:
        raise UserError(refused)


def refuse_left_alone_root(root: str, store: DataStore, include_hidden: bool) -> None:
    """A root the walk would have left alone had it started higher up (storage.leave_alone
    root_rule): fileorg's own data folder, a project's subfolder, `~/.ssh`, a node_modules.
    The organize flow asks the same, with Prefect's home sealed too."""
    from storage.leave_alone import ScanRules, root_refusal
    from tasks.backends import backend_for

    sealed = tuple(backend_for(root).sealed(store, ()))
    refused = root_refusal(root, ScanRules(include_hidden, (), sealed))
    if refused is not None:
        raise UserError(refused)


def refuse_other_request(
    record: OperationRecord, root: str, options: PlanOptions, apply: bool
) -> None:
    """`--id` resumes an operation as it was asked, never another folder's or with other
    options (a mismatch would finish someone else's plan on the wrong tree)."""
    if record.root != root:
        raise UserError(
            f"operation {record.id} organizes {record.root}, not {root}: "
            "leave out --id to plan this folder"
        )
    asked = options.model_dump()
    for field, value in record.options.model_dump().items():
        if asked[field] != value:
            flag = OPTION_FLAGS.get(field, f"--{field.replace('_', '-')}")
            raise UserError(
                f"operation {record.id} was planned with {flag} {_shown(value)} "
                f"(not {_shown(asked[field])}): resume it with the same options, "
                "or leave out --id for a new plan"
            )
    if not record.dry_run and not apply:
        raise UserError(
            f"operation {record.id} was started to plan and apply: resume it with --apply"
        )


def _shown(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    return str(value)


def refuse_stale(store: DataStore, record: OperationRecord, force: bool) -> None:
    """A plan describes the tree as its scan saw it: after another operation changed files
    under an overlapping root, most of its moves would be skipped or land wrong."""
    if force:
        return
    from storage import operations

    stale = operations.stale_refusal(store, record)
    if stale is not None:
        raise OperationStateError(f"{stale}, or add --force")


def refuse_out_of_order(store: DataStore, record: OperationRecord, force: bool) -> None:
    """A rollback under a newer operation's moves would find its files moved again: most of
    its items refused, the tree left mixed (storage.rollback_order)."""
    if force:
        return
    from storage.rollback_order import rollback_refusal

    refused = rollback_refusal(store, record)
    if refused is not None:
        raise OperationStateError(f"{refused}, or add --force")


def interactive() -> bool:
    return sys.stdin.isatty()


def confirm(question: str, yes: bool) -> bool:
    """True when the change may go on: --yes, a script, or a user who answered yes."""
    if yes or not interactive():
        return True
    err.print(f"{question} [y/N] ", markup=False, highlight=False, end="", soft_wrap=True)
    err.file.flush()
    answer = sys.stdin.readline()
    if not answer:  # end of input (Ctrl-D): no
        err.print()
    return answer.strip().lower() in ("y", "yes")
