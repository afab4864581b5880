"""Operator-side commands of `taskqueue` (validate, render, crd, operator)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print(f"taskqueue: '{argv[0]}' is not available yet", file=sys.stderr)
    return 2
