"""Reference pages from schemas: the CRDs (OpenAPI v3), the processor configuration and the
operator settings (pydantic JSON Schema). One table row per field, with its type, default,
limits and description, and the CRDs' validation rules with their messages."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue_operator.settings import OperatorSettings

Schema = dict[str, Any]


@dataclass(frozen=True)
class Field:
    path: str
    type: str
    default: str
    limits: str
    description: str
    required: bool


@dataclass(frozen=True)
class Rule:
    path: str
    rule: str
    message: str


def code(text: str) -> str:
    """Inline code that is safe in a Markdown table cell (pipes included)."""
    # Markdown still reads inside inline HTML: its own characters become entities too.
    return "<code>" + _escape(text) + "</code>"


_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "|[]()*_`\\{}!#+-"})


def _escape(text: str) -> str:
    return html.escape(text, quote=False).translate(_ENTITIES)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "&#124;")


class Walker:
    """Flattens a schema into fields and rules; `$ref` and `anyOf` (pydantic's optionals)
    are resolved against `defs`."""

    def __init__(self, defs: Schema | None = None) -> None:
        self.defs = defs or {}
        self.fields: list[Field] = []
        self.rules: list[Rule] = []

    def resolve(self, node: Schema) -> Schema:
        if "$ref" in node:
            target = self.defs[node["$ref"].rsplit("/", 1)[-1]]
            outer = {k: v for k, v in node.items() if k != "$ref"}
            return self.resolve({**target, **outer})
        if "anyOf" in node:
            variants = [v for v in node["anyOf"] if v.get("type") != "null"]
            outer = {k: v for k, v in node.items() if k != "anyOf"}
            if len(variants) == 1:
                return self.resolve({**variants[0], **outer})
            names = " or ".join(type_name(self.resolve(v)) for v in variants)
            return {**outer, "x-type": names}
        return node

    def walk(self, node: Schema, path: str, *, required: bool = False, inherited: str = "") -> None:
        node = self.resolve(node)
        description = node.get("description", "") or inherited
        if path:
            self.fields.append(
                Field(
                    path=path,
                    type=type_name(node),
                    default=default_text(node),
                    limits=limits_text(node),
                    description=description,
                    required=required,
                )
            )
        for rule in node.get("x-kubernetes-validations", []):
            self.rules.append(Rule(path or "(root)", rule["rule"], rule.get("message", "")))
        needed = set(node.get("required", []))
        for name, child in node.get("properties", {}).items():
            self.walk(child, f"{path}.{name}" if path else name, required=name in needed)
        items = node.get("items")
        if isinstance(items, dict) and _is_container(self.resolve(items)):
            self.walk_children(self.resolve(items), f"{path}[]")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and _is_container(self.resolve(extra)):
            self.walk_children(self.resolve(extra), f"{path}.<name>")

    def walk_children(self, node: Schema, path: str) -> None:
        """An array's items or a map's values: their fields, not a row of their own (the
        parent's row already says `[]object`)."""
        for rule in node.get("x-kubernetes-validations", []):
            self.rules.append(Rule(path, rule["rule"], rule.get("message", "")))
        needed = set(node.get("required", []))
        for name, child in node.get("properties", {}).items():
            self.walk(child, f"{path}.{name}", required=name in needed)


def _is_container(node: Schema) -> bool:
    return bool(node.get("properties")) or bool(node.get("x-kubernetes-validations"))


def type_name(node: Schema) -> str:
    if "x-type" in node:
        return str(node["x-type"])
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = node.get("type")
    if kind == "array":
        items = node.get("items", {})
        return "[]" + (type_name(items) if isinstance(items, dict) else "any")
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not node.get("properties"):
            return "map[string]" + type_name(extra)
        return "object"
    if kind is None and "enum" in node:
        return "string"
    return str(kind or "any")


def default_text(node: Schema) -> str:
    if node.get("default") is None:  # absent, or pydantic's "not set" of an optional
        return ""
    return code(json.dumps(node["default"], separators=(", ", ": ")))


def limits_text(node: Schema) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append("one of " + ", ".join(code(str(v)) for v in node["enum"]))
    if "const" in node:
        parts.append("exactly " + code(str(node["const"])))
    bounds = (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    )
    for key, sign in bounds:
        value = node.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{sign} {int(value) if value == int(value) else value}")
    for key, what in (("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in node:
            parts.append(f"{what} {node[key]}")
    for key, what in (("minItems", "items ≥"), ("maxItems", "items ≤")):
        if key in node:
            parts.append(f"{what} {node[key]}")
    for key, what in (("minProperties", "entries ≥"), ("maxProperties", "entries ≤")):
        if key in node:
            parts.append(f"{what} {node[key]}")
    if "pattern" in node:
        parts.append("pattern " + code(node["pattern"]))
    return "; ".join(parts)


def field_table(fields: list[Field], *, name_column: str = "Field") -> list[str]:
    lines = [f"| {name_column} | Type | Description |", "|---|---|---|"]
    for field in fields:
        name = code(field.path) + (" *(required)*" if field.required else "")
        lines.append(f"| {name} | {code(field.type)} | {details(field)} |")
    return lines


def details(field: Field) -> str:
    """The description, then the default and the limits: one cell, so the table stays
    readable at three columns."""
    parts = [cell(field.description)]
    if field.default:
        parts.append(f"Default {field.default}.")
    if field.limits:
        parts.append(field.limits[0].upper() + field.limits[1:] + ".")
    return " ".join(p for p in parts if p)


def rules_table(rules: list[Rule]) -> list[str]:
    lines = ["| On | Rule (CEL) | Message |", "|---|---|---|"]
    for rule in rules:
        lines.append(f"| {code(rule.path)} | {code(rule.rule)} | {cell(rule.message)} |")
    return lines


def crd_page(crd: Schema) -> str:
    spec = crd["spec"]
    kind = spec["names"]["kind"]
    group = spec["group"]
    lines = [f"# {kind} resource", ""]
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        walker = Walker()
        for part in ("spec", "status"):
            if part in schema.get("properties", {}):
                needed = part in schema.get("required", [])
                walker.walk(schema["properties"][part], part, required=needed)
        scope = spec.get("scope", "Namespaced")
        names = spec["names"]
        short = ", ".join(names.get("shortNames", [])) or "none"
        lines += [
            f"`apiVersion: {group}/{version['name']}` · `kind: {kind}` · {scope} · "
            f"plural `{names['plural']}` · short names: {short}"
            + (" · served" if version.get("served") else "")
            + (" · storage version" if version.get("storage") else ""),
            "",
            cell(schema.get("description", "")),
            "",
            "## Fields",
            "",
            "Every field of the schema the API server enforces (generated from the pydantic "
            "models in `operator/kube_taskqueue_operator/resource/`). `[]` marks a list's "
            "items, `<name>` a map's keys.",
            "",
            *field_table(walker.fields),
            "",
        ]
        if walker.rules:
            lines += [
                "## Validation rules",
                "",
                "Checked by the API server itself (CEL `x-kubernetes-validations`), so they "
                "hold even where the admission webhook is off. The webhook and "
                "`kube-taskqueue validate` check more (queue claims across TaskQueues, "
                "policies, SQS limits) with messages that name the field.",
                "",
                *rules_table(walker.rules),
                "",
            ]
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            lines += [
                "## Columns of `kubectl get`",
                "",
                "| Column | Type | JSONPath |",
                "|---|---|---|",
                *(f"| {c['name']} | {c['type']} | {code(c['jsonPath'])} |" for c in columns),
                "",
            ]
    return "\n".join(lines)


def config_page() -> str:
    schema = ProcessorConfig.model_json_schema()
    walker = Walker(schema.get("$defs"))
    needed = set(schema.get("required", []))
    for name, node in schema["properties"].items():
        walker.walk(node, name, required=name in needed)
    return "\n".join(
        [
            "# Processor configuration",
            "",
            "The YAML file of `kube-taskqueue run --config FILE` (and `enqueue`, `dev`). The "
            "operator renders one per processor into a ConfigMap; a file of your own is for "
            "running outside Kubernetes. Field names are camelCase; durations are seconds. "
            "Unknown fields are refused, naming the file and the field.",
            "",
            cell(ProcessorConfig.__doc__ or ""),
            "",
            *field_table(walker.fields),
            "",
            "`queues.<name>` and `taskLimits.<name>` are keyed by logical queue name and by "
            "task name.",
        ]
    )


def settings_page() -> str:
    schema = OperatorSettings.model_json_schema()
    walker = Walker(schema.get("$defs"))
    rows = ["| Variable | Type | Description |", "|---|---|---|"]
    for name, node in schema["properties"].items():
        resolved = walker.resolve(node)
        kind = type_name(resolved)
        if kind == "[]string":
            kind = "comma-separated list"
        elif kind == "object":
            kind = "JSON object"
        field = Field(
            path=name,
            type=kind,
            default=default_text(resolved),
            limits=limits_text(resolved),
            description=resolved.get("description", ""),
            required=False,
        )
        rows.append(f"| {code('TASKQUEUE_' + name.upper())} | {code(kind)} | {details(field)} |")
    return "\n".join(
        [
            "# Operator settings",
            "",
            "The operator reads its settings from `TASKQUEUE_*` environment variables when "
            "it starts (the chart sets them from its [values](helm-values.md)); a bad value "
            "stops it with one line naming the variable. Lists are comma-separated; "
            "`TASKQUEUE_DEFAULT_POLICY` is a JSON object with the fields of a "
            "[TaskQueuePolicy](taskqueuepolicy.md)'s spec.",
            "",
            *rows,
        ]
    )
