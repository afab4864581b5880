"""The release artifacts of `make dist` (hack/dist/build.sh): built once into a temporary
DIST_DIR (the checkout's dist/ is left alone), then checked as a user gets them.

The wheel built from the tree (its members, the sdist round trip, the console script with the
operator extra) is tested by test_install.py; here the release's own wheel, installed alone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import yaml
from controlplane import assets_dir

ROOT = Path(__file__).parents[2]
BUILD = ROOT / "hack" / "dist" / "build.sh"
CHART_YAML = Path("charts") / "kube-taskqueue-operator" / "Chart.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: Not copied: anywhere, and at the top only (hack/dist/ is the script's own folder).
UNTRACKED = ("*.egg-info", "__pycache__", ".*_cache")
TOP_UNTRACKED = (".git", ".venv", "dist", "build", "site", "test-output", ".hypothesis")
CRD_NAMES = {"taskqueues.taskqueue.dev", "taskqueuepolicies.taskqueue.dev"}


def build(tree: Path, dist: Path) -> subprocess.CompletedProcess[str]:
    """hack/dist/build.sh of `tree`, with this Python (build, twine, setuptools) and the test
    control plane's helm."""
    env = {
        **os.environ,
        "DIST_PYTHON": sys.executable,
        "HELM": str(assets_dir(("helm",)) / "helm"),
        "DIST_DIR": str(dist),
    }
    return subprocess.run(
        [str(tree / BUILD.relative_to(ROOT))],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=tree,
    )


@dataclass
class Release:
    dist: Path
    result: subprocess.CompletedProcess[str]

    def artifact(self, name: str) -> Path:
        path = self.dist / name
        assert path.is_file(), f"{name} missing; build.sh said:\n{self.result.stderr}"
        return path

    @property
    def wheel(self) -> Path:
        return self.artifact(f"kube_taskqueue-{VERSION}-py3-none-any.whl")

    @property
    def sdist(self) -> Path:
        return self.artifact(f"kube_taskqueue-{VERSION}.tar.gz")

    @property
    def chart(self) -> Path:
        return self.artifact(f"kube-taskqueue-operator-{VERSION}.tgz")

    @property
    def crds(self) -> Path:
        return self.artifact(f"kube-taskqueue-crds-{VERSION}.yaml")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    dist = tmp_path_factory.mktemp("dist")
    result = build(ROOT, dist)
    assert result.returncode == 0, result.stderr
    return Release(dist, result)


def test_every_artifact_with_its_checksum(release):
    artifacts = [release.wheel, release.sdist, release.chart, release.crds]
    sums = release.artifact("SHA256SUMS").read_text().splitlines()
    assert sums == [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}" for path in artifacts
    ]
    assert sorted(path.name for path in release.dist.iterdir()) == sorted(
        [path.name for path in artifacts] + ["SHA256SUMS"]
    )
    # The list build.sh prints at the end names each of them.
    for path in artifacts:
        assert str(path) in release.result.stdout


def test_wheel_and_sdist_pass_twine_check(release):
    assert release.result.stderr.count("PASSED") == 2
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(release.wheel),
            str(release.sdist),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_chart_package_carries_the_release_version(release):
    with tarfile.open(release.chart) as archive:
        chart = yaml.safe_load(archive.extractfile("kube-taskqueue-operator/Chart.yaml"))
        packaged_crds = {
            name: archive.extractfile(f"kube-taskqueue-operator/files/{name}").read().decode()
            for name in ("taskqueue.dev_taskqueues.yaml", "taskqueue.dev_taskqueuepolicies.yaml")
        }
    assert chart["version"] == chart["appVersion"] == VERSION
    for name, text in packaged_crds.items():
        assert text == (ROOT / "crds" / name).read_text()
    assert f"kube-taskqueue-operator:{VERSION}" in release.result.stderr


def test_crds_file_holds_both_crds(release):
    documents = [doc for doc in yaml.safe_load_all(release.crds.read_text()) if doc]
    assert {doc["metadata"]["name"] for doc in documents} == CRD_NAMES
    assert [doc["kind"] for doc in documents] == ["CustomResourceDefinition"] * 2
    checked_in = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*"))]
    assert sorted(documents, key=str) == sorted(checked_in, key=str)


