#!/usr/bin/env python3
"""Dev-only check of lmcl's PyTorch interop against real torch (not run by the tests: they never
depend on Python). Needs torch; not the `safetensors` package (a small reader/writer is below).

1. Builds the authors' plain CIFAR ResNet (winycg/L-MCL models/resnet_cifar.py layout, head named
   `classifier`) with one BasicBlock per stage (lmcl's resnet8) for 1x28x28 Fashion-MNIST, with
   random weights and BatchNorm statistics, saves its state dict (float32, num_batches_tracked
   int64) and runs `lmcl eval --weights` on it: the alias table must map classifier.* -> fc.*, and
   top-1 and the mean cross-entropy must match torch's own evaluation of the same test images.
2. With --export FILE (an `lmcl export` of a resnet8 network), loads it into the torch model with
   load_state_dict(strict=True) (fc.* -> classifier.*) and compares the two evaluations again.

Usage: python3 scripts/torch-interop-check.py [--export net.safetensors] [--limit-test 500]
(run from the repository root after `npm run build`).
"""
import argparse
import gzip
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64', torch.int32: 'I32',
          torch.uint8: 'U8', torch.bool: 'BOOL'}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPES.items()}


def save_safetensors(tensors, path, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name, tensor in tensors.items():
        data = tensor.detach().contiguous().cpu().numpy().tobytes() if tensor.dtype != torch.bfloat16 \
            else tensor.detach().contiguous().view(torch.int16).numpy().tobytes()
        header[name] = {'dtype': DTYPES[tensor.dtype], 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    Path(path).write_bytes(struct.pack('<Q', len(text)) + text + b''.join(chunks))


def load_safetensors(path):
    raw = Path(path).read_bytes()
    length = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    metadata = header.pop('__metadata__', {})
    data = raw[8 + length:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry['data_offsets']
        dtype = TORCH_DTYPES[entry['dtype']]
        tensors[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(entry['shape']).clone()
    return tensors, metadata


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ReferenceResNet(nn.Module):
    """resnet_cifar.py's ResNet with one BasicBlock per stage (lmcl's resnet8)."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def bundled_test_split(limit):
    folder = REPO / 'data' / 'fashion-mnist-sample'
    images = gzip.decompress((folder / 't10k-images-idx3-ubyte.gz').read_bytes())
    labels = gzip.decompress((folder / 't10k-labels-idx1-ubyte.gz').read_bytes())
    count, rows, cols = struct.unpack('>III', images[4:16])
    count = min(count, limit)
    pixels = torch.frombuffer(bytearray(images[16:16 + count * rows * cols]), dtype=torch.uint8).reshape(count, 1, rows, cols)
    x = (pixels.float() / 255 - 0.286) / 0.353  # lmcl's fashion-mnist normalisation
    y = torch.frombuffer(bytearray(labels[8:8 + count]), dtype=torch.uint8).long()
    return x, y


def torch_eval(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return 100.0 * (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def lmcl_eval(file, limit):
    command = ['node', str(REPO / 'bin' / 'lmcl.js'), 'eval', '--weights', str(file), '--arch', 'resnet8', '--limit-test', str(limit), '--json']
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return result['networks'][0]['top1'], result['loss'][0], result['renamed']


def compare(what, ours, theirs):
    (top1_a, loss_a), (top1_b, loss_b) = ours, theirs
    # top-1 is a percentage of whole images (torch computes it in float32): equal counts differ by < 1e-3.
    ok = abs(top1_a - top1_b) < 1e-3 and abs(loss_a - loss_b) < 1e-4 * max(1.0, abs(loss_b))
    print(f"{'ok' if ok else 'MISMATCH'} {what}: lmcl top-1 {top1_a:.2f}% loss {loss_a:.6f}; torch top-1 {top1_b:.2f}% loss {loss_b:.6f}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--export', help='an `lmcl export` of a resnet8 network to load into torch')
    parser.add_argument('--limit-test', type=int, default=500)
    args = parser.parse_args()
    x, y = bundled_test_split(args.limit_test)
    ok = True

    torch.manual_seed(0)
    model = ReferenceResNet()
    for module in model.modules():  # non-trivial statistics, so BatchNorm's eval path is exercised
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.num_batches_tracked.fill_(391)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / 'reference-resnet8.safetensors'
        save_safetensors(model.state_dict(), file, {'format': 'pt'})
        top1, loss, renamed = lmcl_eval(file, args.limit_test)
        print(f'lmcl renamed: {renamed}')
        ok &= renamed == [['classifier.weight', 'fc.weight'], ['classifier.bias', 'fc.bias']]
        ok &= compare('torch -> lmcl (reference names)', (top1, loss), torch_eval(model, x, y))

    if args.export:
        tensors, metadata = load_safetensors(args.export)
        print(f'metadata: {metadata}')
        exported = ReferenceResNet()
        exported.load_state_dict({name.replace('fc.', 'classifier.', 1) if name.startswith('fc.') else name: t for name, t in tensors.items()}, strict=True)
        ok &= exported.bn1.num_batches_tracked.dtype == torch.int64
        top1, loss, _ = lmcl_eval(args.export, args.limit_test)
        ok &= compare('lmcl export -> torch', (top1, loss), torch_eval(exported, x, y))
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
