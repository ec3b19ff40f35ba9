#!/usr/bin/env bash
# The install-anywhere check (CI runs it after the tests): packs lmcl exactly as `npm pack` would
# publish it, checks what the tarball holds (the linux-x64 prebuild; no tests, benchmarks or raw
# TypeScript sources), installs it into an empty project with no compiler, no make and no python
# on PATH, and runs `lmcl info` and a one-step train from there. A package whose install needs a
# compiler fails here: node-gyp-build would fall back to node-gyp, which finds no toolchain.
# Then: the public .d.ts files compile in that project without @types/node; a second project
# installs with --ignore-scripts (npm and pnpm are moving to blocking dependency install scripts)
# and, where nvcc is here, beside the optional CUDA package @lmcl/linux-x64-cuda
# (scripts/pack-cuda.sh), which lmcl info must report as the loaded binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== npm pack (prepack builds the prebuild, prepare the TypeScript)"
cd "$root"
tarball="$(npm pack --pack-destination "$work" --silent | tail -n 1)"
listing="$(tar tzf "$work/$tarball")"
# prebuildify moved build/Release/lmcl.node into prebuilds/: put the (same, stripped) binary
# back, so later runs in this checkout keep loading the local build, never a stale prebuild.
if [ ! -f build/Release/lmcl.node ] && [ -f prebuilds/linux-x64/lmcl.node ]; then cp prebuilds/linux-x64/lmcl.node build/Release/lmcl.node; fi
rm -rf prebuilds
fail() { echo "pack-install-check: $*" >&2; exit 1; }
grep -qx 'package/prebuilds/linux-x64/lmcl.node' <<<"$listing" || fail "the tarball has no prebuilds/linux-x64/lmcl.node"
grep -qx 'package/dist/src/index.js' <<<"$listing" || fail "the tarball has no dist/src/index.js"
grep -qx 'package/dist/src/index.d.ts' <<<"$listing" || fail "the tarball has no dist/src/index.d.ts"
for unwanted in 'package/test/' 'package/bench/' 'package/src/' 'package/experiments/' 'package/dist/test/' 'package/build/'; do
  if grep -q "^${unwanted}" <<<"$listing"; then fail "the tarball holds ${unwanted} (see \"files\" in package.json)"; fi
done
echo "tarball $tarball: $(wc -l <<<"$listing") files, $(du -h "$work/$tarball" | cut -f1)"

# A PATH with node and sh (npm runs install scripts with it) and nothing else: no cc, c++, g++,
# make, python3, nvcc.
mkdir -p "$work/bin" "$work/project"
ln -s "$(command -v node)" "$work/bin/node"
ln -s "$(command -v sh)" "$work/bin/sh"
npm_cli="$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js"
[ -f "$npm_cli" ] || fail "cannot find npm-cli.js next to $(command -v npm)"
for tool in cc c++ g++ gcc make python3 python nvcc cmake; do
  if PATH="$work/bin" command -v "$tool" >/dev/null 2>&1; then fail "$tool is still on the hidden PATH"; fi
done

echo "== npm install the tarball into an empty project (no compiler, no python on PATH)"
cd "$work/project"
printf '{ "name": "consumer", "version": "1.0.0", "private": true }\n' > package.json
PATH="$work/bin" node "$npm_cli" install --no-audit --no-fund "$work/$tarball"
[ ! -d node_modules/lmcl/build ] || fail "the install compiled the addon (node_modules/lmcl/build exists): the prebuild was not used"

echo "== lmcl info / a one-step train from the installed package"
info="$(PATH="$work/bin" node node_modules/lmcl/bin/lmcl.js info)"
echo "$info"
grep -q 'prebuilds/linux-x64' <<<"$info" || fail "lmcl info does not report the prebuild"
PATH="$work/bin" node node_modules/lmcl/bin/lmcl.js train --method baseline --arch resnet8 --number-net 1 --epochs 1 \
  --limit-train 32 --batch-size 32 --limit-test 32 --workers 0 --out "$work/runs" --quiet
[ -f "$work/runs"/*/metrics.jsonl ] || fail "the one-step train wrote no metrics.jsonl"

echo "== the public .d.ts files compile without @types/node"
cat > consumer.ts <<'TS'
import * as lmcl from 'lmcl';
const x = lmcl.randn([2, 3]);
export const sum: number = lmcl.F.sum(x).item();
export const info: string = lmcl.engineInfo().simd;
TS
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "strict": true, "noEmit": true, "module": "nodenext", "moduleResolution": "nodenext",
  "target": "es2022", "lib": ["es2022"], "types": [], "skipLibCheck": false }, "files": ["consumer.ts"] }
JSON
[ ! -d node_modules/@types/node ] || fail "@types/node got installed into the consumer project"
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json || fail "the public .d.ts files do not compile without @types/node"

echo "== a second project: npm install --ignore-scripts"
mkdir -p "$work/project-no-scripts" && cd "$work/project-no-scripts"
printf '{ "name": "consumer-no-scripts", "version": "1.0.0", "private": true }\n' > package.json
extra=()
if command -v nvcc >/dev/null 2>&1 && command -v cmake >/dev/null 2>&1; then
  echo "(nvcc found: packing the optional CUDA package too)"
  cuda_tarball="$(bash "$root/scripts/pack-cuda.sh" "$work" | tail -n 1)"
  extra=("$cuda_tarball")
fi
PATH="$work/bin" node "$npm_cli" install --ignore-scripts --no-audit --no-fund "$work/$tarball" "${extra[@]}"
info="$(PATH="$work/bin" node node_modules/lmcl/bin/lmcl.js info)"
echo "$info"
if [ ${#extra[@]} -gt 0 ]; then
  grep -q '@lmcl/linux-x64-cuda' <<<"$info" || fail "lmcl info does not report the installed CUDA package"
else
  grep -q 'prebuilds/linux-x64' <<<"$info" || fail "lmcl info does not report the prebuild (--ignore-scripts)"
fi
PATH="$work/bin" node node_modules/lmcl/bin/lmcl.js train --method baseline --arch resnet8 --number-net 1 --epochs 1 \
  --limit-train 32 --batch-size 32 --limit-test 32 --workers 0 --out "$work/runs-no-scripts" --quiet
[ -f "$work/runs-no-scripts"/*/metrics.jsonl ] || fail "the one-step train (--ignore-scripts) wrote no metrics.jsonl"
echo "pack-install-check: ok"
