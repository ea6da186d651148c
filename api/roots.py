"""Granted roots: where a user may scan and change files.

A root is a local folder or an object-store URL (`s3://bucket/prefix`, `r2://...`: the scheme
names a storage profile the operator configured; see storage.profiles). A requested root is
canonicalized and must then lie inside a granted root, compared by whole path components, so
`/data/alice2` is not inside `/data/alice` and `s3://b/data/alice2` not inside `s3://b/data/alice`.
A local root and an object root are never inside one another, nor are two profiles or buckets.

Local: a NUL byte or a `..` component is refused outright; a symlink is resolved first, so one
that leads out of the root is refused like any other outside path, and one that stays inside is
allowed. Object: NUL, `..`, `.` and empty components are refused; a URL never carries an
endpoint, credentials, a query or a fragment (the operator's profile decides where requests go),
and whether the bucket exists is asked of the operator's endpoint when an operation starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError, BadRequest, Forbidden
from storage.errors import RootError
from storage.leave_alone import ScanRules, root_refusal
from storage.objects import ObjectRoot, ObjectStore, is_object_url, parse_object_url
from storage.root_identity import RootChanged, identify
from storage.roots import broad_refusal, home_folder, within
from storage.roots import overlaps as overlaps  # the API's callers name it api.roots.overlaps
from storage.settings import get_profiles

log = logging.getLogger("api")
SHAPE = "an object root is profile://bucket/prefix"


def canonical_object(raw: str, refused: type[ApiError]) -> str:
    """The canonical URL of an object root. `refused` is raised for what escapes a root (NUL,
    `..`), BadRequest for anything else that is not a valid root of a configured profile."""
    if "\x00" in raw:
        raise refused("root must not contain a NUL byte")
    _, _, rest = raw.partition("://")
    bucket = rest.partition("/")[0]
    if ".." in rest.split("/"):
        raise refused("root must not contain '..'")
    # Nothing in the URL may choose where requests go or with which keys: no user@host, no
    # query (`?endpoint=`), no fragment. The bucket name rule would refuse `@` too, but its
    # message would repeat what may be a secret.
    if "@" in bucket or ":" in bucket:
        raise BadRequest(f"{SHAPE}: credentials and endpoints cannot be given in a root")
    if "?" in rest or "#" in rest:
        raise BadRequest(f"{SHAPE}, without a query or fragment")
    try:
        return parse_object_url(raw).url
    except RootError as exc:
        raise BadRequest(str(exc)) from None


def canonical(raw: str) -> str:
    """The canonical root: an object URL, or the realpath of an absolute path; Forbidden for
    NUL or `..`, BadRequest if relative or not a valid object root."""
    if is_object_url(raw):
        return canonical_object(raw, Forbidden)
    if "\x00" in raw:
        raise Forbidden("root_path must not contain a NUL byte")
    if ".." in raw.split("/"):
        raise Forbidden("root_path must not contain '..'")
    if not os.path.isabs(raw):
        raise BadRequest("root_path must be an absolute path or profile://bucket/prefix")
    try:
        return os.path.realpath(raw)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"root_path cannot be resolved: {exc}") from None


def existing_dir(path: str, shown: str) -> str:
    if not os.path.isdir(path):
        raise BadRequest(f"root {shown} does not exist or is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise BadRequest(f"root {shown} cannot be read")
    return path


def reachable(url: str) -> str:
    """The bucket exists and the operator's profile may list the root (one request to the
    profile's own endpoint); BadRequest with the store's one-line reason otherwise."""
    root = parse_object_url(url)
    try:
        ObjectStore(root).check()
    except RootError as exc:
        raise BadRequest(_without_endpoint(str(exc), root)) from None
    return url


def _without_endpoint(message: str, root: ObjectRoot) -> str:
    """The operator's endpoint is not the API user's business (a connection error names it):
    the user gets the gist, the log gets the detail."""
    endpoint = get_profiles()[root.profile].endpoint_url
    host = urlsplit(endpoint).netloc if endpoint else ""
    if not host or host not in message:
        return message
    log.warning("%s", message)
    return f"root {root.url}: the store of profile {root.profile!r} cannot be reached"


async def authorize(grants: Iterable[str], raw: str) -> str:
    """The canonical root for `raw` if it lies inside one of `grants` and can be read, else
    Forbidden (outside) or BadRequest (missing, unreadable, malformed)."""
    path = canonical(raw)
    if not any(within(path, grant) for grant in grants):
        raise Forbidden("root_path is not inside a root granted to you")
    if is_object_url(path):
        return await run_in_threadpool(reachable, path)
    return existing_dir(path, raw)


def _left_alone(root: str, include_hidden: bool) -> None:
    refused = root_refusal(root, ScanRules(include_hidden), "include_hidden")
    if refused is not None:
        raise BadRequest(refused)


async def refuse_left_alone(root: str, include_hidden: bool) -> None:
    """BadRequest with the CLI's line for a root inside what a walk from higher up leaves
    alone (storage.leave_alone.root_rule: a project's subfolder, a node_modules, a hidden
    folder unless `include_hidden`, a system folder such as `System Volume Information`),
    before any row is made: the run would fail on it, and a schedule every time it fires.
    The service's own folders are refused before (api.service_folders, 403). It lists the
    folders above the root: off the event loop."""
    await run_in_threadpool(_left_alone, root, include_hidden)


def refuse_broad(root: str, i_mean_it: bool) -> None:
    """BadRequest for the whole disk or a system folder (/usr, /etc, /var/lib...), whatever a
    grant covers, and for a whole home (/root, /home/alice) unless `i_mean_it`: the CLI's
    rule (storage.roots.broad_refusal)."""
    refused = broad_refusal(root, home_folder(), "i_mean_it", i_mean_it)
    if refused is not None:
        raise BadRequest(refused)


def _identify(root: str) -> list[int] | None:
    try:
        return identify(root)
    except RootChanged as exc:
        raise Forbidden(str(exc)) from None
    except RootError as exc:
        raise BadRequest(str(exc)) from None


async def identity(root: str) -> list[int] | None:
    """The [st_dev, st_ino] of an authorized local root's folder, reached without following a
    link (None for an object root): the flow checks it before it reads or changes a file, so
    a root swapped for a symlink after this request cannot lead the run elsewhere."""
    return await run_in_threadpool(_identify, root)


def grantable(raw: str) -> str:
    """What an admin grants: an existing directory that is not / nor a system folder (400), or
    an object root of a configured profile (its bucket is checked when an operation starts: it
    may be created after the grant)."""
    if is_object_url(raw):
        return canonical_object(raw, BadRequest)
    if "\x00" in raw or ".." in raw.split("/") or not os.path.isabs(raw):
        raise BadRequest("root must be an absolute path without '..' or NUL bytes")
    path = existing_dir(os.path.realpath(raw), raw)
    # The rule every operation's root is held to (refuse_broad): / and a system folder never,
    # whatever a grant says, so granting one gives nothing but a root no operation may use. A
    # whole home may be granted: an operation on it still asks for i_mean_it.
    refused = broad_refusal(path, home_folder(), "i_mean_it", i_mean_it=True)
    if refused is not None:
        raise BadRequest(f"not granted: {refused}")
    return path


def revocable(raw: str) -> set[str]:
    """The stored forms a revoked root may have: as given, and canonical when it can be
    canonicalized (a root deleted since, or of a removed profile, still goes as given)."""
    candidates = {raw}
    if "\x00" in raw:
        return candidates
    if is_object_url(raw):
        with contextlib.suppress(BadRequest):
            candidates.add(canonical_object(raw, BadRequest))
    elif os.path.isabs(raw):
        candidates.add(os.path.realpath(raw))
    return candidates
