"""README.md's code blocks and commands, read from the file itself, so a test of what the
README tells a user fails when the README changes and the product does not (or the reverse)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(README.read_text()) if lang == language]


def block_starting(language: str, first_line: str) -> str:
    """The one block of `language` whose first line is `first_line` (e.g. `# processor.yaml`)."""
    [block] = [b for b in blocks(language) if b.splitlines()[0].strip() == first_line]
    return block


def commands() -> list[str]:
    """Every shell command of the README's sh blocks: continuations joined, comments dropped."""
    found = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            text = line
            if words != _split_or_none(line):  # a trailing comment, outside any quotes
                text = line[: line.rindex(" #")]
            found.append(" ".join(text.split()))
    return found


def _split_or_none(line: str) -> list[str] | None:
    try:
        return shlex.split(line)
    except ValueError:  # an apostrophe in a trailing comment
        return None


def command(prefix: str) -> list[str]:
    """The words of the one README command that starts with `prefix`."""
    matches = [c for c in commands() if c.startswith(prefix)]
    assert len(matches) == 1, f"README.md should have one command starting {prefix!r}: {matches}"
    return shlex.split(matches[0])
