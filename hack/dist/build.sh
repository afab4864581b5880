#!/usr/bin/env bash
# The release artifacts of `make dist`, offline, from a clean clone:
#   kube_taskqueue-<version>-py3-none-any.whl, kube_taskqueue-<version>.tar.gz (twine check --strict)
#   kube-taskqueue-operator-<version>.tgz      the chart (helm lint --strict, helm package)
#   kube-taskqueue-crds-<version>.yaml         TaskQueue + TaskQueuePolicy CRDs for kubectl apply
#   SHA256SUMS                                 over the four above (sha256sum -c SHA256SUMS)
#
# The one version is pyproject.toml's [project] version: the chart's version and appVersion
# must equal it (the chart's default image tag is its appVersion, so the image tag too).
#
# Environment:
#   DIST_DIR     where the artifacts go (default: dist/ of the repository); earlier artifacts
#                of these names there are replaced, other files are left alone.
#   DIST_PYTHON  the Python with build, twine, PyYAML and setuptools>=77 (default: .venv/bin/python
#                of the repository, else python3 on PATH). The build runs in it with
#                --no-isolation, so nothing is downloaded.
#   HELM         the helm binary (default: helm on PATH, else the one hack/envtest/build.sh
#                built, which it builds from the Go module proxy only the first time).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# A relative DIST_DIR is taken from the directory this was started in.
dist_dir="${DIST_DIR:-$root/dist}"
[[ $dist_dir == /* ]] || dist_dir="$PWD/$dist_dir"
cd "$root"

log() { printf '[dist] %s\n' "$*" >&2; }
fail() { printf '[dist] error: %s\n' "$*" >&2; exit 1; }

# (Not PYTHON: the Makefile's PYTHON is the interpreter that creates the venv.)
if [[ -n ${DIST_PYTHON:-} ]]; then
  PYTHON=$DIST_PYTHON
elif [[ -x $root/.venv/bin/python ]]; then
  PYTHON=$root/.venv/bin/python
else
  PYTHON=python3
fi
chart_dir=charts/kube-taskqueue-operator
lint_values=hack/dist/lint-values.yaml

# -- One version: pyproject.toml's, which the chart must carry as version and appVersion. ----
read -r version chart_version app_version < <("$PYTHON" - <<'EOF'
import tomllib, yaml
with open("pyproject.toml", "rb") as f:
    version = tomllib.load(f)["project"]["version"]
with open("charts/kube-taskqueue-operator/Chart.yaml") as f:
    chart = yaml.load(f, Loader=yaml.BaseLoader)  # every scalar a string: 1.10 stays 1.10
print(version, chart.get("version", "-"), chart.get("appVersion", "-"))
EOF
)
[[ -n ${version:-} ]] || fail "could not read the versions of pyproject.toml and Chart.yaml with $PYTHON"
if [[ $chart_version != "$version" || $app_version != "$version" ]]; then
  fail "version mismatch: pyproject.toml [project] version is $version but" \
    "$chart_dir/Chart.yaml has version $chart_version and appVersion $app_version;" \
    "set both to $version (docs/releases/versioning.md, \"Cutting a release\")"
fi
log "version $version (pyproject.toml, Chart.yaml version and appVersion)"

# -- The checked-in CRDs (crds/ and the chart's files/) must be the ones the models generate. ---
# From this tree's sources, not from whatever kube_taskqueue the Python has installed.
if ! PYTHONPATH="$root/processor:$root/operator:$root/dashboard${PYTHONPATH:+:$PYTHONPATH}" \
  "$PYTHON" -m kube_taskqueue.cli crd --check; then
  fail "the checked-in CRDs are stale: run \`make crds\` (kube-taskqueue crd --write) and commit"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/out"
mkdir -p "$out"

if [[ -z ${HELM:-} ]]; then
  if command -v helm > /dev/null; then
    HELM=helm
  elif assets="$(hack/envtest/build.sh helm 2> "$work/helm.log" | tail -n 1)"; then
    HELM="$assets/helm"
  else
    cat "$work/helm.log" >&2
    fail "helm not found on PATH and hack/envtest/build.sh could not build it (set HELM)"
  fi
fi
[[ -x $(command -v "$HELM") ]] || fail "helm not found: $HELM (set HELM, or run make envtest)"

# -- Wheel and sdist, from a copy of the tree: setuptools leaves build/ and *.egg-info where it
# builds, which confuse mypy and imports in the checkout. The wheel is built from the sdist.
log "python -m build (--no-isolation, $("$PYTHON" -c 'import setuptools; print("setuptools", setuptools.__version__)'))"
mkdir "$work/src"
tar -C "$root" -cf - \
  --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build --exclude=./site \
  --exclude=./test-output --exclude=./.hypothesis --exclude='*.egg-info' \
  --exclude=__pycache__ --exclude='.*_cache' --exclude=node_modules . \
  | tar -C "$work/src" -xf -
if ! "$PYTHON" -m build --no-isolation --outdir "$out" "$work/src" > "$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  fail "python -m build failed (with --no-isolation it needs the build requirements of" \
    "pyproject.toml installed in $PYTHON: setuptools>=77 for the SPDX license field)"
fi
wheel="kube_taskqueue-$version-py3-none-any.whl"
sdist="kube_taskqueue-$version.tar.gz"
[[ -f $out/$wheel && -f $out/$sdist ]] || fail "build made $(ls "$out"), not $wheel and $sdist"
"$PYTHON" -m twine --no-color check --strict "$out/$wheel" "$out/$sdist" >&2

# -- The chart: lint (the chart's defaults plus what it requires, then each ci/ values file on
# top), check the default image is the release's, package. --------------------------------
log "helm lint --strict -f $lint_values (and with each of $chart_dir/ci/*.yaml)"
"$HELM" lint --strict "$chart_dir" -f "$lint_values" >&2
for values in "$chart_dir"/ci/*.yaml; do
  "$HELM" lint --strict --quiet "$chart_dir" -f "$lint_values" -f "$values" >&2
done
image="$("$HELM" template release "$chart_dir" -f "$lint_values" \
  --show-only templates/operator-deployment.yaml \
  | "$PYTHON" -c '
import sys, yaml
(deployment,) = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"]
print(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
')"
[[ $image == *":$version" ]] \
  || fail "the chart's default operator image is $image, not tagged with the release $version"
log "default operator image: $image"
"$HELM" package "$chart_dir" --destination "$out" >&2
chart="kube-taskqueue-operator-$version.tgz"
[[ -f $out/$chart ]] || fail "helm package made no $chart"

# -- The CRDs as one file for `kubectl apply --server-side -f`. -----------------------------
crd_files=(crds/taskqueue.dev_taskqueues.yaml crds/taskqueue.dev_taskqueuepolicies.yaml)
found=(crds/*.yaml)
[[ ${#found[@]} -eq ${#crd_files[@]} ]] \
  || fail "crds/ holds ${found[*]}, not just the two CRDs ${crd_files[*]}: add the new one here"
crds="kube-taskqueue-crds-$version.yaml"
{
  printf '# The CustomResourceDefinitions of kube-taskqueue %s (TaskQueue, TaskQueuePolicy),\n' "$version"
  printf '# for clusters that manage CRDs outside the chart (crds.enabled: false):\n'
  printf '#   kubectl apply --server-side -f %s\n' "$crds"
  for file in "${crd_files[@]}"; do
    printf -- '---\n'
    cat "$file"
  done
} > "$out/$crds"

(cd "$out" && sha256sum "$wheel" "$sdist" "$chart" "$crds" > SHA256SUMS)

mkdir -p "$dist_dir"
for name in "$wheel" "$sdist" "$chart" "$crds" SHA256SUMS; do
  rm -f "$dist_dir/$name"
  mv "$out/$name" "$dist_dir/$name"
done

log "release $version: the artifacts"
for name in "$wheel" "$sdist" "$chart" "$crds" SHA256SUMS; do
  printf '%s\t%s\n' "$(du -h "$dist_dir/$name" | cut -f1)" "${dist_dir#"$root"/}/$name"
done
