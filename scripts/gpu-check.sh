#!/usr/bin/env bash
# One run on a GPU host answers every CUDA question of the backend issue (docs/gpu-host.md):
#   1. the card, driver and CUDA runtime (nvidia-smi);
#   2. the parity driver: every CUDA kernel against the CPU kernel on fresh random inputs, outputs
#      poisoned, per-op tolerances (build-driver/lmcl_driver; rebuilt here with the host's cmake
#      and nvcc if the carried binary does not run). A failed case is run again alone, in its own
#      process (a kernel fault poisons the CUDA context for every later case), and the first one
#      under compute-sanitizer memcheck;
#   3. the CUDA addon through the public API: per-op agreement with the CPU and timings against
#      ceilings measured in the same run (bench/cuda_ops.bench.mjs), then the vitest suites that
#      have CUDA blocks (test/helpers/devices.ts forEachDevice), run on the device;
#   4. a two-network ResNet-32 MCL training step on the GPU (`lmcl profile --device cuda`) next to
#      PyTorch eager on the same card (bench/pytorch_mcl_step.py --device cuda: its defaults, and
#      --fp32 with TF32 off), batch 128, and cuBLAS's GEMM rate with TF32 off and on as outside
#      ceilings (for our FP32 GEMM and its TF32 path);
#   5. short `lmcl train --device cuda` runs (MCL, and L-MCL with meta phases), and `lmcl eval`
#      of the MCL run on the device and on the CPU;
#   6. where the MCL step's GPU time goes: each kernel's duration under Nsight Compute (ncu), when
#      ncu is there and time is left;
#   then a compact table. Made for hosts with no Node and no network:
#   scripts/prepare-gpu-check.sh builds and collects what this needs (.device/ holds Node and the
#   packages). Each part has its own time limit inside one budget (GPU_CHECK_BUDGET seconds,
#   default 420); full logs go to OUTDIR/gpu-check-logs.tar.gz, re-packed after every part so a
#   run cut off still returns what it did, and the table to OUTDIR/summary.txt (few files: the
#   device tool returns at most eight).
#
#   bash scripts/gpu-check.sh [OUTDIR]          (default OUTDIR: gpu-check-out)
set -u
cd "$(dirname "$0")/.."
OUTDIR=${1:-gpu-check-out}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOGS=$(mktemp -d /tmp/gpu-check-logs.XXXXXX)
started=$(date +%s)
budget=${GPU_CHECK_BUDGET:-420}
declare -a table

row() { table+=("$(printf '%-34s %s' "$1" "$2")"); }
elapsed() { echo $(( $(date +%s) - started )); }
# The time limit for the next part: its own limit, or what is left of the budget, whichever is less.
limit() { local left=$(( budget - $(elapsed) - 5 )); [ "$left" -lt 1 ] && left=1; [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }
save() {
  { echo "== gpu-check ($(date -u +%Y-%m-%dT%H:%MZ), $(elapsed) s of $budget) =="; printf '%s\n' "${table[@]}"; } > "$LOGS/summary.txt"
  cp "$LOGS/summary.txt" "$OUTDIR/summary.txt"
  tar -czf "$OUTDIR/gpu-check-logs.tar.gz" -C "$LOGS" . 2>/dev/null
}

# ---- Node and packages (carried as .device/node.xz and .device/node_modules.tar.xz) ----------
if ! command -v node >/dev/null 2>&1 && [ -f .device/node.xz ]; then
  xz -dc .device/node.xz > /tmp/lmcl-node && chmod +x /tmp/lmcl-node && mkdir -p /tmp/lmcl-bin && mv /tmp/lmcl-node /tmp/lmcl-bin/node
  export PATH=/tmp/lmcl-bin:$PATH
fi
if [ ! -d node_modules ] && [ -f .device/node_modules.tar.xz ]; then tar -xJf .device/node_modules.tar.xz; fi
export LMCL_NATIVE_PATH=${LMCL_NATIVE_PATH:-build-cuda/Release/lmcl.node}

# ---- 1. the card ---------------------------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvidia-smi 2>&1 | head -15
} > "$LOGS/card.txt"
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
row "card, driver" "${card:-nvidia-smi failed}"
save

