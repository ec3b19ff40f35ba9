// Wall-clock timers around every function of the native addon, for the benchmarks' --profile
// modes. The addon object is a plain object: the wrappers replace its functions in this process
// only, and record only while `recording` is on (two hrtime calls per native call, ~0.1 µs each).
//   const timers = installNativeTimers(native());
//   timers.recording = true; …; timers.recording = false;
//   timers.totals: Map<key, { ms, calls }>, key = the function name, binary(<op>) / unary(<op>)
//   split by op name; `onCall(name, args, ms)` (optional) sees every recorded call.
const binaryNames = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'];
const unaryNames = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'relu', 'sigmoid', 'reciprocal', 'square', 'abs', 'tanh', 'sign', 'step'];

export function addTiming(map, key, ms) {
  const entry = map.get(key);
  if (entry) {
    entry.ms += ms;
    entry.calls += 1;
  } else map.set(key, { ms, calls: 1 });
}

export function installNativeTimers(addon, onCall = null) {
  const timers = { recording: false, totals: new Map() };
  for (const name of Object.keys(addon)) {
    const original = addon[name];
    if (typeof original !== 'function') continue;
    addon[name] = function timed(...callArgs) {
      if (!timers.recording) return original.apply(this, callArgs);
      const start = process.hrtime.bigint();
      try {
        return original.apply(this, callArgs);
      } finally {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        let key = name;
        if (name === 'binary') key = `binary(${binaryNames[callArgs[0]] ?? callArgs[0]})`;
        else if (name === 'unary') key = `unary(${unaryNames[callArgs[0]] ?? callArgs[0]})`;
        addTiming(timers.totals, key, ms);
        onCall?.(name, callArgs, ms);
      }
    };
  }
  return timers;
}
