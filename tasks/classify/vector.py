"""What names and times say, for a whole shard at once, as Arrow columns: the extension, the
category it names, the date written in the name, else the modification time; and which rows
need their content read (unknown extensions, images, audio, ISO media videos).

The answers are tasks.classify.local.classify_file's for a file whose content it does not
read, row for row (tests/tasks/classify/test_vector.py): Python's own rules run once per
distinct value (an extension, a name that may hold a date), not once per file, and only for
the names the byte-wise filters below cannot settle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tasks.classify.categories import category_for_extension, extension_of
from tasks.classify.content import storable
from tasks.classify.dates import date_from_name
from tasks.classify.local import MP4_EXTENSIONS

# Arrow's regular expressions read binary values byte by byte (Latin-1), so a name that is
# not UTF-8 is matched as it is. (?s): a newline is a character of a name like any other.
_BASENAME = r"(?s)^.*/"
_SUFFIX = r"(?s)^(?P<stem>.*)\.(?P<ext>[^.]*)$"  # the text after the last dot
_NON_ASCII = r"[\x80-\xff]"
_TAR_STEM = r"(?s).\.[Tt][Aa][Rr]$"  # "x.tar" before the last dot: a compound extension
# What a date in a name needs (tasks.classify.dates): eight digits, or 4-2-2 with separators.
# Names with any non-ASCII byte are asked too: Python's \d matches every script's digits.
_DATE_LIKE = r"[0-9]{4}[-_.]?[0-9]{2}[-_.]?[0-9]{2}"
_EPOCH = datetime(1970, 1, 1)
_NS_A_DAY = 86_400 * 10**9
_CONTENT_CATEGORIES = ("images", "audio")


def _per_distinct(values: pa.Array, fn: Callable[[Any], Any], kind: pa.DataType) -> pa.Array:
    """fn of each value (nulls stay null), called once per distinct value."""
    encoded = pc.dictionary_encode(values)
    answers = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], kind)
    return pc.take(answers, encoded.indices)


def names(paths: pa.Array) -> pa.Array:
    """os.path.basename of each path (binary)."""
    return pc.replace_substring_regex(paths, _BASENAME, "")


def extensions(names: pa.Array) -> pa.Array:
    """tasks.classify.categories.extension_of of each name.

    A name whose text after its last dot is ASCII has the extension of "x.<that text>" (or
    "x.tar.<that text>" when ".tar" comes before it), whatever precedes: lowercasing and
    whitespace then concern those bytes only. Other names are asked whole, once each.
    """
    parts = pc.extract_regex(names, _SUFFIX)  # null: no dot at all
    stem, raw = pc.struct_field(parts, "stem"), pc.struct_field(parts, "ext")
    named = pc.fill_null(pc.greater(pc.binary_length(stem), 0), False)
    ascii_ = pc.invert(pc.match_substring_regex(raw, _NON_ASCII))
    lead = pc.if_else(pc.match_substring_regex(stem, _TAR_STEM), b"x.tar", b"x")
    key = pc.binary_join_element_wise(lead, raw, b".")
    fast = _per_distinct(pc.if_else(ascii_, key, None), extension_of, pa.string())
    slow_names = pc.if_else(pc.and_(named, pc.invert(ascii_)), names, None)
    slow = _per_distinct(slow_names, lambda n: storable(extension_of(n)), pa.string())
    found = pc.if_else(pc.fill_null(ascii_, False), fast, slow)
    return pc.fill_null(pc.if_else(named, found, ""), "")


def name_dates(names: pa.Array) -> pa.Array:
    """tasks.classify.dates.date_from_name of each name (timestamp[us], null: none)."""
    maybe = pc.or_(
        pc.match_substring_regex(names, _DATE_LIKE), pc.match_substring_regex(names, _NON_ASCII)
    )
    asked = pc.if_else(maybe, names, None)
    return _per_distinct(asked, lambda n: date_from_name(os.fsdecode(n)), pa.timestamp("us"))


def mtime_dates(mtime_ns: pa.Array) -> pa.Array:
    """The modification time as a date where it is plausible (tasks.classify.dates.plausible:
    from 1971 to the end of next year), else null. Within those years a time is positive, so
    Arrow's division (toward zero) is Python's floor division."""
    low = (datetime(1971, 1, 1) - _EPOCH).days * _NS_A_DAY
    high = (datetime(datetime.now(UTC).year + 2, 1, 1) - _EPOCH).days * _NS_A_DAY
    ok = pc.and_(pc.greater_equal(mtime_ns, low), pc.less(mtime_ns, high))
    us = pc.divide(pc.if_else(ok, mtime_ns, None), 1000)
    return us.cast(pa.timestamp("us"))


def needs_content(category: pa.Array, ext: pa.Array, size: pa.Array) -> pa.Array:
    """Rows classify_file reads: a non-empty file whose extension names no category, an
    image (EXIF), audio (tags) or an ISO media video (its creation time)."""
    wanted = pc.or_kleene(
        pc.is_null(category),
        pc.or_(
            pc.is_in(category, pa.array(_CONTENT_CATEGORIES)),
            pc.and_(pc.equal(category, "videos"), pc.is_in(ext, pa.array(sorted(MP4_EXTENSIONS)))),
        ),
    )
    return pc.and_(pc.fill_null(wanted, True), pc.greater(size, 0))


def classify_names(files: pa.Table, schema: pa.Schema) -> tuple[pa.Table, pa.Array]:
    """Rows of `schema` (storage.manifests.CLASSIFY) for scan rows (path, size, mtime_ns) from
    their names and times alone, and which of them need their content read instead."""
    paths = files["path"].combine_chunks()
    name = names(paths)
    ext = extensions(name)
    category = _per_distinct(ext, category_for_extension, pa.string())
    by_name = name_dates(name)
    by_mtime = mtime_dates(files["mtime_ns"].combine_chunks())
    date = pc.coalesce(by_name, by_mtime)
    source = pc.if_else(
        pc.is_valid(by_name), "filename", pc.if_else(pc.is_valid(by_mtime), "mtime", "none")
    )
    null = pa.nulls(len(files), pa.string())
    columns = {
        "path": paths,
        "category": pc.fill_null(category, "other"),
        "ext": ext,
        "date": date,
        "date_source": source,
        "year": pc.year(date).cast(pa.int32()),
        "month": pc.month(date).cast(pa.int32()),
        "error": null,
        "artist": null,
        "album": null,
    }
    table = pa.table(
        [columns.get(f.name, pa.nulls(len(files), f.type)) for f in schema], schema=schema
    )
    return table, needs_content(category, ext, files["size"].combine_chunks())
