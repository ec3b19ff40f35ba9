#!/usr/bin/env bash
# One run on a GPU host answers every CUDA question of the backend issue (docs/gpu-host.md):
#   1. the card, driver and CUDA runtime (nvidia-smi);
#   2. the parity driver: every CUDA kernel against the CPU kernel on fresh random inputs, outputs
#      poisoned, per-op tolerances (build-driver/lmcl_driver; rebuilt here with the host's cmake
#      and nvcc if the carried binary does not run);
#   3. the CUDA addon through the public API: per-op agreement with the CPU and timings against
#      ceilings measured in the same run (bench/cuda_ops.bench.mjs);
#   4. a two-network ResNet-32 MCL training step on the GPU (`lmcl profile --device cuda`) next to
#      PyTorch eager on the same card (bench/pytorch_mcl_step.py --device cuda), batch 128;
#   5. short `lmcl train --device cuda` runs (MCL, and L-MCL with meta phases);
#   then a compact table. Full logs in OUTDIR. Made for hosts with no Node and no network:
#   scripts/prepare-gpu-check.sh builds and collects what this needs (.device/ holds Node and the
#   runtime packages). Each part has its own time limit; the whole run stays under 8 minutes.
#
#   bash scripts/gpu-check.sh [OUTDIR]          (default OUTDIR: gpu-check-out)
set -u
cd "$(dirname "$0")/.."
OUTDIR=${1:-gpu-check-out}
mkdir -p "$OUTDIR"
started=$(date +%s)
declare -a table

row() { table+=("$(printf '%-34s %s' "$1" "$2")"); }
elapsed() { echo $(( $(date +%s) - started )); }

# ---- Node (carried as .device/node.xz when the host has none) --------------------------------
if ! command -v node >/dev/null 2>&1 && [ -f .device/node.xz ]; then
  xz -dc .device/node.xz > /tmp/lmcl-node && chmod +x /tmp/lmcl-node && mkdir -p /tmp/lmcl-bin && mv /tmp/lmcl-node /tmp/lmcl-bin/node
  export PATH=/tmp/lmcl-bin:$PATH
fi
if [ -d .device/node_modules ] && [ ! -d node_modules ]; then ln -s .device/node_modules node_modules; fi
export LMCL_NATIVE_PATH=${LMCL_NATIVE_PATH:-build-cuda/Release/lmcl.node}

# ---- 1. the card ---------------------------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvidia-smi 2>&1 | head -15
} > "$OUTDIR/card.txt"
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
row "card, driver" "${card:-nvidia-smi failed}"

# ---- 2. parity driver ----------------------------------------------------------------------
seed=$(( $(date +%s) % 100000 ))
driver_ran() { grep -q "^lmcl_driver: .*passed" "$OUTDIR/driver.log" 2>/dev/null; }
: > "$OUTDIR/driver.log"
if [ -x build-driver/lmcl_driver ]; then timeout 120 build-driver/lmcl_driver --seed "$seed" > "$OUTDIR/driver.log" 2>&1; fi
if ! driver_ran && command -v cmake >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
  # The carried binary is missing or does not run here (libraries): build it with this host's tools.
  echo "rebuilding the parity driver on this host" > "$OUTDIR/driver-build.log"
  if timeout 240 bash -c 'cmake -S . -B /tmp/lmcl-driver -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/lmcl-driver --target lmcl_driver -j 8' >> "$OUTDIR/driver-build.log" 2>&1; then
    timeout 120 /tmp/lmcl-driver/lmcl_driver --seed "$seed" > "$OUTDIR/driver.log" 2>&1
  fi
fi
summary=$(grep -h "^lmcl_driver: .*passed" "$OUTDIR/driver.log" 2>/dev/null | tail -1)
row "parity driver (seed $seed)" "${summary:-did not run (see driver.log)}"
grep -h "FAIL" "$OUTDIR/driver.log" 2>/dev/null | head -12 | sed 's/^/    /' > "$OUTDIR/driver-failures.txt"

