#!/usr/bin/env bash
# Here, before a GPU run: wheels the device lacks (.whl) and the data it cannot download (.data),
# both git-ignored and carried by the device tool (carry: [".whl", ".data"]).
set -euo pipefail
bash ../shared/device/prepare-wheels.sh
data=${BNNBENCH_DATA:-$HOME/.cache/bnnbench}
mkdir -p .data/fashion-mnist
cp "$data/mnist.pkl.gz" .data/
cp /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz .data/fashion-mnist/ \
  || echo "Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist): OOD skipped"
du -sh .whl .data