# ---- 2. parity driver ----------------------------------------------------------------------
seed=$(( $(date +%s) % 100000 ))
driver=build-driver/lmcl_driver
driver_ran() { grep -q "^lmcl_driver: .*passed" "$LOGS/driver.log" 2>/dev/null; }
: > "$LOGS/driver.log"
if [ -x "$driver" ]; then timeout "$(limit 90)" "$driver" --seed "$seed" > "$LOGS/driver.log" 2>&1; fi
if ! driver_ran && command -v cmake >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
  # The carried binary is missing or does not run here (libraries): build it with this host's tools.
  echo "rebuilding the parity driver on this host" > "$LOGS/driver-build.log"
  if timeout "$(limit 200)" bash -c 'cmake -S . -B /tmp/lmcl-driver -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build /tmp/lmcl-driver --target lmcl_driver -j 16' >> "$LOGS/driver-build.log" 2>&1; then
    driver=/tmp/lmcl-driver/lmcl_driver
    timeout "$(limit 90)" "$driver" --seed "$seed" > "$LOGS/driver.log" 2>&1
  fi
fi
summary=$(grep -h "^lmcl_driver: .*passed" "$LOGS/driver.log" 2>/dev/null | tail -1)
row "parity driver (seed $seed)" "${summary:-did not run (see driver.log)}"
grep -h "FAIL" "$LOGS/driver.log" 2>/dev/null | head -12 | sed 's/^/    /' > "$LOGS/driver-failures.txt"
# Each failed CUDA case again, alone in a fresh process: a kernel fault (illegal address) is sticky
# for the whole CUDA context, so in the full run every case after it fails too.
grep -h "^failed case	cuda	" "$LOGS/driver.log" 2>/dev/null | cut -f3 > "$LOGS/driver-failed-cases.txt"
if [ -s "$LOGS/driver-failed-cases.txt" ]; then
  alone_failed=0; alone_passed=0
  while IFS= read -r name; do
    [ $(elapsed) -gt $(( budget / 3 )) ] && { echo "(stopped: budget)" >> "$LOGS/driver-alone.log"; break; }
    echo "== $name" >> "$LOGS/driver-alone.log"
    if timeout 20 "$driver" --seed "$seed" "$name" >> "$LOGS/driver-alone.log" 2>&1; then alone_passed=$((alone_passed + 1)); else alone_failed=$((alone_failed + 1)); echo "$name" >> "$LOGS/driver-alone-failed.txt"; fi
  done < "$LOGS/driver-failed-cases.txt"
  row "  failed cases run alone" "$alone_passed passed, $alone_failed still fail: $(tr '\n' ';' < "$LOGS/driver-alone-failed.txt" 2>/dev/null | cut -c1-120)"
  first=$(head -1 "$LOGS/driver-alone-failed.txt" 2>/dev/null)
  if [ -n "$first" ] && command -v compute-sanitizer >/dev/null 2>&1; then
    timeout "$(limit 45)" compute-sanitizer --tool memcheck --print-limit 20 "$driver" --seed "$seed" "$first" > "$LOGS/driver-memcheck.log" 2>&1
    row "  memcheck of $first" "$(grep -h 'ERROR SUMMARY' "$LOGS/driver-memcheck.log" | tail -1 | cut -c1-100)"
  fi
fi
save

