"""Reading TaskQueue manifests from files, directories and stdin (multi-document YAML, JSON,
and kubectl's `kind: List`), as `kubectl apply -f` reads them.

Helm charts are skipped with a note: their templates are not YAML until `helm template`
renders them, and that output is what `kube-taskqueue validate -` reads.

Input is read as the API server will see it, JSON: what has no JSON form (timestamps, binary,
sets, NaN) or reads two ways (a key given twice) is refused, as kubectl refuses it. Whatever
the input, reading it is bounded: files past `MAX_MANIFEST_BYTES`, nesting past `MAX_DEPTH`
and aliases expanding past `ALIAS_BUDGET` nodes (a "billion laughs" document) are refused
before anything grows.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode

from kube_taskqueue_operator.resource.models import GROUP, KIND
from kube_taskqueue_operator.resource.policy import POLICY_KIND

#: What `kubectl apply -f DIR` reads.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: The path that means standard input, as for kubectl.
STDIN = "-"
STDIN_SOURCE = "<stdin>"
CHART_FILE = "Chart.yaml"
TEMPLATES_DIR = "templates"
HELM_ACTION = "{{"

#: The largest file (or standard input) read: more than twice the API server's 3 MiB request
#: limit, so no object it would store is refused here, yet reading stays bounded.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
#: Deepest nesting of mappings and lists in a document (a TaskQueue itself is 5 deep at a
#: payload): the renderer and JSON encoder recurse per level.
MAX_DEPTH = 100
#: Nodes that aliases (`*name`) may add to one document by repeating what they refer to.
#: Manifests rarely use aliases at all; this lets a few shared blocks through and stops a
#: "billion laughs" document, which kubectl refuses too ("excessive aliasing").
ALIAS_BUDGET = 10_000
#: YAML tags with no JSON equivalent; the API server reads manifests as JSON.
_NOT_JSON_TAGS = ("binary", "timestamp", "set", "omap", "pairs")


class ManifestError(ValueError):
    """A path that cannot be read or is not YAML; the message names it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    source: str
    """`file` or `file#index` for the n-th document of a multi-document file."""
    body: dict[str, Any]


@dataclasses.dataclass(kw_only=True)
class Manifests:
    documents: list[Document] = dataclasses.field(default_factory=list)
    """The TaskQueue documents found."""
    problems: list[str] = dataclasses.field(default_factory=list)
    """Documents of our API group that are no TaskQueue (the API server refuses them)."""
    notes: list[str] = dataclasses.field(default_factory=list)
    """What was skipped, and why (Helm charts)."""
    tenancy: list[Document] = dataclasses.field(default_factory=list)
    """TaskQueuePolicy and Namespace documents (what `validate --policy` checks against)."""


def is_taskqueue(body: Any) -> bool:
    return isinstance(body, dict) and body.get("kind") == KIND and _our_group(body)


def _our_group(body: dict[str, Any]) -> bool:
    return str(body.get("apiVersion", "")).split("/")[0] == GROUP


def load_taskqueues(paths: Iterable[str | Path], *, stdin: BinaryIO | None = None) -> Manifests:
    """Every TaskQueue document under the paths (`-` is `stdin`, read as bytes: its encoding
    is checked as a file's is); other kinds are skipped."""
    found = Manifests()
    for raw in paths:
        if str(raw) == STDIN:
            if stdin is None:
                raise ManifestError("-: standard input is not available")
            text = _decode(STDIN_SOURCE, stdin)
            _collect(found, STDIN_SOURCE, _parse(STDIN_SOURCE, text, json_file=False))
            continue
        path = Path(raw)
        if path.is_dir():
            for file in _files_under(path, found.notes):
                _collect(found, str(file), _read(file, explicit=False))
        elif path.is_file():
            _collect(found, str(path), _read(path, explicit=True))
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return found


def _decode(source: str, stream: BinaryIO) -> str:
    """At most MAX_MANIFEST_BYTES of UTF-8 text (a byte more is read to tell it is too big)."""
    data = stream.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{source}: larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB (the API server "
            "takes at most 3 MiB per object); split it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(
            f"{source}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x})"
        ) from None


def _files_under(directory: Path, notes: list[str]) -> Iterator[Path]:
    """Manifest files under `directory`, leaving out Helm charts (with a note each)."""
    charts = sorted(chart.parent for chart in directory.rglob(CHART_FILE) if chart.is_file())
    for chart in charts:
        notes.append(
            f"{chart}: skipped, a Helm chart (its templates are YAML only once rendered); "
            f"validate what it renders per values file: helm template {chart} -f <values.yaml> "
            "| kube-taskqueue validate -"
        )
    for file in sorted(directory.rglob("*")):
        if file.suffix not in MANIFEST_SUFFIXES or not file.is_file():
            continue
        if any(file.is_relative_to(chart) for chart in charts):
            continue
        if _is_helm_template(file):
            notes.append(
                f"{file}: skipped, a Helm template ({HELM_ACTION} ... }}}}); validate what it "
                "renders: helm template CHART | kube-taskqueue validate -"
            )
            continue
        yield file


def _is_helm_template(file: Path) -> bool:
    """A file of a chart's templates/ folder that holds template actions (a copied chart
    without its Chart.yaml, say)."""
    if TEMPLATES_DIR not in file.parent.parts:
        return False
    try:
        with file.open("rb") as stream:
            return HELM_ACTION.encode() in stream.read(MAX_MANIFEST_BYTES)
    except OSError:
        return False


