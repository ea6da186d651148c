"""storage.templates: format specs that make sense per field, bounded widths, names that fit."""

from __future__ import annotations

import pytest

from storage.errors import InvalidPlanOptions, UserError
from storage.templates import (
    MAX_WIDTH,
    NAME_MAX,
    check_exclude,
    check_template,
    parse_template,
)


@pytest.mark.parametrize(
    ("template", "expected_message"),
    [
        ("{name:>4000000000}", "width of {name} is over 255"),  # issue 12 #10: 4 GB per file
        ("{category:x<100000}/{name}", "width of {category} is over 255"),
        ("{stem:.1000}/{name}", "precision of {stem} is over 255"),
        ("{year:02x}/{name}", "not a format for a number"),
        ("{year:b}/{name}", "not a format for a number"),
        ("{month:+d}/{name}", "not a format for a number"),
        ("{day:,}/{name}", "not a format for a number"),
        ("{year:.3}/{name}", "not a format for a number"),
        ("{year:e}/{name}", "not a format for a number"),
        ("{name:d}", "not a format for text"),
        ("{ext:=5}/{name}", "not a format for text"),
        ("{stem:#>5}/{name:{year}}", "not a format for text"),  # nested fields
        ("{category:\x01>9}/{name}", "not printable"),
        # Within every bound one by one, but the rendered folder is 2 x 200 bytes.
        ("{category:_>200}{ext:_>200}/{name}", "would be 400 bytes long"),
        ("{name:é>255}", "would be 505 bytes long"),  # 250 fill characters of 2 bytes
        ("x" * 256 + "/{name}", "would be 256 bytes long"),
    ],
)
def test_specs_that_make_no_sense_or_no_name_are_refused(
    template: str, expected_message: str
) -> None:
    with pytest.raises(InvalidPlanOptions) as refused:
        parse_template(template)

    assert isinstance(refused.value, UserError)  # HTTP 422 / exit code 2 at the boundary
    assert expected_message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "template",
    [
        "{category}/{year}/{month:02d}/{name}",
        "{year:04d}-{month:0>2}-{day:02}/{stem:.40}.{ext}",
        "{category:_<10}/{name}",
        "{ext:.8s}/{name}",
        "{year:d}/{day:=3}/{name}",
        "{name:_>" + str(MAX_WIDTH) + "}",
        "x" * NAME_MAX + "/{name}",
    ],
)
def test_sensible_specs_and_names_up_to_the_limit_are_accepted(template: str) -> None:
    parts = parse_template(template)

    assert [p.template for p in parts] == template.split("/")


@pytest.mark.parametrize(
    ("pattern", "expected_message"),
    [
        # fnmatch reads these literally or as nothing: `--exclude '[abc'` left alone no file
        # named a, b or c, and an apply then moved the files the user meant to keep.
        ("[", "no closing ']'"),
        ("*.[jJ", "no closing ']'"),
        ("[!]", "no closing ']'"),  # the ']' right after '!' is in the set
        ("[z-a]", "range z-a is backwards"),
        ("IMG_[9-0]*", "range 9-0 is backwards"),
        ("Photos/2019", "a '/'"),  # names are matched, never paths
        ("", "1-255 characters"),
    ],
)
def test_exclude_patterns_that_cannot_mean_what_they_say_are_refused(
    pattern: str, expected_message: str
) -> None:
    with pytest.raises(InvalidPlanOptions) as refused:
        check_exclude(["*.tmp", pattern])

    assert expected_message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "pattern",
    ["*.tmp", "[[]draft]*", "[]]x", "[!a-z]*", "x[a-]", "[a-c-b]", "**", "back\\slash", "a-z"],
)
def test_exclude_patterns_fnmatch_reads_as_written_are_accepted(pattern: str) -> None:
    check_exclude([pattern])


@pytest.mark.parametrize(
    ("template", "expected_message"),
    [
        # The tryout's: every file renamed "12IMG_0001", which no program opens as a photo.
        ("{day}{stem}", "drops the files' extensions: its file name has {stem} without {ext}"),
        ("{ext}/{year}-{stem}", "drops the files' extensions"),
        ("{category}/{stem:.40}", "drops the files' extensions"),
        ("{year}/{name:.10}", "can cut the extension off a file name: {name:.10}"),
    ],
)
def test_a_template_whose_file_names_lose_their_extension_is_refused(
    template: str, expected_message: str
) -> None:
    parse_template(template)  # the planner could render it

    with pytest.raises(InvalidPlanOptions) as refused:
        check_template(template)  # a user may not ask for it (the CLI's and the API's rule)

    assert expected_message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "template",
    [
        "{category}/{year}",  # the file keeps its {name}
        "{day}{stem}.{ext}",
        "{category}/{stem:.40}.{ext}",
        "{stem}_{ext}.bak",
        "{stem}/{name}",
        "{year}/{name:_>20}",
        "{stem:.8}/{day}-{name}",
    ],
)
def test_templates_that_keep_the_extension_are_accepted(template: str) -> None:
    check_template(template)