@pytest.mark.kube
def test_crds_file_applies_server_side(release, control_plane):
    applied = control_plane.kubectl_run(
        "apply", "--server-side", "--dry-run=server", "-f", str(release.crds), check=False
    )
    assert applied.returncode == 0, applied.stderr
    for name in CRD_NAMES:
        assert f"customresourcedefinition.apiextensions.k8s.io/{name} serverside-applied" in (
            applied.stdout
        )


def test_release_wheel_installs_alone_with_its_data(release, tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(release.wheel)],
        check=True,
        timeout=600,
    )
    version = subprocess.run(
        [str(env / "bin" / "kube-taskqueue"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kube-taskqueue {VERSION}"
    data = (
        "from importlib.resources import files\n"
        "for package, name in [('kube_taskqueue', 'py.typed'), ('kube_taskqueue', 'examples'),\n"
        "    ('kube_taskqueue_operator', 'py.typed'), ('kube_taskqueue_dashboard', 'py.typed'),\n"
        "    ('kube_taskqueue_dashboard', 'templates/index.html')]:\n"
        "    path = files(package) / name\n"
        "    assert path.is_file() or any(path.iterdir()), path\n"
        "    print(path)\n"
    )
    found = subprocess.run(
        [str(python), "-c", data], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    assert all(line.startswith(str(env)) for line in found.stdout.splitlines())


# -- build.sh refuses a release whose parts disagree ------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources for build.sh to refuse."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        patterns = UNTRACKED + (TOP_UNTRACKED if Path(directory) == ROOT else ())
        return {name for name in names if any(fnmatch.fnmatch(name, p) for p in patterns)}

    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=ignore)
    return copy


@pytest.mark.parametrize("field", ["version", "appVersion"])
def test_chart_version_other_than_the_package_fails(tree, tmp_path, field):
    path = tree / CHART_YAML
    text = path.read_text()
    assert re.search(rf"^{field}: ", text, re.MULTILINE)
    path.write_text(re.sub(rf"^{field}: .*$", f'{field}: "9.9.9"', text, flags=re.MULTILINE))
    result = build(tree, tmp_path / "dist")
    assert result.returncode == 1
    chart = {"version": VERSION, "appVersion": VERSION, field: "9.9.9"}
    assert (
        f"version mismatch: pyproject.toml [project] version is {VERSION} but "
        f"{CHART_YAML} has version {chart['version']} and appVersion {chart['appVersion']}"
    ) in result.stderr
    assert not (tmp_path / "dist").exists()


def test_stale_crds_fail(tree, tmp_path):
    path = tree / "crds" / "taskqueue.dev_taskqueues.yaml"
    path.write_text(path.read_text().replace("shortNames:\n    - tq", "shortNames:\n    - tqx"))
    result = build(tree, tmp_path / "dist")
    assert result.returncode == 1
    assert "the checked-in CRDs are stale" in result.stderr
    assert not (tmp_path / "dist").exists()


# -- CHANGELOG.md: Keep a Changelog 1.1.0 -----------------------------------------------------

SUBSECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
RELEASE = re.compile(r"^## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})$")


def test_changelog_follows_keep_a_changelog():
    lines = (ROOT / "CHANGELOG.md").read_text().splitlines()
    assert lines[0] == "# Changelog"
    sections = [line for line in lines if line.startswith("## ")]
    assert sections[0] == "## [Unreleased]"
    releases = []
    for heading in sections[1:]:
        match = RELEASE.match(heading)
        assert match, f"not `## [X.Y.Z] - YYYY-MM-DD`: {heading}"
        releases.append(
            (tuple(int(part) for part in match.groups()[:3]), date.fromisoformat(match[4]))
        )
    assert releases, "no released version"
    assert releases == sorted(releases, reverse=True), "versions not newest first"
    assert ".".join(map(str, releases[0][0])) == VERSION
    subsections = {line[4:] for line in lines if line.startswith("### ")}
    assert subsections <= SUBSECTIONS, subsections - SUBSECTIONS
    # Every entry sits under a subsection of a version (no loose bullets).
    current = None
    for line in lines:
        if line.startswith("## "):
            current = None
        elif line.startswith("### "):
            current = line
        elif line.startswith("- "):
            assert current, f"entry outside a subsection: {line}"