# ---- 3. ops through the API, then the vitest suites with CUDA blocks ------------------------
if command -v node >/dev/null 2>&1; then
  node -e "import('./dist/src/index.js').then((l) => { const i = l.engineInfo(); console.log(i.path, '|', i.reason, '| cudaCompiled', i.cudaCompiled, '| devices', i.cudaDevices, '|', i.cudaStatus); })" > "$LOGS/engine.txt" 2>&1
  row "engine" "$(grep -v '^\s*$' "$LOGS/engine.txt" | grep -E 'lmcl.node|Error' | head -1 | cut -c1-160)"
  timeout "$(limit 120)" node bench/cuda_ops.bench.mjs --json "$LOGS/cuda_ops.json" > "$LOGS/cuda_ops.log" 2>&1
  ops_line=$(grep -h '^cuda_ops (' "$LOGS/cuda_ops.log" | tail -1)
  row "ops via the API" "${ops_line:-$(tail -1 "$LOGS/cuda_ops.log" | cut -c1-140)}"
  row "  ceilings" "$(grep -h '^ceilings' "$LOGS/cuda_ops.log" | tail -1 | cut -c11-)"
  row "  conv fwd+bwd / our GEMM" "$(grep -h '^conv fwd+bwd as a share' "$LOGS/cuda_ops.log" | tail -1 | sed 's/.*rate: //')"
  row "  cohort" "$(grep -h '^cohort:' "$LOGS/cuda_ops.log" | tail -1 | cut -c9-)"
  save
  if [ -f node_modules/vitest/vitest.mjs ]; then
    suites=$(grep -l "forEachDevice\|deviceAvailability" -r test --include='*.test.ts' | sort | tr '\n' ' ')
    timeout "$(limit 90)" node node_modules/vitest/vitest.mjs run $suites > "$LOGS/vitest.log" 2>&1
    row "vitest (CUDA suites), exit $?" "$(sed 's/\x1b\[[0-9;]*m//g' "$LOGS/vitest.log" | grep -E '^ +Tests ' | tail -1 | sed 's/^ *//')"
  else
    row "vitest (CUDA suites)" "skipped: no node_modules/vitest (carry .device/node_modules.tar.xz)"
  fi
else
  row "ops via the API" "skipped: no node (run scripts/prepare-gpu-check.sh where Node is, carry .device/)"
fi
save

# ---- 4. MCL step: lmcl vs PyTorch eager ------------------------------------------------------
if command -v node >/dev/null 2>&1; then
  timeout "$(limit 90)" node bin/lmcl.js profile --device cuda --arch resnet32 --method mcl --steps 10 --warmup 3 --json > "$LOGS/mcl_lmcl.json" 2> "$LOGS/mcl_lmcl.err"
  lmcl_ms=$(node -e "try { const r = JSON.parse(require('fs').readFileSync('$LOGS/mcl_lmcl.json', 'utf8')); console.log(r.stepMs.toFixed(1)); } catch { console.log(''); }")
  row "MCL step lmcl (ms)" "${lmcl_ms:-failed: $(tail -1 "$LOGS/mcl_lmcl.err" | cut -c1-120)}"
  save
fi
if command -v python3 >/dev/null 2>&1 && python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  # PyTorch's defaults (cuDNN convolutions in TF32), then --fp32 (TF32 off: like for like).
  timeout "$(limit 100)" python3 bench/pytorch_mcl_step.py --device cuda --steps 10 --formats nchw,cl > "$LOGS/mcl_torch.log" 2>&1
  row "MCL step PyTorch eager (ms)" "$(grep -h 'median' "$LOGS/mcl_torch.log" | sed 's/ (min.*//' | tr '\n' ';')"
  row "  its TF32 settings" "$(grep -h 'TF32:' "$LOGS/mcl_torch.log" | sed 's/.*TF32: /TF32: /' | head -1)"
  timeout "$(limit 60)" python3 bench/pytorch_mcl_step.py --device cuda --steps 10 --formats nchw,cl --fp32 > "$LOGS/mcl_torch_fp32.log" 2>&1
  row "MCL step PyTorch eager, FP32 (ms)" "$(grep -h 'median' "$LOGS/mcl_torch_fp32.log" | sed 's/ (min.*//' | tr '\n' ';')"
  # Outside ceilings: cuBLAS at 4096³ with TF32 off (for our default FP32 GEMM) and on (for our
  # TF32 path, matmul precision 'high': the "matmul 4096³ TF32" row of cuda_ops).
  timeout "$(limit 40)" python3 -c "
import torch
a, b = torch.randn(4096, 4096, device='cuda'), torch.randn(4096, 4096, device='cuda')
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
for tf32, label in ((False, 'FP32'), (True, 'TF32')):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for _ in range(3): a @ b
    times = []
    for _ in range(9):
        start.record(); a @ b; end.record(); torch.cuda.synchronize(); times.append(start.elapsed_time(end))
    ms = sorted(times)[4]
    print(f'cuBLAS {label} 4096^3: {2 * 4096**3 / ms / 1e6:.0f} GFLOP/s (median of 9, {ms:.3f} ms)')