def _read(path: Path, *, explicit: bool) -> list[Any]:
    try:
        with path.open("rb") as stream:
            text = _decode(str(path), stream)
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return _parse(str(path), text, json_file=path.suffix == ".json")
    except ManifestError as error:
        if explicit and HELM_ACTION in text:
            raise ManifestError(
                f"{error}; it looks like a Helm template: validate what it renders, e.g. "
                "helm template CHART | kube-taskqueue validate -"
            ) from None
        raise


def _parse(source: str, text: str, *, json_file: bool) -> list[Any]:
    if json_file:
        # JSON is read as JSON: a tab-indented file is valid JSON but not valid YAML.
        try:
            return [_json(text)] if text.strip() else []
        except ValueError as error:
            raise ManifestError(f"{source}: not valid JSON: {error}") from None
    try:
        return _load_yaml(text)
    except yaml.reader.ReaderError as error:
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise ManifestError(
            f"{source}: not valid YAML: character U+{code:04X} (at position {error.position}) "
            "is not allowed in YAML"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestError(f"{source}: not valid YAML{where}: {problem}") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise ManifestError(f"{source}: not valid YAML: {error}") from None


def _load_yaml(text: str) -> list[Any]:
    loader = _Loader(text)  # raises for characters YAML does not allow (NUL, say)
    try:
        documents = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            documents.append(loader.get_data())
        return documents
    finally:
        loader.dispose()


def _json(text: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if _json_depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _json_depth(value: Any) -> int:
    """Nesting of mappings and lists, without recursion (the value may be deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} has no JSON form (NaN and infinities are not JSON)")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"duplicate key {key!r}")
    return dict(pairs)


class _Loader(yaml.SafeLoader):
    """YAML as JSON: the safe loader with bounded aliases and nesting, no duplicate keys, no
    values JSON cannot hold."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._expanded = 0
        self._open_anchors: list[str | None] = []
        #: id(node) → (nodes, depth) of what an alias refers to, with aliases expanded.
        self._shapes: dict[int, tuple[int, int]] = {}

    def compose_document(self) -> Node | None:
        self._expanded = 0  # the budget is per document
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            return self._compose_alias(parent, index)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        event = self._peek()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
            )
        self._open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.pop()
            self._depth -= 1

    def _compose_alias(self, parent: Node | None, index: int) -> Node | None:
        event = self._peek()
        if event.anchor in self._open_anchors:
            raise ComposerError(
                None,
                None,
                f"alias *{event.anchor} refers to a node that contains it",
                event.start_mark,
            )
        node = super().compose_node(parent, index)
        assert node is not None  # an alias event composes the node it refers to
        size, depth = self._shape(node)
        self._expanded += size
        if self._expanded > ALIAS_BUDGET:
            raise ComposerError(
                None,
                None,
                f"aliases expand to more than {ALIAS_BUDGET} nodes (excessive aliasing)",
                event.start_mark,
            )
        if self._depth + depth > MAX_DEPTH:
            raise ComposerError(
                None,
                None,
                f"alias *{event.anchor} nests deeper than {MAX_DEPTH} levels",
                event.start_mark,
            )
        return node

    def _peek(self) -> Any:
        return self.peek_event()  # type: ignore[no-untyped-call]

    def _shape(self, node: Node) -> tuple[int, int]:
        """Nodes and nesting of `node` as the document means it (aliases repeated). Shapes
        of alias targets are remembered, so nested aliases cost one look-up each."""
        known = self._shapes.get(id(node))
        if known is not None:
            return known
        size, depth = 1, 0
        if isinstance(node, CollectionNode):
            children = (
                [part for pair in node.value for part in pair]
                if isinstance(node, MappingNode)
                else node.value
            )
            shapes = [self._shape(child) for child in children]
            size += sum(shape[0] for shape in shapes)
            depth = 1 + max((shape[1] for shape in shapes), default=0)
        self._shapes[id(node)] = (size, depth)
        return size, depth

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` and a key of its own override, as in kubectl
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the safe constructor says so
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_finite_float(self, node: ScalarNode) -> float:
        value = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(
                None,
                None,
                f"{node.value!r} has no JSON form (NaN and infinities)",
                node.start_mark,
            )
        return value

    def refuse_tag(self, node: Node) -> None:
        raise ConstructorError(
            None,
            None,
            f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} has no JSON form (the API "
            "server reads JSON)",
            node.start_mark,
        )


# Timestamps stay strings: JSON has none (kubectl's YAML-to-JSON keeps them as written).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith(":timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_finite_float)
for _tag in _NOT_JSON_TAGS:
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.refuse_tag)


def _collect(found: Manifests, source: str, bodies: list[Any]) -> None:
    many = len(bodies) > 1
    for index, body in enumerate(bodies):
        label = f"{source}#{index}" if many else source
        for item_label, item in _items(label, body):
            if is_taskqueue(item):
                found.documents.append(Document(source=item_label, body=item))
            elif isinstance(item, dict) and (
                (item.get("kind") == POLICY_KIND and _our_group(item))
                or (item.get("kind") == "Namespace" and item.get("apiVersion") == "v1")
            ):
                found.tenancy.append(Document(source=item_label, body=item))
            elif isinstance(item, dict) and _our_group(item):
                found.problems.append(
                    f"{item_label}: {item.get('apiVersion')} has no kind {item.get('kind')!r} "
                    f"(its kinds are {KIND} and {POLICY_KIND}); the API server would refuse it"
                )


def _items(label: str, body: Any) -> Iterator[tuple[str, Any]]:
    """A document, or the items of a `kind: List` (what `kubectl get -o yaml` prints)."""
    if (
        isinstance(body, dict)
        and str(body.get("kind", "")).endswith("List")
        and isinstance(body.get("items"), list)
    ):
        for index, item in enumerate(body["items"]):
            yield f"{label} items[{index}]", item
    else:
        yield label, body
