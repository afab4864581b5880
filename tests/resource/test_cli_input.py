"""Whatever it is given, `kube-taskqueue validate` and `render` answer in one line with the
documented exit code (0 fine, 1 invalid TaskQueues, 2 unreadable input), within bounded
memory: alias bombs, deep nesting, huge files, bad encodings, duplicate keys, values JSON
cannot hold, many documents and documents of other kinds.

The CLI runs as a subprocess under an address-space limit, so input that made it grow
without bound fails the test (MemoryError, exit 1) instead of the machine; the timeout only
keeps a regression from hanging the suite.
"""

from __future__ import annotations

import copy
import json
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_taskqueue_operator.resource.manifests import ALIAS_BUDGET, MAX_DEPTH, MAX_MANIFEST_BYTES

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"
#: Address space of one CLI run: several times what it needs (about 50 MB resident), far
#: below what an expanding alias bomb takes.
MEMORY_LIMIT = 1024 * 1024 * 1024
INVALID, UNREADABLE = 1, 2


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(TASKQUEUE), *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=limited,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


def taskqueue_yaml(manifest: dict[str, Any], payload: str) -> str:
    """The example with `payload` (YAML text) as the first task's payload."""
    manifest = copy.deepcopy(manifest)
    del manifest["spec"]["tasks"][0]["payload"]
    text = yaml.safe_dump(manifest, sort_keys=False)
    marker = "schedule: 0 * * * *\n"
    assert marker in text
    return text.replace(marker, marker + "    payload: " + payload + "\n", 1)


def laughs(levels: int) -> str:
    """A "billion laughs" mapping: each level nine aliases of the one before."""
    lines = ['{l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return ", ".join(lines) + "}"


# Each case: the bytes of a file, and the start of the one error line after `<path>: `.
UNREADABLE_CASES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "alias-bomb": lambda m: taskqueue_yaml(m, laughs(9)).encode(),
    "recursive-alias": lambda m: taskqueue_yaml(m, "&loop {self: *loop}").encode(),
    "deep-nesting": lambda m: taskqueue_yaml(m, "{a: " + "[" * 5000 + "]" * 5000 + "}").encode(),
    "deep-through-aliases": lambda m: (
        "".join(f"d{i}: &d{i} [{'*d' + str(i - 1) if i else 0}]\n" for i in range(MAX_DEPTH + 5))
    ).encode(),
    "huge-file": lambda m: b"# padding\n" * (MAX_MANIFEST_BYTES // 10 + 1),
    "latin-1": lambda m: (
        yaml.safe_dump(m).replace("accounts", "comptes-\xe9t\xe9").encode("latin-1")
    ),
    "utf-16": lambda m: yaml.safe_dump(m).encode("utf-16"),
    "nul-byte": lambda m: yaml.safe_dump(m).encode() + b"\x00",
    "duplicate-key": lambda m: (
        yaml.safe_dump(m).replace("spec:\n", "spec: {}\nspec:\n", 1).encode()
    ),
    "timestamp-tag": lambda m: taskqueue_yaml(m, "{at: !!timestamp 2024-01-01}").encode(),
    "binary-tag": lambda m: taskqueue_yaml(m, "{blob: !!binary aGVsbG8=}").encode(),
    "set-tag": lambda m: taskqueue_yaml(m, "!!set {a, b}").encode(),
    "python-tag": lambda m: taskqueue_yaml(m, "!!python/object/apply:os.system [true]").encode(),
    "nan": lambda m: taskqueue_yaml(m, "{x: .nan}").encode(),
    "infinity": lambda m: taskqueue_yaml(m, "{x: 1.0e+999}").encode(),
    "huge-integer": lambda m: taskqueue_yaml(m, "{x: " + "9" * 5000 + "}").encode(),
    "broken-yaml": lambda m: b"kind: TaskQueue\nspec: [unclosed\n",
}

#: The error line after `<path>: `: where (line and column, for YAML) and why.
EXPECTED = {
    "alias-bomb": rf"not valid YAML \(line \d+, column \d+\): aliases expand to more than "
    rf"{ALIAS_BUDGET} nodes \(excessive aliasing\)$",
    "recursive-alias": r"not valid YAML \(line \d+, column \d+\): alias \*loop refers to a "
    r"node that contains it$",
    "deep-nesting": rf"not valid YAML \(line \d+, column \d+\): nested deeper than {MAX_DEPTH} "
    r"levels$",
    "deep-through-aliases": r"not valid YAML \(line \d+, column \d+\): alias \*d\d+ nests "
    rf"deeper than {MAX_DEPTH} levels$",
    "huge-file": r"larger than 8 MiB \(the API server takes at most 3 MiB per object\); split it$",
    "latin-1": r"not UTF-8 text \(byte \d+ is 0xe9\)$",
    "utf-16": r"not UTF-8 text \(byte 0 is 0xff\)$",
    "nul-byte": r"not valid YAML: character U\+0000 \(at position \d+\) is not allowed in YAML$",
    "duplicate-key": r"not valid YAML \(line \d+, column 1\): found duplicate key 'spec'$",
    "timestamp-tag": r"not valid YAML \(line \d+, column \d+\): tag !!timestamp has no JSON form",
    "binary-tag": r"not valid YAML \(line \d+, column \d+\): tag !!binary has no JSON form",
    "set-tag": r"not valid YAML \(line \d+, column \d+\): tag !!set has no JSON form",
    "python-tag": r"not valid YAML \(line \d+, column \d+\): could not determine a constructor "
    r"for the tag 'tag:yaml.org,2002:python/object/apply:os.system'$",
    "nan": r"not valid YAML \(line \d+, column \d+\): '\.nan' has no JSON form",
    "infinity": r"not valid YAML \(line \d+, column \d+\): '1\.0e\+999' has no JSON form",
    "huge-integer": r"not valid YAML: Exceeds the limit \(4300 digits\) for integer string",
    "broken-yaml": r"not valid YAML \(line 3, column 1\): expected ',' or '\]', but got "
    r"'<stream end>'$",
}


def one_error_line(result: subprocess.CompletedProcess[str], source: str) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    prefix = f"kube-taskqueue: error: {source}: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


@pytest.mark.parametrize("command", ["validate", "render"])
@pytest.mark.parametrize("case", sorted(UNREADABLE_CASES))
def test_unreadable_input_is_one_line_and_exit_2(case, command, manifest, tmp_path):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(UNREADABLE_CASES[case](copy.deepcopy(manifest)))
    args = [str(path)] if command == "validate" else ["-f", str(path)]
    result = run(command, *args)
    assert result.returncode == UNREADABLE, result.stderr[-2000:]
    assert re.match(EXPECTED[case], one_error_line(result, str(path)))
    assert result.stdout == ""


def test_the_alias_bomb_is_refused_on_stdin_too(manifest):
    result = run("render", "-f", "-", stdin=taskqueue_yaml(manifest, laughs(9)).encode())
    assert result.returncode == UNREADABLE
    assert "excessive aliasing" in one_error_line(result, "<stdin>")


def test_stdin_that_is_not_utf8_is_one_line_and_exit_2(manifest):
    text = yaml.safe_dump(manifest).encode() + b"# \xff\n"
    result = run("validate", "-", stdin=text)
    assert result.returncode == UNREADABLE
    assert one_error_line(result, "<stdin>").startswith("not UTF-8 text (byte ")


def test_stdin_past_the_size_limit_is_refused(manifest):
    result = run("validate", "-", stdin=b"#" * (MAX_MANIFEST_BYTES + 1))
    assert result.returncode == UNREADABLE
    assert one_error_line(result, "<stdin>").startswith("larger than 8 MiB")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"kind": "TaskQueue", "kind": "List"}', "not valid JSON: duplicate key 'kind'"),
        ('{"a": NaN}', "not valid JSON: NaN has no JSON form"),
        ("[" * 100_000, f"not valid JSON: nested deeper than {MAX_DEPTH} levels"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "not valid JSON: nested deeper than"),
    ],
)
def test_json_files_are_held_to_the_same_rules(tmp_path, text, why):
    path = tmp_path / "tq.json"
    path.write_text(text)
    result = run("validate", str(path))
    assert result.returncode == UNREADABLE
    assert one_error_line(result, str(path)).startswith(why)