# ---- 3. ops through the API ----------------------------------------------------------------
if command -v node >/dev/null 2>&1; then
  node -e "import('./dist/src/index.js').then((l) => { const i = l.engineInfo(); console.log(i.path, '|', i.reason, '| cudaCompiled', i.cudaCompiled, '| devices', i.cudaDevices, '|', i.cudaStatus); })" > "$OUTDIR/engine.txt" 2>&1
  row "engine" "$(grep -v '^\s*$' "$OUTDIR/engine.txt" | grep -E 'lmcl.node|Error' | head -1 | cut -c1-160)"
  timeout 150 node bench/cuda_ops.bench.mjs --json "$OUTDIR/cuda_ops.json" > "$OUTDIR/cuda_ops.log" 2>&1
  ops_line=$(grep -h '^cuda_ops (' "$OUTDIR/cuda_ops.log" | tail -1)
  row "ops via the API" "${ops_line:-$(tail -1 "$OUTDIR/cuda_ops.log" | cut -c1-140)}"
  row "  ceilings" "$(grep -h '^ceilings' "$OUTDIR/cuda_ops.log" | tail -1 | cut -c11-)"
  row "  conv fwd+bwd / our GEMM" "$(grep -h '^conv fwd+bwd as a share' "$OUTDIR/cuda_ops.log" | tail -1 | sed 's/.*rate: //')"
else
  row "ops via the API" "skipped: no node (run scripts/prepare-gpu-check.sh where Node is, carry .device/)"
fi

# ---- 4. MCL step: lmcl vs PyTorch eager ------------------------------------------------------
if command -v node >/dev/null 2>&1; then
  timeout 120 node bin/lmcl.js profile --device cuda --arch resnet32 --method mcl --steps 10 --warmup 3 --json > "$OUTDIR/mcl_lmcl.json" 2> "$OUTDIR/mcl_lmcl.err"
  lmcl_ms=$(node -e "try { const r = JSON.parse(require('fs').readFileSync('$OUTDIR/mcl_lmcl.json', 'utf8')); console.log(r.stepMs.toFixed(1)); } catch { console.log(''); }")
  row "MCL step lmcl (ms)" "${lmcl_ms:-failed: $(tail -1 "$OUTDIR/mcl_lmcl.err" | cut -c1-120)}"
fi
if command -v python3 >/dev/null 2>&1 && python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 150 python3 bench/pytorch_mcl_step.py --device cuda --steps 10 --formats nchw,cl > "$OUTDIR/mcl_torch.log" 2>&1
  row "MCL step PyTorch eager (ms)" "$(grep -h 'median' "$OUTDIR/mcl_torch.log" | sed 's/ (min.*//' | tr '\n' ';')"
else
  row "MCL step PyTorch eager" "skipped: no PyTorch with CUDA here"
fi

# ---- 5. short training run -------------------------------------------------------------------
if command -v node >/dev/null 2>&1 && [ $(elapsed) -lt 400 ]; then
  # MCL, then L-MCL with a meta phase every 2 batches (auxiliary heads, virtual steps, φ): the whole
  # trainer path on the device (batches made there, checkpoints, evaluation), 1 epoch each.
  for method in mcl lmcl; do
    timeout 90 node bin/lmcl.js train --device cuda --method $method --meta-freq 2 --epochs 1 --train-per-class 30 --out /tmp/lmcl-gpu-runs > "$OUTDIR/train_$method.log" 2>&1
    row "lmcl train --device cuda --method $method" "exit $? — $(grep -v '^\s*$' "$OUTDIR/train_$method.log" | tail -1 | cut -c1-110)"
  done
fi

# ---- the table -------------------------------------------------------------------------------
{
  echo "== gpu-check ($(date -u +%Y-%m-%dT%H:%MZ), $(elapsed) s) =="
  printf '%s\n' "${table[@]}"
  if [ -s "$OUTDIR/driver-failures.txt" ]; then echo "first parity failures:"; cat "$OUTDIR/driver-failures.txt"; fi
  grep -h "FAIL" "$OUTDIR/cuda_ops.log" 2>/dev/null | head -8 | sed 's/^/    /'
} | tee "$OUTDIR/summary.txt"
