"""The documentation's relative links lead somewhere: README.md, docs/*.md and the recipes' markdown.

Every markdown link `[text](target)` that is not a URL or a bare `#anchor` must name a file or folder
that exists, resolved against the linking file's folder (its `#anchor` part is dropped). Code spans and
fenced code blocks are skipped, so a command that happens to contain brackets is not read as a link.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "asr" / "pretrained" / "MODEL_CARD.md",
                *(ROOT / "docs").glob("*.md"), *(ROOT / "recipes").glob("*/*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(markdown: str) -> list[str]:
    """The link targets of `markdown` outside code, without URLs, mail links and in-page anchors."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    targets = [match.group(1) for match in LINK.finditer(prose)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_link_finder_sees_links_and_skips_urls_anchors_and_code():
    text = ("[a](docs/a.md) ![pic](b.png#x) [web](https://example.org) [top](#top) `[no](c.md)`\n"
            "```\n[no](d.md)\n```\n[e](e.md \"title\")")
    assert relative_links(text) == ["docs/a.md", "b.png#x", "e.md"]


def test_pages_exist():
    assert ROOT / "README.md" in PAGES and len([p for p in PAGES if p.parent.name == "docs"]) >= 3


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page):
    broken = [target for target in relative_links(page.read_text(encoding="utf-8"))
              if not (page.parent / target.split("#")[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