" > "$LOGS/cublas.log" 2>&1
  row "  cuBLAS FP32 ceiling" "$(grep -h 'cuBLAS FP32' "$LOGS/cublas.log" | tail -1 | cut -c1-100)"
  row "  cuBLAS TF32 ceiling" "$(grep -h 'cuBLAS TF32' "$LOGS/cublas.log" | tail -1 | cut -c1-100)"
  row "  our TF32 GEMM" "$(grep -h 'TF32 (precision high)' "$LOGS/cuda_ops.log" | tail -1 | sed 's/  */ /g' | cut -c1-120)"
else
  row "MCL step PyTorch eager" "skipped: no PyTorch with CUDA here"
fi
save

# ---- 5. short training run -------------------------------------------------------------------
if command -v node >/dev/null 2>&1; then
  # MCL, then L-MCL with a meta phase every 2 batches (auxiliary heads, virtual steps, φ): the whole
  # trainer path on the device (batches made there, checkpoints, evaluation), 1 epoch each.
  for method in mcl lmcl; do
    if [ $(( budget - $(elapsed) )) -lt 30 ]; then row "lmcl train --device cuda --method $method" "skipped: budget spent"; continue; fi
    timeout "$(limit 75)" node bin/lmcl.js train --device cuda --method $method --meta-freq 2 --epochs 1 --train-per-class 30 --out /tmp/lmcl-gpu-runs --name gpu-$method > "$LOGS/train_$method.log" 2>&1
    row "lmcl train --device cuda --method $method" "exit $? — $(grep -v '^\s*$' "$LOGS/train_$method.log" | tail -1 | cut -c1-110)"
    save
  done
  # The MCL run's checkpoint evaluated on the device and on the CPU (top-1 within an image or so).
  if [ -d /tmp/lmcl-gpu-runs/gpu-mcl ] && [ $(( budget - $(elapsed) )) -gt 20 ]; then
    for where in cuda cpu; do
      timeout "$(limit 40)" node bin/lmcl.js eval --device $where --json /tmp/lmcl-gpu-runs/gpu-mcl > "$LOGS/eval_$where.json" 2> "$LOGS/eval_$where.err"
      row "lmcl eval --device $where" "exit $? — top-1 $(node -e "try { const r = JSON.parse(require('fs').readFileSync('$LOGS/eval_$where.json', 'utf8')); console.log(r.networks.map((n) => n.top1.toFixed(2)).join(' / ')); } catch { console.log('(no result)'); }")"
    done
    save
  fi
fi

# ---- 6. where the MCL step's GPU time goes: every kernel's duration under Nsight Compute --------
if command -v node >/dev/null 2>&1 && command -v ncu >/dev/null 2>&1 && [ $(( budget - $(elapsed) )) -gt 60 ]; then
  timeout "$(limit 90)" ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
    node bin/lmcl.js profile --device cuda --arch resnet32 --method mcl --steps 1 --warmup 0 > "$LOGS/ncu_mcl_step.csv" 2> "$LOGS/ncu_mcl_step.err"
  row "ncu per-kernel summary (MCL step)" "exit $?, $(wc -l < "$LOGS/ncu_mcl_step.csv") lines (ncu_mcl_step.csv)"
  save
fi

# ---- the table -------------------------------------------------------------------------------
save
{
  cat "$LOGS/summary.txt"
  if [ -s "$LOGS/driver-failures.txt" ]; then echo "first parity failures:"; cat "$LOGS/driver-failures.txt"; fi
  grep -h "FAIL" "$LOGS/cuda_ops.log" 2>/dev/null | head -8 | sed 's/^/    /'
  grep -h "ERROR\|FAIL\|×\|✗" "$LOGS/vitest.log" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | head -8 | sed 's/^/    /'
} | tee "$OUTDIR/summary.txt"
save_final() { tar -czf "$OUTDIR/gpu-check-logs.tar.gz" -C "$LOGS" . 2>/dev/null; }
save_final
