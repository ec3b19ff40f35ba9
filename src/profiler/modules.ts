// Per-module attribution for the profiler: shadows forward() on every module instance of the given
// trees with a timed version (an own property over the class's method), and removes it again.
// Only the trees the caller attaches pay anything, and only the clock reads while the profiler
// records. Times are inclusive and nested (a BasicBlock's time contains its Conv2d's), grouped by
// class name, so the rows do not add up to the step time.
import { performance } from 'node:perf_hooks';
import { profilerFlags, recordModuleForward } from './profiler.js';

/** What this file needs of an nn.Module (structural, so the profiler stays below nn in the layering). */
export interface TimedModule {
  modules(): TimedModule[];
  forward(...inputs: never[]): unknown;
  readonly typeName: string;
}

/** Times every module's forward in `roots` (and their descendants) by class; returns the detach function. */
export function attachModuleTimers(roots: readonly TimedModule[]): () => void {
  const attached: TimedModule[] = [];
  for (const root of roots) {
    for (const module of root.modules()) {
      if (Object.prototype.hasOwnProperty.call(module, 'forward')) continue; // attached already, or an instance forward
      const forward = (module.forward as (...inputs: unknown[]) => unknown).bind(module);
      const name = module.typeName;
      Object.defineProperty(module, 'forward', {
        configurable: true,
        writable: true,
        value: (...inputs: unknown[]): unknown => {
          if (!profilerFlags.recording) return forward(...inputs);
          const begin = performance.now();
          try {
            return forward(...inputs);
          } finally {
            recordModuleForward(name, performance.now() - begin);
          }
        },
      });
      attached.push(module);
    }
  }
  return () => {
    for (const module of attached) delete (module as unknown as { forward?: unknown }).forward;
  };
}
