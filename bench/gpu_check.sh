#!/usr/bin/env bash
# The GPU checks and GPU timings in one run, on a machine with a CUDA device (from the repository root):
#
#   bench/gpu_check.sh [OUTDIR]
#
# 1. tests/test_gpu.py: the CUDA path against the CPU (every attribution method, each modality, RFE, CLI), and
#    batched training against one model at a time on CUDA (tests/test_batched.py -k gpu, bench/bench_batched.py);
# 2. the library tests with CHAOSMINING_DEVICE=cuda, so that 'auto' trains on the GPU everywhere (the page
#    and browser tests, which need Streamlit and Chromium, are left out);
# 3. timings on the GPU: one formula at the paper's default, the Figure 4 cell, vision and audio training and
#    attribution, and the Figure 7 feature-selection run.
#
# Each step has a time limit and its own log in OUTDIR; a step that fails does not stop the others. Where the
# machine has torch but not the rest of requirements.txt, wheels in .whl/ are installed beside it first.
set -u
OUTDIR=${1:-${OUT:-/tmp/chaosmining-gpu-check}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
CHAOSMINING_CACHE=$(mktemp -d)
export CHAOSMINING_CACHE
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/chaosmining-site .whl/*.whl &&
    export PYTHONPATH=/tmp/chaosmining-site
fi

step() { # name limit command...: run with a time limit, keep the log, show its end and the exit status
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "== $name ($(date +%T), limit ${limit} s)"
  timeout "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
  rc=$?
  tail -n "${TAIL:-25}" "$OUTDIR/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, torch.cuda.get_device_name(0), torch.cuda.is_available())'

step gpu_tests 120 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_batched.py -k "gpu"
# batched training of many same-shape MLPs (issue 14): models/s both ways, share of the fp32 bound, Figure 4 estimate
TAIL=12 step bench_batched ${BATCHED_LIMIT:-120} $PY bench/bench_batched.py --device cuda --models 512 --epochs 200 \
  --samples 10000 --unbatched 2
TAIL=60 step bench_small 150 bash -c "
  $PY bench/bench_symbolic.py bound --device cuda --repeats 2 | grep -E 'run |ours_over|median_ours|median_autograd|machine';
  $PY bench/bench_symbolic.py figure4 --device cuda | grep -vE '^  *[0-9.]+,?$';
  $PY bench/bench_vision.py train --device cuda --canvases 224 --steps 5;
  $PY bench/bench_vision.py attribution --device cuda --images 16;
  $PY bench/bench_vision.py attribution --device cuda --images 16 --model resnet18;
  $PY bench/bench_audio.py training --device cuda --reps 5;
  $PY bench/bench_audio.py attribution --device cuda --clips 64"
CHAOSMINING_DEVICE=cuda step suite_on_cuda 150 $PY -m pytest -q -p no:cacheprovider -n 8 --continue-on-collection-errors \
  --ignore=tests/test_gpu.py --ignore-glob='tests/test_browser_*' --ignore-glob='tests/*page*.py' --ignore=tests/test_export.py
TAIL=40 step bench_figure7 ${FIGURE7_LIMIT:-120} $PY bench/bench_rfe.py figure7 --device cuda
echo "logs in $OUTDIR"
