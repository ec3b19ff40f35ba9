#!/usr/bin/env bash
# Packs the optional CUDA package @lmcl/linux-x64-cuda (packages/linux-x64-cuda/): builds the
# cmake-js CUDA addon (npm run build:cuda, unless build-cuda/Release/lmcl.node exists), refuses a
# build without CUDA (cmake-js falls back to the CPU stub when nvcc is missing), copies the binary
# into the package and packs it.
#   bash scripts/pack-cuda.sh [DESTINATION]   # prints the tarball's path last (default: the package folder)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
package="$root/packages/linux-x64-cuda"
destination="$(cd "${1:-$package}" && pwd)"
cd "$root"
binary="build-cuda/Release/lmcl.node"
if [ ! -f "$binary" ]; then
  npm run build:cuda >&2
  # A build-cuda/ left behind would take precedence over build/ for every later run here.
  trap 'rm -rf "$root/build-cuda"' EXIT
fi
compiled="$(LMCL_NATIVE_PATH="$binary" node -e "
  import('./dist/src/index.js').then((lmcl) => console.log(lmcl.engineInfo().cudaCompiled ? 'yes' : 'no'));
")"
if [ "$compiled" != yes ]; then
  echo "pack-cuda: $binary was built without CUDA (is nvcc on PATH?); the CUDA package needs the nvcc build" >&2
  exit 1
fi
cp "$binary" "$package/lmcl.node"
cd "$package"
tarball="$(npm pack --pack-destination "$destination" --silent | tail -n 1)"
echo "$destination/$tarball"
