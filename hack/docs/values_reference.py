"""The Helm values reference: every key of values.yaml in file order, with its type (from
values.schema.json), its default (the value in values.yaml) and its prose (the comment block
above it; helm-docs' `# --` marker is dropped)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from schema_reference import code

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


@dataclass(frozen=True)
class Key:
    path: tuple[str, ...]
    comment: list[str]


def documented_keys(text: str) -> list[Key]:
    """Each mapping key of the file, with the comment block right above it (a blank line
    ends a block, so a section's header comment is not taken by its first key)."""
    keys: list[Key] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    block_indent: int | None = None  # inside a literal block scalar (`|`, `>`)
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped[1:])
            continue
        match = _KEY.match(line)
        if match is None:  # a list item or a continuation: not a key of its own
            comment = []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        keys.append(Key(tuple(k for _, k in stack), comment))
        comment = []
        if match["rest"].strip().startswith(("|", ">")):
            block_indent = indent
    return keys


def reference_keys(text: str, schema: dict[str, Any]) -> list[Key]:
    """The keys the reference lists: inside a free-form map (resources, labels: the schema
    says only `object`), the map is the value, not a section of keys."""
    keys = documented_keys(text)
    free = {k.path for k in keys if free_form(schema_at(schema, k.path))}
    return [k for k in keys if not any(k.path[:n] in free for n in range(1, len(k.path)))]


def free_form(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and "properties" not in node


def prose(comment: list[str]) -> list[str]:
    """Markdown of a comment block: sentences joined into paragraphs and list items; lines
    indented further (examples) kept as a code block."""
    out: list[str] = []
    paragraph: list[str] = []
    example: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            out.extend([" ".join(paragraph), ""])
            paragraph.clear()

    def flush_example() -> None:
        if example:
            out.extend(["```yaml", *example, "```", ""])
            example.clear()

    for raw in comment:
        text = raw[1:] if raw.startswith(" ") else raw
        text = text.removeprefix("-- ") if text.startswith("-- ") else text
        if text.startswith("  "):
            flush_paragraph()
            example.append(text[2:])
            continue
        flush_example()
        if text.startswith("- "):
            flush_paragraph()
            paragraph.append(text)
        elif text.strip():
            paragraph.append(text.strip())
        else:
            flush_paragraph()
    flush_paragraph()
    flush_example()
    return out


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for key in path:
        node = node.get("properties", {}).get(key, {})
    return node


def value_at(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def type_of(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = node.get("items", {})
        return "[]" + (type_of(items) if items else "any")
    return str(kind or "any")


def values_page(text: str, schema: dict[str, Any]) -> str:
    values = yaml.safe_load(text)
    keys = reference_keys(text, schema)
    parents = {k.path[:-1] for k in keys}
    lines = [
        "# Helm values",
        "",
        "Every key of the `kube-taskqueue-operator` chart's `values.yaml`, in its order, with "
        "the type `values.schema.json` enforces (an unknown key or a wrong type fails the "
        "install) and the default. Environment files: `values-dev.yaml` and "
        "`values-prod.yaml` in the chart.",
        "",
    ]
    for key in keys:
        dotted = ".".join(key.path)
        node = schema_at(schema, key.path)
        level = "##" if len(key.path) == 1 else "###"
        lines += [f"{level} `{dotted}`", ""]
        if key.path in parents:  # a section: its keys follow
            lines += prose(key.comment)
            continue
        default = json.dumps(value_at(values, key.path), separators=(", ", ": "))
        lines += [f"Type {code(type_of(node))} · default {code(default)}", ""]
        lines += prose(key.comment)
    return "\n".join(lines)
