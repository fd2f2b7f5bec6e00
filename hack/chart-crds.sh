#!/usr/bin/env bash
# Regenerates charts/swell/crds/ from `swell crds`: one file per CustomResourceDefinition,
# named <group>_<plural>.yaml (keda.sh_scaledobjects.yaml …) as controller-gen names them,
# holding that CRD's document exactly as `swell crds` prints it. Files for CRDs that no
# longer exist are removed. The test `chart::crds_match_swell_crds` fails when they are stale.
# Also writes charts/swell/files/metrics.aws_externalmetrics.yaml from
# `swell crds --cloudwatch-adapter` (the chart's optional k8s-cloudwatch-adapter CRD).
#
#   hack/chart-crds.sh            build and run swell with cargo
#   SWELL=path/to/swell hack/chart-crds.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
dir="$root/charts/swell/crds"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
swell() {
  if [ -n "${SWELL:-}" ]; then "$SWELL" "$@"; else (cd "$root" && cargo run -q -p swell -- "$@"); fi
}
swell crds >"$tmp/all.yaml"
swell crds --cloudwatch-adapter >"$tmp/externalmetrics.yaml"

# Split on the `---` lines; a document's file name comes from its metadata.name
# (`<plural>.<group>`), the first two-space-indented `name:` of the document.
mkdir -p "$tmp/out"
awk -v out="$tmp/out" '
  function flush() {
    if (doc == "") return
    if (name == "") { print "chart-crds: a document without metadata.name" > "/dev/stderr"; exit 1 }
    plural = name; sub(/\..*/, "", plural)
    group = substr(name, length(plural) + 2)
    file = out "/" group "_" plural ".yaml"
    printf "%s", doc > file
    close(file)
    doc = ""; name = ""
  }
  /^---$/ { flush(); doc = $0 "\n"; next }
  {
    doc = doc $0 "\n"
    if (name == "" && $0 ~ /^  name: /) { name = $0; sub(/^  name: */, "", name) }
  }
  END { flush() }
' "$tmp/all.yaml"

n=$(find "$tmp/out" -name '*.yaml' | wc -l)
[ "$n" -gt 0 ] || { echo "chart-crds: swell crds printed no CRD" >&2; exit 1; }
mkdir -p "$dir"
rm -f "$dir"/*.yaml
cp "$tmp/out"/*.yaml "$dir/"
mkdir -p "$root/charts/swell/files"
cp "$tmp/externalmetrics.yaml" "$root/charts/swell/files/metrics.aws_externalmetrics.yaml"
echo "chart-crds: wrote $n CRDs to ${dir#"$root"/} and charts/swell/files/metrics.aws_externalmetrics.yaml" >&2
