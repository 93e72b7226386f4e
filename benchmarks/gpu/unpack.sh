#!/usr/bin/env bash
# Here, after a GPU run: unpack the results the device tool brought back and render their report.
# Usage: bash benchmarks/gpu/unpack.sh <files_at>/results.tar.gz results/<name>
set -euo pipefail
archive=${1:?usage: unpack.sh ARCHIVE RESULTS_DIR}
dest=${2:?usage: unpack.sh ARCHIVE RESULTS_DIR}
mkdir -p "$dest"
tar -xzf "$archive" -C "$dest"
bnnbench report "$dest" --out "reports/$(basename "$dest").html" --title "bnnbench: $(basename "$dest")"
