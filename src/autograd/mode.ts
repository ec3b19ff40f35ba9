// Gradient-recording mode: inside noGrad(fn) ops do not build a graph (like torch.no_grad()).
let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Runs fn without recording operations for autograd. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with recording enabled (inside a noGrad scope, too). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
