#!/usr/bin/env bash
# Run a bnnbench suite on the GPU machine and pack its results for the trip back.
#
# On the GPU machine, from the repository root, with the git-ignored ".whl" and ".data" carried
# there beside the working tree (prepare them here with `bash benchmarks/gpu/prepare.sh`):
#     bash benchmarks/gpu/device_run.sh SUITE [extra `bnnbench run` arguments...]
# e.g. `bash benchmarks/gpu/device_run.sh full --device gpu --seeds 0 --resume`.
# It installs the carried wheels into .site, points bnnbench at the carried data, prints the
# machine and library versions, runs the suite into .results/<suite>-gpu (resumable: a second call
# with --resume continues after a command time limit; exit 1 when a cell failed or nothing could
# run, e.g. no usable GPU), and writes $OUT/results.tar.gz
# (runs.csv, traces.csv, calibration, per-run summaries; not the large MNIST inference_data.nc).
# Back here: `bash benchmarks/gpu/unpack.sh <files_at>/results.tar.gz results/<suite>_gpu`.
set -uo pipefail
suite=${1:?usage: device_run.sh SUITE [bnnbench run args...]}
shift
python=${PYTHON:-python3}
if [ -d .whl ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target .site .whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export BNNBENCH_DATA=$PWD/.data
[ -d .data/fashion-mnist ] && export BNNBENCH_FASHION_MNIST=$PWD/.data/fashion-mnist
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$python" - <<'PY'
import importlib
for name in ("jax", "numpyro", "torch", "pyro", "pymc", "pytensor", "arviz"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as err:  # report, the suite records unavailable backends itself
        print(name, "MISSING", err)
PY
out_dir=.results/${suite}-gpu
"$python" -m bnnbench.cli run --suite "$suite" --out "$out_dir" --no-progress "$@"
status=$?
mkdir -p "${OUT:-.}"
tar -czf "${OUT:-.}/results.tar.gz" --exclude='mnist_*/inference_data.nc' --exclude=.bnnbench.lock -C "$out_dir" .
ls -la "${OUT:-.}"
exit $status
