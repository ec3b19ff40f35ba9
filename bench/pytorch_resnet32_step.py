#!/usr/bin/env python3
"""Dev-only comparison: one CIFAR ResNet-32 training step in PyTorch (Debian python3-torch 1.13,
oneDNN convolutions), the same network and step as bench/resnet32_step.bench.mjs.

Network: conv3x3(3->16)+BN+ReLU; 3 stages x 5 BasicBlocks (widths 16/32/64, strides 1/2/2), each
conv3x3-BN-ReLU-conv3x3-BN + shortcut (identity, or 1x1 conv stride 2 + BN when the shape
changes), ReLU after the add; global average pool; Linear(64->100).
Step: forward (train mode) + F.cross_entropy + zero_grad(set_to_none=True) + backward + SGD
(lr 0.1, momentum 0.9, nesterov, weight_decay 5e-4) on one fixed batch of random 3x32x32 inputs
with random labels in [0, 100). Warm-up, then median over --steps steps, for NCHW and for
channels_last (model and input converted with memory_format=torch.channels_last).

    /usr/bin/python3 bench/pytorch_resnet32_step.py [--threads 2] [--steps 15] [--batch 128] [--formats nchw,cl] [--profile]

--profile: after the timed steps of each format, profiles 3 more steps with torch.profiler (CPU)
and prints the ops with the largest self CPU time per step (for comparison with the op profile of
bench/resnet32_step.bench.mjs --profile).

(`python3` on PATH may be a pyenv without torch; use /usr/bin/python3.)
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._stage(16, 1, blocks_per_stage)
        self.layer2 = self._stage(32, 2, blocks_per_stage)
        self.layer3 = self._stage(64, 2, blocks_per_stage)
        self.fc = nn.Linear(64, num_classes)

    def _stage(self, planes, stride, blocks):
        layers = []
        for i in range(blocks):
            layers.append(BasicBlock(self.in_planes, planes, stride if i == 0 else 1))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def run(fmt, args):
    torch.manual_seed(0)
    model = CifarResNet(5, 100)
    model.train()
    x = torch.randn(args.batch, 3, 32, 32)
    labels = torch.randint(0, 100, (args.batch,))
    if fmt == "cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step():
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - start) * 1e3)
    ms = statistics.median(times)
    name = "channels_last" if fmt == "cl" else "NCHW"
    print(f"torch {name}: median {ms:.1f} ms/step (min {min(times):.1f}, max {max(times):.1f}, "
          f"{args.steps} steps after {args.warmup} warm-up) = {args.batch / (ms / 1e3):.0f} images/s; "
          f"loss first {losses[0]:.4f}, last {losses[-1]:.4f}")
    print(f"  all step times ms: {' '.join(f'{t:.1f}' for t in times)}")
    if args.profile:
        profile_steps = 3
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(profile_steps):
                step()
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows) / 1e3 / profile_steps
        print(f"  profile ({name}, mean of {profile_steps} steps, self CPU time, total {total:.1f} ms/step):")
        print("  | op | calls/step | self ms/step |")
        print("  |---|---|---|")
        for e in rows[:args.profile_rows]:
            print(f"  | {e.key} | {e.count / profile_steps:g} | {e.self_cpu_time_total / 1e3 / profile_steps:.2f} |")
    return ms


def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    baseline_rss = rss_mib()
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--formats", default="nchw,cl")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rows", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = sum(p.numel() for p in CifarResNet(5, 100).parameters())
    print(f"torch {torch.__version__} ResNet-32 training step: batch {args.batch}, {torch.get_num_threads()} thread(s), "
          f"{params} parameters")
    for fmt in args.formats.split(","):
        run(fmt, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (whole process, all formats run) {peak:.1f} MiB; RSS after import torch {baseline_rss:.1f} MiB")


if __name__ == "__main__":
    main()
