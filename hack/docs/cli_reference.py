"""The CLI reference: every command, subcommand and option, read from the argument parsers."""

from __future__ import annotations

import argparse

from kube_taskqueue.cli.main import OPERATOR_COMMANDS
from kube_taskqueue.cli.main import build_parser as processor_parser
from kube_taskqueue_operator.cli import build_parser as operator_parser
from schema_reference import cell, code


def cli_page() -> str:
    top = processor_parser()
    lines = [
        "# CLI",
        "",
        "One command, `kube-taskqueue`, installed with the package. The processor's commands "
        "need only the package; the operator's commands (" + ", ".join(OPERATOR_COMMANDS) + ") "
        "need the `operator` extra (`pip install 'kube-taskqueue[operator]'`). Exit codes: 0 "
        "success, 1 a check failed (e.g. `validate` found an invalid manifest), 2 a usage or "
        "input error (named on stderr), 130 interrupted.",
        "",
        "```text",
        top.format_usage().strip(),
        "```",
        "",
    ]
    for name, parser, summary in [*_commands(top), *_commands(operator_parser())]:
        lines += _command(f"kube-taskqueue {name}", parser, summary, level=2)
    return "\n".join(lines)


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each subcommand, aliases folded into their command."""
    found: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: dict[int, str] = {}
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue
            seen[id(sub)] = name
            aliases = [n for n, s in action.choices.items() if s is sub and n != name]
            summary = summaries.get(name, "")
            if aliases:
                summary += f" (alias: {', '.join(aliases)})"
            found.append((name, sub, summary))
    return found


def _command(title: str, parser: argparse.ArgumentParser, summary: str, *, level: int) -> list[str]:
    lines = [f"{'#' * level} `{title}`", ""]
    if summary:
        lines += [cell(summary[0].upper() + summary[1:]) + ".", ""]
    if parser.description:
        if isinstance(parser._get_formatter(), argparse.RawDescriptionHelpFormatter):
            # Laid out by hand (examples, exit codes): kept as the terminal shows it.
            lines += ["```text", parser.description.strip(), "```", ""]
        else:
            lines += [cell(parser.description), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [_option(a) for a in parser._actions if _documented(a)]
    if rows:
        lines += [
            "| Argument | Value | Default | Description |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    for name, sub, sub_summary in _commands(parser):
        lines += _command(f"{title} {name}", sub, sub_summary, level=level + 1)
    return lines


def _documented(action: argparse.Action) -> bool:
    if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
        return False
    return action.help != argparse.SUPPRESS


def _option(action: argparse.Action) -> str:
    if action.option_strings:
        name = ", ".join(code(o) for o in action.option_strings)
        if action.required:
            name += " *(required)*"
    else:
        name = code(str(action.metavar or action.dest))
    if action.choices is not None:
        value = " \\| ".join(code(str(c)) for c in action.choices)
    elif action.nargs == 0:
        value = "flag"
    else:
        value = code(str(action.metavar or action.dest.upper()))
        if action.nargs in ("+", "*"):
            value += " …"
    if action.nargs == argparse.REMAINDER:
        value = "the rest of the command line"
    default = action.default
    shown = (
        ""
        if default in (None, False, argparse.SUPPRESS) or action.nargs == 0
        else code(str(default))
    )
    return f"| {name} | {value} | {shown} | {cell(action.help or '')} |"
