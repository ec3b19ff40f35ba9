// Device dispatch in the bindings (native/binding/args.h: floats(), same_device(), dispatch()).
// Every op reads its tensor operands with their device, refuses operands on different devices
// with an Error naming each operand and its device (never a silent copy), and calls lmcl::cpu:: or
// lmcl::cuda:: by device. This runs without a GPU: a zero-byte 'cuda' storage needs no device
// memory (alloc only calls the CUDA allocator for a non-empty block), so zero-element ops reach
// the device check and the CUDA entry point even in a CPU-only build, where the entry point is the
// stub generated from native/include/lmcl/ops.def.
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';

const info = native().info();
const cpu = () => native().alloc('cpu', 0);
const cuda = () => native().alloc('cuda', 0);
// What a lmcl::cuda:: entry point without a kernel says: the CPU-only stub, or (CUDA build) the
// stub of an op whose .cu is not written yet.
const stub = info.cudaCompiled ? /has no CUDA kernel yet/ : /lmcl was built without CUDA/;

describe('device dispatch in the bindings', () => {
  it('a zero-byte cuda storage exists without a GPU (what the tests below rely on)', () => {
    expect(() => native().free(cuda())).not.toThrow();
  });

  it('mixed devices are an Error naming every operand and its device', () => {
    expect(() => native().unary(0, cpu(), cuda(), 0)).toThrow(
      "unary: operands are on different devices (x on 'cpu', out on 'cuda'); move them to one device first",
    );
    expect(() => native().binary(0, cuda(), cpu(), cpu(), [0], [1], [1])).toThrow(
      "binary: operands are on different devices (a on 'cuda', b on 'cpu', out on 'cpu')",
    );
    expect(() => native().softmaxForward(cpu(), cuda(), 0, 4, 1, false)).toThrow(/softmax: operands are on different devices \(x on 'cpu', out on 'cuda'\)/);
    expect(() => native().sumAxes(cuda(), cpu(), [0], [])).toThrow(/sumAxes: operands are on different devices/);
  });

  it('an optional operand that is absent takes no part in the check; one that is given does', () => {
    const args = (buffer: unknown) => [cpu(), cpu(), buffer, 0, 0.1, 0.9, 0, 0, false, false, true] as const;
    expect(() => (native().sgdStep as (...a: unknown[]) => void)(...args(cuda()))).toThrow(
      "sgdStep: operands are on different devices (param on 'cpu', grad on 'cpu', buffer on 'cuda')",
    );
    // momentum 0: the buffer is not read, so null is fine and the op runs on the CPU
    expect(() => native().sgdStep(cpu(), cpu(), null, 0, 0.1, 0, 0, 0, false, false, true)).not.toThrow();
  });

  it('operands all on cuda reach lmcl::cuda:: (a stub until the kernel exists)', () => {
    expect(() => native().unary(0, cuda(), cuda(), 0)).toThrow(stub);
    expect(() => native().softmaxForward(cuda(), cuda(), 0, 4, 1, false)).toThrow(stub);
    expect(() => native().countNonFinite(cuda(), 0)).toThrow(/countNonFinite: .*count_non_finite/);
  });

  it('operands all on cpu still run on the CPU', () => {
    expect(native().countNonFinite(cpu(), 0)).toBe(0);
    expect(() => native().unary(0, cpu(), cpu(), 0)).not.toThrow();
  });
});
