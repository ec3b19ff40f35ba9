// Finds and loads the native addon, and records which binary was loaded and why.
//
// Order: (1) LMCL_NATIVE_PATH, an explicit path to a .node file; (2) the cmake-js build in
// build-cuda/ (a development build, CUDA-capable when it was built with nvcc); (3) the optional
// per-platform package @lmcl/linux-x64-cuda (the CUDA build, prebuilt: a host with only the
// driver gets GPU code from `npm install`); (4) node-gyp-build, which finds the CPU build that
// `npm install` made in build/ (a git clone), or else the prebuild the package ships
// (prebuilds/linux-x64/, made by `npm pack`'s prepack script). A CUDA package that is installed
// but fails to load is not an error: the CPU binary loads and the reason says why.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './addon.js';

const require = createRequire(import.meta.url);

export interface LoadedAddon {
  addon: NativeAddon;
  /** Absolute path of the loaded .node file (or the folder node-gyp-build searched). */
  path: string;
  /** Why this binary was chosen. */
  reason: string;
}

function findPackageRoot(start: string): string {
  let directory = start;
  for (;;) {
    const manifest = join(directory, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'lmcl') return directory;
      } catch {
        // unreadable manifest: keep walking up
      }
    }
    const parent = dirname(directory);
    if (parent === directory) throw new Error(`lmcl: cannot find the package root above ${start}`);
    directory = parent;
  }
}

let loaded: LoadedAddon | null = null;

export function loadAddon(): LoadedAddon {
  if (loaded) return loaded;
  const found = locateAddon();
  applyEnvironmentSettings(found.addon);
  loaded = found;
  return loaded;
}

/**
 * Engine settings read from the environment once, at load: LMCL_MATMUL_PRECISION (highest |
 * high; see setFloat32MatmulPrecision). A bad value is an Error naming the variable, not ignored.
 */
function applyEnvironmentSettings(addon: NativeAddon): void {
  const precision = process.env.LMCL_MATMUL_PRECISION;
  if (precision === undefined || precision === '') return;
  try {
    addon.setMatmulPrecision(precision);
  } catch (error) {
    throw new Error(`lmcl: LMCL_MATMUL_PRECISION: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function locateAddon(): LoadedAddon {
  const root = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
  const override = process.env.LMCL_NATIVE_PATH;
  if (override) {
    const path = resolve(override);
    if (!existsSync(path)) throw new Error(`lmcl: LMCL_NATIVE_PATH points to a missing file: ${path}`);
    return { addon: require(path) as NativeAddon, path, reason: 'LMCL_NATIVE_PATH override' };
  }
  const cudaBuild = join(root, 'build-cuda', 'Release', 'lmcl.node');
  if (existsSync(cudaBuild)) {
    return { addon: require(cudaBuild) as NativeAddon, path: cudaBuild, reason: 'cmake-js build in build-cuda/' };
  }
  const cudaPackage = loadCudaPackage();
  if (cudaPackage.loaded) return cudaPackage.loaded;
  let nodeGypBuild: (directory: string) => unknown;
  try {
    nodeGypBuild = require('node-gyp-build') as (directory: string) => unknown;
  } catch (error) {
    throw new Error(`lmcl: cannot load node-gyp-build to find the native addon (${String(error)})`);
  }
  let addon: NativeAddon;
  try {
    addon = nodeGypBuild(root) as NativeAddon;
  } catch (error) {
    throw new Error(
      `lmcl: the native addon is not built. Run \`npm install\` (CPU build) or \`npm run build:cuda\` in ${root}. ` +
        `(${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const path = typeof (nodeGypBuild as { resolve?: (d: string) => string }).resolve === 'function'
    ? (nodeGypBuild as unknown as { resolve: (d: string) => string }).resolve(root)
    : join(root, 'build', 'Release', 'lmcl.node');
  // node-gyp-build prefers a local build (build/Release: a git clone's `npm install`) over the
  // prebuilt binary shipped in the package (prebuilds/<platform>-<arch>/).
  const reason = /[\\/]prebuilds[\\/]/.test(path)
    ? `node-gyp-build: the prebuilt CPU binary shipped for ${process.platform}-${process.arch} (no compiler was needed)`
    : 'node-gyp-build: the local CPU build in build/ (compiled by npm install or npm run build:native)';
  return { addon, path, reason: cudaPackage.skipped ? `${reason}; ${cudaPackage.skipped}` : reason };
}

/** The name of the optional CUDA package for this platform (only linux-x64 is built today). */
export const CUDA_PACKAGE = `@lmcl/${process.platform}-${process.arch}-cuda`;

/**
 * Loads the CUDA build from the optional per-platform package when it is installed. Not
 * installed: nothing. Installed but unloadable (another platform's binary, a missing libstdc++
 * symbol): a sentence for the reason of the CPU binary that loads instead.
 */
function loadCudaPackage(): { loaded?: LoadedAddon; skipped?: string } {
  let path: string;
  try {
    path = require(CUDA_PACKAGE) as string;
  } catch {
    return {};
  }
  try {
    const addon = require(path) as NativeAddon;
    return { loaded: { addon, path, reason: `the optional package ${CUDA_PACKAGE} (prebuilt CUDA build)` } };
  } catch (error) {
    return { skipped: `${CUDA_PACKAGE} is installed but did not load (${error instanceof Error ? error.message : String(error)})` };
  }
}
