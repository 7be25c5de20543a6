"""Every relative link in README.md and docs/*.md leads to a file that exists, and to a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    found: set[str] = set(EXPLICIT_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")  # GitHub numbers repeated headings
        seen[base] = count + 1
    return found


def links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not ours to check offline
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file {destination.relative_to(ROOT)}")
            continue
        if anchor and destination.is_file():
            if destination.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(destination):
                broken.append(f"{target}: no heading '#{anchor}' in {destination.relative_to(ROOT)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert links(page), f"{page.name} links nothing"
    assert broken_links(page) == []


def test_the_manual_is_complete() -> None:
    expected = {"architecture.md", "operations.md", "data.md", "benchmark.md", "deployment.md"}
    assert expected <= {page.name for page in PAGES}


def test_the_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Retries and deadlines\n\n## Running commands: `./mta`\n")
    page.write_text(
        "[fine](other.md#retries-and-deadlines) [fine too](other.md#running-commands-mta) "
        "[self](#a-heading) [web](https://example.com/x) `[in code](missing.md)`\n\n"
        "## A heading\n\n[gone](missing.md) [wrong](other.md#no-such-heading)\n\n"
        "```\n[in a block](missing-too.md)\n```\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert broken_links(page) == [
            "missing.md: no such file missing.md",
            "other.md#no-such-heading: no heading '#no-such-heading' in other.md",
        ]
    finally:
        ROOT = saved


def test_slugs_match_githubs() -> None:
    assert slug("The one workaround: partial success in a ranged step") == (
        "the-one-workaround-partial-success-in-a-ranged-step"
    )
    assert slug("What is tested here, and what is not") == "what-is-tested-here-and-what-is-not"
    assert slug("Weeks and the 2010 files") == "weeks-and-the-2010-files"
