"""Code blocks and commands of README.md and the docs/ pages, read from the files themselves, so
a test of what a page tells a user fails when the page changes and the product does not (or the
reverse).

`readme.command("make dev")` reads README.md; `readme.command(prefix, page="docs/...md")`, or
`readme.Markdown("docs/...md").command(prefix)`, reads a docs page. A block or command a test
asks for must be the only one of its kind on its page.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# A fence opens at the start of a line with a language (indented fences, inside list items,
# are left out, as before); it closes at the next line of three backticks.
_OPEN = re.compile(r"^```(\w+)\s*$")
_CLOSE = re.compile(r"^```\s*$")
#: `<!-- test: python queues=a,b -->` on the line immediately before a fence.
MARKER = re.compile(r"^<!--\s*test:\s*(?P<kind>\S+)(?P<options>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, and the line of its opening fence."""

    language: str
    body: str
    line: int
    marker: str | None = None
    """The text of a `<!-- test: ... -->` line immediately before the fence, if any."""

    @property
    def first_line(self) -> str:
        lines = self.body.splitlines()
        return lines[0].strip() if lines else ""


@dataclass(frozen=True)
class Marker:
    """A `<!-- test: KIND OPTIONS -->` line and what follows it."""

    kind: str
    options: dict[str, str]
    line: int
    block: Block | None
    """The fenced block opening on the next line, or None when something else follows."""


class Markdown:
    """One Markdown file of the repository (README.md unless told), read each time it is asked."""

    def __init__(self, page: str | Path = README) -> None:
        path = Path(page)
        self.path = path if path.is_absolute() else ROOT / path

    @property
    def name(self) -> str:
        """The path from the repository root (as given, for a file outside it)."""
        return (
            str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else str(self.path)
        )

    def fenced(self) -> list[Block]:
        """Every top-level fenced block with a language, in page order."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        found: list[Block] = []
        index = 0
        while index < len(lines):
            opening = _OPEN.match(lines[index])
            if not opening:
                index += 1
                continue
            end = index + 1
            while end < len(lines) and not _CLOSE.match(lines[end]):
                end += 1
            previous = lines[index - 1].strip() if index > 0 else ""
            found.append(
                Block(
                    language=opening.group(1),
                    body="".join(lines[index + 1 : end]),
                    line=index + 1,
                    marker=previous if MARKER.match(previous) else None,
                )
            )
            index = end + 1
        return found

    def markers(self) -> list[Marker]:
        """Every test marker of the page, with the block it marks (if one opens right after)."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        blocks = {block.line: block for block in self.fenced()}
        found = []
        for number, text in enumerate(lines, start=1):
            match = MARKER.match(text.strip())
            if match is None:
                continue
            options = dict(option.partition("=")[::2] for option in match.group("options").split())
            found.append(
                Marker(
                    kind=match.group("kind"),
                    options=options,
                    line=number,
                    block=blocks.get(number + 1),
                )
            )
        return found

    def blocks(self, language: str) -> list[str]:
        return [block.body for block in self.fenced() if block.language == language]

    def block_starting(self, language: str, first_line: str) -> str:
        """The one block of `language` whose first line is `first_line` (e.g. `# processor.yaml`)."""
        matches = [
            block.body
            for block in self.fenced()
            if block.language == language and block.first_line == first_line
        ]
        assert len(matches) == 1, (
            f"{self.name} should have one {language} block starting {first_line!r}: "
            f"{len(matches)} found"
        )
        return matches[0]

    def commands(self) -> list[str]:
        """Every shell command of the page's sh blocks: continuations joined, comments dropped."""
        found = []
        for block in self.blocks("sh"):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if not words:
                    continue
                text = line
                if words != _split_or_none(line):  # a trailing comment, outside any quotes
                    text = line[: line.rindex(" #")]
                found.append(" ".join(text.split()))
        return found

    def command(self, prefix: str) -> list[str]:
        """The words of the one command of the page that starts with `prefix`."""
        matches = [c for c in self.commands() if c.startswith(prefix)]
        assert len(matches) == 1, (
            f"{self.name} should have one command starting {prefix!r}: {matches}"
        )
        return shlex.split(matches[0])


def _split_or_none(line: str) -> list[str] | None:
    try:
        return shlex.split(line)
    except ValueError:  # an apostrophe in a trailing comment
        return None


def pages() -> list[Markdown]:
    """README.md and every page under docs/, in a stable order."""
    return [Markdown(README)] + [Markdown(p) for p in sorted((ROOT / "docs").rglob("*.md"))]


# The module-level functions read README.md unless `page` names another file.


def blocks(language: str, *, page: str | Path = README) -> list[str]:
    return Markdown(page).blocks(language)


def block_starting(language: str, first_line: str, *, page: str | Path = README) -> str:
    return Markdown(page).block_starting(language, first_line)


def commands(*, page: str | Path = README) -> list[str]:
    return Markdown(page).commands()


def command(prefix: str, *, page: str | Path = README) -> list[str]:
    return Markdown(page).command(prefix)
