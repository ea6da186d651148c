"""parse_layout and Layout.destination: modes, templates, Unknown dates, and what is refused."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import InvalidPlanOptions, UserError
from tasks.classify.categories import extension_of
from tasks.plan.layout import (
    MODES,
    NO_EXTENSION,
    UNKNOWN,
    UNKNOWN_ALBUM,
    UNKNOWN_ARTIST,
    Place,
    parse_layout,
)

SHOT = datetime(2019, 4, 2, 15, 30)


def dst(
    mode: str,
    template: str | None = None,
    *,
    category: str = "images",
    date: datetime | None = SHOT,
    name: bytes = b"IMG_1.jpg",
    ext: str = "jpg",
) -> bytes:
    return b"/".join(parse_layout(mode, template).destination(category, date, name, ext))


@pytest.mark.parametrize(
    ("mode", "date", "expected_dst"),
    [
        ("category_year", SHOT, b"Images/2019/IMG_1.jpg"),
        ("category_year", None, b"Images/Unknown/IMG_1.jpg"),
        ("category", SHOT, b"Images/IMG_1.jpg"),
        ("category", None, b"Images/IMG_1.jpg"),
        ("year_month", SHOT, b"2019/04/IMG_1.jpg"),
        ("year_month", None, b"Unknown/IMG_1.jpg"),  # one Unknown for both date levels
        ("extension", SHOT, b"jpg/IMG_1.jpg"),
        ("extension", None, b"jpg/IMG_1.jpg"),
    ],
)
def test_every_mode(mode: str, date: datetime | None, expected_dst: bytes) -> None:
    assert dst(mode, date=date) == expected_dst


def test_modes_are_the_documented_ones() -> None:
    assert set(MODES) == {"category_year", "category", "year_month", "extension"}


@pytest.mark.parametrize(
    ("template", "date", "expected_dst"),
    [
        ("{year}/{month:02d}/{day:02d}/{name}", SHOT, b"2019/04/02/IMG_1.jpg"),
        ("{year}/{month:02d}/{day:02d}/{name}", None, b"Unknown/IMG_1.jpg"),
        ("{category}/{year}-{month:02d}/{name}", SHOT, b"Images/2019-04/IMG_1.jpg"),
        ("{category}/{year}-{month:02d}/{name}", None, b"Images/Unknown/IMG_1.jpg"),
        ("{category}/{year}", SHOT, b"Images/2019/IMG_1.jpg"),  # {name} appended
        ("{year}_{month:02d}_{stem}.{ext}", SHOT, b"2019_04_IMG_1.jpg"),
        # In the file name a missing date reads Unknown and its format spec is dropped.
        ("{year}_{month:02d}_{stem}.{ext}", None, b"Unknown_Unknown_IMG_1.jpg"),
        ("{category:.3}/{stem:_<8}.{ext}", SHOT, b"Ima/IMG_1___.jpg"),
        ("{{raw}}/{name}", SHOT, b"{raw}/IMG_1.jpg"),
        ("{{raw}}/{{x}}-{year}-{name}", None, b"{raw}/{x}-Unknown-IMG_1.jpg"),
        ("{ext}/{stem}/{name}", SHOT, b"jpg/IMG_1/IMG_1.jpg"),
        ("{name}", SHOT, b"IMG_1.jpg"),
    ],
)
def test_templates(template: str, date: datetime | None, expected_dst: bytes) -> None:
    assert dst("category_year", template, date=date) == expected_dst


@pytest.mark.parametrize(
    ("template", "expected_dst"),
    [
        ("extension", b"no-extension/README"),
        # An empty field takes its separator (or its brackets) with it: no "README.", a
        # name Windows and SMB shares refuse; a folder's empty {ext} still reads no-extension.
        ("{ext}/{stem}.{ext}", b"no-extension/README"),
        ("{category}/{stem}.{ext}", b"Other/README"),
        ("{category}/{ext}.{stem}", b"Other/README"),
        ("{category}/{stem}_{ext}.bak", b"Other/README.bak"),
        ("{category}/{stem} ({ext})", b"Other/README"),
        ("{category}/{stem} [{ext}].txt", b"Other/README.txt"),
        ("{category}/{year}-{stem}.{ext}", b"Other/Unknown-README"),
        ("{category}/{stem}", b"Other/README"),
    ],
)
def test_files_without_extension(template: str, expected_dst: bytes) -> None:
    mode, tpl = (template, None) if template in MODES else ("category", template)

    assert dst(mode, tpl, category="other", name=b"README", ext="", date=None) == expected_dst


@pytest.mark.parametrize(
    ("name", "expected_name"),
    [
        (b"notes.", b"notes"),  # the file's own stem ends with a dot
        (b"draft .", b"draft"),
        (b". .", b". ."),  # nothing left: the name as it was
    ],
)
def test_a_rendered_name_never_ends_with_a_dot_or_a_blank(
    name: bytes, expected_name: bytes
) -> None:
    layout = parse_layout("category", "{category}/{stem}.{ext}")

    assert layout.destination("other", None, name, "") == [b"Other", expected_name]


def test_an_empty_parent_takes_its_separator_in_a_folder() -> None:
    layout = parse_layout("category", "{category}-{parent}/{name}")

    assert layout.destination("other", None, b"a.txt", "txt") == [b"Other", b"a.txt"]
    placed = layout.destination("other", None, b"a.txt", "txt", Place(b"in/Taxes"))
    assert placed == [b"Other-Taxes", b"a.txt"]


def test_stem_drops_only_the_extension_it_was_given() -> None:
    layout = parse_layout("category", "{stem}/{name}")

    assert layout.destination("archives", None, b"a.TAR.GZ", "tar.gz") == [b"a", b"a.TAR.GZ"]
    assert layout.destination("other", None, b"a.b", "") == [b"a.b", b"a.b"]


@pytest.mark.parametrize("name", [b"\xff\xfe.jpg", "café.jpg".encode(), b"caf\xe9.jpg"])
def test_names_are_bytes_and_survive_exactly(name: bytes) -> None:
    assert dst("category_year", name=name) == b"Images/2019/" + name


@pytest.mark.parametrize(
    "name",
    [
        b"..jpg",  # stem "." would name the current directory
        b"...jpg",  # stem ".." would climb out of the root
        b"  .jpg",  # a stem of blanks only
    ],
)
def test_a_rendered_directory_never_climbs_out(name: bytes) -> None:
    parts = parse_layout("category", "{stem}/{name}").destination("images", None, name, "jpg")

    expected_dirs = [b"_"]
    assert parts[:-1] == expected_dirs


@pytest.mark.parametrize(
    ("category", "expected_first"),
    [("images", b"Images"), ("a/b", b"A_b"), ("..", b"_"), ("", b"_"), ("x\x00y", b"X_y")],
)
def test_odd_categories_make_one_safe_component(category: str, expected_first: bytes) -> None:
    parts = parse_layout("category").destination(category, None, b"f.bin", "bin")

    assert parts == [expected_first, b"f.bin"]


@pytest.mark.parametrize(
    "template",
    [
        "",
        "   ",
        "/abs/{name}",
        "../{name}",
        "a/../{name}",
        "./{name}",
        "a//{name}",
        "{name}/",
        "{unknown}/{name}",
        "{0}/{name}",
        "{}/{name}",
        "{year.real}/{name}",
        "{year[0]}/{name}",
        "{category/{name}",
        "category}/{name}",
        "{year!r}/{name}",
        "{category!s}/{name}",
        "{category:d}/{name}",
        "{year:%Y}/{name}",
        # Issue 12 #10: specs that make no sense for the field, unbounded widths, long names.
        "{year:02x}/{name}",
        "{name:>4000000000}",
        "{category:_>200}{ext:_>200}/{name}",
    ],
)
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidPlanOptions):
        parse_layout("category_year", template)


def test_an_unknown_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidPlanOptions, match="category_year") as info:
        parse_layout("by_colour")

    assert isinstance(info.value, UserError)  # exit code 2 / HTTP 4xx at the boundary


def test_a_template_wins_over_the_mode_name() -> None:
    assert dst("no-such-mode", "{year}/{name}") == b"2019/IMG_1.jpg"


names = st.binary(min_size=1, max_size=255).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(
        [*MODES, "{stem}/{name}", "{category}/{ext}/{year}-{month:02d}/{stem}.{ext}", "{name}"]
    ),
    category=st.text(max_size=20),
    date=st.none() | st.datetimes(min_value=datetime(1900, 1, 1)),
    name=names,
)
def test_every_component_is_a_plain_name(
    mode: str, category: str, date: datetime | None, name: bytes
) -> None:
    layout = parse_layout(*((mode, None) if mode in MODES else ("category", mode)))

    parts = layout.destination(category, date, name, extension_of(name))

    for part in parts:
        assert part not in (b"", b".", b"..")
        assert b"/" not in part and b"\x00" not in part
    if date is None and mode in ("category_year", "year_month"):
        assert UNKNOWN.encode() in parts[:-1]
    if mode in MODES:
        # The name is kept; only blanks around it are trimmed (a name of blanks is kept whole).
        assert parts[-1] == name or os.fsdecode(parts[-1]) == os.fsdecode(name).strip()


def test_unknown_stands_for_a_missing_date_not_a_wrong_year() -> None:
    parts = parse_layout("year_month").destination("images", None, b"x.jpg", "jpg")

    assert parts == [UNKNOWN.encode(), b"x.jpg"]
    assert NO_EXTENSION == "no-extension"


TAXES = b"Documents/Finance/Taxes 2019"


@pytest.mark.parametrize(
    ("template", "folder", "expected_dst"),
    [
        ("{relative_dir}/{name}", TAXES, TAXES + b"/r.pdf"),
        ("{category}/{relative_dir}/{name}", b"", b"Documents/r.pdf"),  # at the root: none
        ("{category}/{parent}/{name}", TAXES, b"Documents/Taxes 2019/r.pdf"),
        ("{category}/{parent}/{name}", b"", b"Documents/r.pdf"),
        ("{year}/{parent} ({category})/{name}", b"a/\xff", b"2019/\xff (Documents)/r.pdf"),
    ],
)
def test_place_fields_keep_the_structure_that_means_something(
    template: str, folder: bytes, expected_dst: bytes
) -> None:
    layout = parse_layout("category_year", template)

    parts = layout.destination("documents", SHOT, b"r.pdf", "pdf", Place(folder))

    assert b"/".join(parts) == expected_dst


def test_tag_fields_name_the_artist_and_album_and_say_so_when_missing() -> None:
    layout = parse_layout("category_year", "{category}/{artist}/{album}/{name}")

    tagged = layout.destination("audio", None, b"01.mp3", "mp3", Place(b"x", "AC/DC", "Live"))
    untagged = layout.destination("audio", None, b"01.mp3", "mp3", Place(b"x"))

    assert b"/".join(tagged) == b"Audio/AC_DC/Live/01.mp3"  # a tag never makes a folder level
    assert b"/".join(untagged) == b"Audio/Unknown Artist/Unknown Album/01.mp3"


def test_a_missing_tag_is_unknown_not_empty_in_a_file_name_too() -> None:
    # README: an unknown value is no empty field (which would drop its separator): a song
    # without tags is "Unknown Artist - 01.mp3", as its folder is Unknown Artist/.
    layout = parse_layout("category_year", "{category}/{artist} - {album} - {name}")

    untagged = layout.destination("audio", None, b"01.mp3", "mp3", Place(b"x", "", None))

    assert b"/".join(untagged) == b"Audio/Unknown Artist - Unknown Album - 01.mp3"
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    for word in (UNKNOWN, UNKNOWN_ARTIST, UNKNOWN_ALBUM):
        assert f"`{word}`" in readme


def test_relative_dir_must_be_a_component_of_its_own() -> None:
    with pytest.raises(InvalidPlanOptions, match="must be a whole component"):
        parse_layout("category_year", "{category}/from {relative_dir}/{name}")


def test_an_undated_folder_stands_for_the_date_levels_when_asked() -> None:
    layout = parse_layout("year_month")

    assert layout.destination("images", None, b"x.jpg", "jpg", unknown="Undated") == [
        b"Undated",
        b"x.jpg",
    ]
