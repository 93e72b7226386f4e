#!/usr/bin/env bash
# Here, before a GPU run: the wheels the GPU machine lacks (.whl) and the data it cannot download
# (.data), both git-ignored; carry them to the machine with the repository (e.g. a device tool's
# carry: [".whl", ".data"]), then run benchmarks/gpu/device_run.sh there.
#
# The GPU machine's image is assumed to hold jax, numpyro, torch, numba, pandas, xarray and scipy
# for Python 3.12 on x86_64 Linux; the wheels below are the rest (versions as measured; override
# with PYMC_VERSION=..., etc.).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.whl
mkdir -p "$dest"
pkgs=(
  "pymc==${PYMC_VERSION:-6.4.0}" "pytensor==${PYTENSOR_VERSION:-3.3.7}" better-optimize
  "cachetools==${CACHETOOLS_VERSION:-6.2.6}"
  "arviz==${ARVIZ_VERSION:-1.3.0}" arviz-base arviz-stats arviz-plots
  "pyro-ppl==${PYRO_VERSION:-1.9.2}" pyro-api
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --platform any -d "$dest" "${pkgs[@]}"

data=${BNNBENCH_DATA:-$HOME/.cache/bnnbench}
[ -f "$data/mnist.pkl.gz" ] || { echo "MNIST is not cached: run 'bnnbench data fetch mnist' first" >&2; exit 1; }
mkdir -p .data/fashion-mnist
cp "$data/mnist.pkl.gz" .data/
cp /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz .data/fashion-mnist/ \
  || echo "Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist): OOD skipped"
du -sh "$dest" .data
