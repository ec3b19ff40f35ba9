#!/usr/bin/env bash
# Prepares, on a machine with Node and nvcc (no GPU needed), everything scripts/gpu-check.sh needs
# on a bare GPU host that has neither (docs/gpu-host.md): the CUDA addon (build-cuda/), the
# Node-free parity driver built with CUDA (build-driver/lmcl_driver: sm_90 only and stripped, to fit
# the 64 MiB the device tool carries; the addon keeps the shipped sm_80 + sm_90 + PTX build), the
# compiled JavaScript (dist/), Node itself, and the packages the CLI and the vitest suites load
# (.device/node_modules.tar.xz; TypeScript, sharp and the build tools stay home), all under paths
# git ignores.
#
#   bash scripts/prepare-gpu-check.sh
#
# It ends by printing what to carry to the host (the `device` tool's carry list, 64 MiB in all)
# and the command to run there.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v nvcc >/dev/null 2>&1 || { echo "prepare-gpu-check: nvcc not found (the CUDA toolkit is needed to build the kernels)" >&2; exit 1; }
echo "== compiled JavaScript"
npx tsc -p tsconfig.json
echo "== CUDA addon (npm run build:cuda → build-cuda/)"
npm run build:cuda > /tmp/prepare-gpu-build-cuda.log 2>&1 || { tail -40 /tmp/prepare-gpu-build-cuda.log; exit 1; }
echo "== parity driver with CUDA (build-driver/lmcl_driver)"
cmake -S . -B build-driver -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
cmake --build build-driver --target lmcl_driver -j 2 > /tmp/prepare-gpu-driver.log 2>&1 || { tail -40 /tmp/prepare-gpu-driver.log; exit 1; }
strip build-driver/lmcl_driver
echo "== Node and the packages (.device/)"
rm -rf .device/node_modules
mkdir -p .device
xz -T2 -6 -c "$(command -v node)" > .device/node.xz
excluded=(typescript @img sharp lodash node-gyp cmake-js tar undici @types node-api-headers prebuildify benchmark .cache)
tar -cJf .device/node_modules.tar.xz "${excluded[@]/#/--exclude=node_modules/}" node_modules
du -sh .device build-cuda/Release/lmcl.node build-driver/lmcl_driver dist | sed 's/^/  /'
cat <<'EOF'

Carry to the GPU host (device tool `carry`): [".device", "build-cuda/Release", "build-driver/lmcl_driver", "dist"]
Run there (timeout_s ~60 s above the budget; the script stops itself after GPU_CHECK_BUDGET s, default 420):
  bash scripts/gpu-check.sh $OUT
EOF