# -- what is readable: valid, or invalid with the problem named --------------------------------


def test_a_few_aliases_are_fine(manifest, tmp_path):
    path = tmp_path / "tq.yaml"
    path.write_text(taskqueue_yaml(manifest, "{a: &shared {x: [1, 2, 3]}, b: *shared, c: *shared}"))
    result = run("validate", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr


def test_a_date_is_kept_as_the_string_it_is_written_as(manifest, tmp_path):
    """kubectl turns YAML into JSON the same way: an unquoted date is a string."""
    path = tmp_path / "tq.yaml"
    path.write_text(taskqueue_yaml(manifest, "{since: 2024-01-01}"))
    result = run("render", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert '{"since":"2024-01-01"}' in result.stdout


def test_merge_keys_may_be_overridden(manifest, tmp_path):
    path = tmp_path / "tq.yaml"
    path.write_text(taskqueue_yaml(manifest, "{<<: {x: 1, y: 2}, x: 3}"))
    result = run("render", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert '{"x":3,"y":2}' in result.stdout


def test_many_documents_of_other_kinds_and_empty_ones(manifest, tmp_path):
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    documents = [None, "just a string", [1, 2], other, manifest, None, 42]
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    result = run("validate", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr


def test_documents_of_other_kinds_only(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "ConfigMap"}, "text", [1]]))
    assert run("validate", str(path)).stdout.strip() == "0 TaskQueue(s) valid"
    result = run("render", "-f", str(path))
    assert result.returncode == UNREADABLE
    assert result.stderr.strip() == f"kube-taskqueue: error: {path}: no TaskQueue found"


def test_a_document_of_our_group_that_is_no_taskqueue(tmp_path):
    path = tmp_path / "queue.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "taskqueue.dev/v1alpha1", "kind": "Queue"}))
    result = run("validate", str(path))
    assert result.returncode == INVALID
    assert result.stderr.splitlines() == [
        f"{path}: taskqueue.dev/v1alpha1 has no kind 'Queue' (its kinds are TaskQueue and TaskQueuePolicy); the "
        "API server would refuse it",
        "1 problem(s) found",
    ]


@pytest.mark.parametrize(
    "metadata",
    [None, [], {"name": None}, {"name": {"a": 1}}, {"name": 7, "namespace": ["x"]}],
)
def test_malformed_metadata_is_a_problem_not_a_crash(manifest, tmp_path, metadata):
    manifest["metadata"] = metadata
    path = tmp_path / "tq.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = run("validate", str(path))
    assert result.returncode == INVALID, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].endswith("problem(s) found")


def test_a_large_readable_file_stays_within_the_memory_limit(manifest, tmp_path):
    """Many TaskQueue-free documents near a megabyte each: read, skipped, no growth."""
    big = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v" * 1_000_000}}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump_all([big] * 4 + [manifest]))
    result = run("validate", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr


def test_json_and_yaml_read_the_same(manifest, tmp_path):
    (tmp_path / "tq.json").write_text(json.dumps(manifest))
    result = run("validate", str(tmp_path / "tq.json"))
    assert result.returncode == 0, result.stderr
