"""The wheel and sdist as a user installs them: built from the tree, installed into a fresh
virtual environment, and the console script run from there (not from the editable install)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "manifests" / "accounts.yaml"
UNTRACKED = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # A copy of the tree: setuptools leaves build/ and *.egg-info where it builds, and a
    # build/lib copy of the packages in the checkout confuses mypy and imports afterwards.
    tree = tmp_path_factory.mktemp("tree") / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*UNTRACKED))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out), str(tree)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("kube_taskqueue-*.whl")
    (sdist,) = out.glob("kube_taskqueue-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def installed(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel with its operator extra, nothing else."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"{dists['wheel']}[operator]"], check=True, timeout=600)
    return env / "bin"


def test_wheel_holds_both_packages_and_their_data(dists):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    for member in (
        "kube_taskqueue/py.typed",
        "kube_taskqueue/examples/dev.yaml",
        "kube_taskqueue_operator/py.typed",
        "kube_taskqueue_dashboard/py.typed",
        "kube_taskqueue_dashboard/templates/index.html",
        "kube_taskqueue_dashboard/templates/dead_letters.html",
        "kube_taskqueue_operator/resource/models.py",
    ):
        assert member in names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_sdist_builds_the_same_wheel_contents(dists, tmp_path):
    with tarfile.open(dists["sdist"]) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "out"), str(tree)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (rebuilt,) = (tmp_path / "out").glob("*.whl")
    assert sorted(zipfile.ZipFile(rebuilt).namelist()) == sorted(
        zipfile.ZipFile(dists["wheel"]).namelist()
    )


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "kube-taskqueue"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_console_script_from_the_installed_wheel(installed, tmp_path):
    version = run(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "kube-taskqueue 0.1.0"

    valid = run(installed, "validate", str(EXAMPLE), cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert "valid" in valid.stdout

    rendered = run(
        installed, "render", "-f", str(EXAMPLE), "--default-region", "eu-west-1", cwd=tmp_path
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: Deployment" in rendered.stdout

    # The package is imported from the venv, not from this checkout.
    where = subprocess.run(
        [str(installed / "python"), "-c", "import kube_taskqueue; print(kube_taskqueue.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert str(installed.parent) in where.stdout


def test_every_operator_module_imports_with_the_operator_extra_alone(installed, tmp_path):
    # The operator image installs kube-taskqueue[operator] and nothing else: a module that
    # needs an undeclared package (the cluster found `cryptography` missing) fails here, where
    # the test venv's other extras (moto brings cryptography) would hide it.
    script = (
        "import importlib, pkgutil, kube_taskqueue_operator as p\n"
        "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [str(installed / "python"), "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
