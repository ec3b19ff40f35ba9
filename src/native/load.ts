// Finds and loads the native addon, and records which binary was loaded and why.
//
// Order: (1) LMCL_NATIVE_PATH, an explicit path to a .node file; (2) the cmake-js build in
// build-cuda/ (CUDA-capable when it was built with nvcc); (3) node-gyp-build, which finds the
// CPU build that `npm install` made in build/ (or a prebuild).
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
  const root = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
  const override = process.env.LMCL_NATIVE_PATH;
  if (override) {
    const path = resolve(override);
    if (!existsSync(path)) throw new Error(`lmcl: LMCL_NATIVE_PATH points to a missing file: ${path}`);
    loaded = { addon: require(path) as NativeAddon, path, reason: 'LMCL_NATIVE_PATH override' };
    return loaded;
  }
  const cudaBuild = join(root, 'build-cuda', 'Release', 'lmcl.node');
  if (existsSync(cudaBuild)) {
    loaded = { addon: require(cudaBuild) as NativeAddon, path: cudaBuild, reason: 'cmake-js build in build-cuda/' };
    return loaded;
  }
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
  loaded = { addon, path, reason: 'node-gyp-build (CPU build from npm install)' };
  return loaded;
}
