"""Documentation checks: every relative link and image in README.md and docs/ points to a file,
and README.md stays within 12 KB. Plain text parsing only (no project imports)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 12288

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); text may hold one level of nested brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
EXTERNAL = ("http://", "https://", "mailto:")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        line = INLINE_CODE.sub("", line)
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEF.match(line)
        if definition:
            targets.append(definition.group(1))
        found += [(number, target.strip("<>")) for target in targets]
    return found


def dead_links(markdown: Path, root: Path = ROOT) -> list[str]:
    """'file:line: target' for every relative target that names no existing file or folder."""
    dead = []
    for number, target in link_targets(markdown.read_text(encoding="utf-8")):
        if target.lower().startswith(EXTERNAL):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:  # a link to an anchor in the same file
            continue
        resolved = root / path.lstrip("/") if path.startswith("/") else markdown.parent / path
        if not resolved.exists():
            dead.append(f"{markdown.relative_to(root)}:{number}: {target}")
    return dead


def test_every_relative_link_and_image_exists():
    files = markdown_files()
    assert len(files) > 1, "no Markdown files found under docs/"
    dead = [entry for markdown in files for entry in dead_links(markdown)]
    assert not dead, f"{len(dead)} dead link(s):\n" + "\n".join(dead)


def test_readme_links_into_docs():
    targets = {target for _, target in link_targets((ROOT / "README.md").read_text(encoding="utf-8"))}
    assert "docs/results.md" in targets and "docs/architecture.md" in targets


def test_readme_at_most_12_kb():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}"


def test_dead_links_are_reported(tmp_path):
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "a.png").write_bytes(b"")
    (tmp_path / "docs" / "other.md").write_text("x\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[ok](other.md#part) ![ok](img/a.png) [web](https://example.org/x.md) [top](#title)\n"
        "[gone](missing.md) and ![gone too](img/b.png \"title\")\n"
        "`[not a link](inline-code.md)`\n"
        "```\n[not a link](fenced.md)\n```\n"
        "[ref]: ../nowhere.md\n"
        "[root](/docs/other.md) [parens](<a b.md>)\n"
    )
    assert dead_links(page, root=tmp_path) == [
        "docs/page.md:2: missing.md",
        "docs/page.md:2: img/b.png",
        "docs/page.md:7: ../nowhere.md",
        "docs/page.md:8: a b.md",
    ]
