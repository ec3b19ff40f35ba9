#!/usr/bin/env python3
"""Dev-only comparison: PyTorch (Debian python3-torch 1.13, oneDNN) conv2d timings at the same
shapes as bench/conv2d.bench.mjs. NCHW float32, batch 128, torch.set_num_threads(2) by default.
fwd = F.conv2d; fwd+bwd = forward, then backward for input and weight grads (no bias).
flops per pass = 2 * N * Cout * Hout * Wout * (Cin/groups) * kh * kw; fwd+bwd counts 3 passes.
Medians over interleaved rounds after warm-up.
    /usr/bin/python3 bench/pytorch_conv2d.py [--threads 2] [--rounds 7] [--json out.json]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    # name, Cin, H, W, Cout, k, stride, pad, groups (same list as bench/conv2d.bench.mjs)
    ("3->16 32x32 3x3", 3, 32, 32, 16, 3, 1, 1, 1),
    ("16->16 32x32 3x3", 16, 32, 32, 16, 3, 1, 1, 1),
    ("16->32 32x32 3x3 s2", 16, 32, 32, 32, 3, 2, 1, 1),
    ("32->32 16x16 3x3", 32, 16, 16, 32, 3, 1, 1, 1),
    ("32->64 16x16 3x3 s2", 32, 16, 16, 64, 3, 2, 1, 1),
    ("64->64 8x8 3x3", 64, 8, 8, 64, 3, 1, 1, 1),
    ("16->32 1x1 s2", 16, 32, 32, 32, 1, 2, 0, 1),
    ("32->64 1x1 s2", 32, 16, 16, 64, 1, 2, 0, 1),
    ("dw 116 16x16 3x3", 116, 16, 16, 116, 3, 1, 1, 116),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = []
    for name, cin, h, w, cout, k, stride, pad, groups in SHAPES:
        x = torch.randn(args.batch, cin, h, w, requires_grad=True)
        weight = torch.randn(cout, cin // groups, k, k, requires_grad=True)
        with torch.no_grad():
            y = F.conv2d(x, weight, None, stride, pad, 1, groups)
        dy = torch.randn_like(y)
        flops = 2 * y.numel() * (cin // groups) * k * k

        def fwd(x=x, weight=weight, stride=stride, pad=pad, groups=groups):
            with torch.no_grad():
                F.conv2d(x, weight, None, stride, pad, 1, groups)

        def fwd_bwd(x=x, weight=weight, stride=stride, pad=pad, groups=groups, dy=dy):
            x.grad = None
            weight.grad = None
            F.conv2d(x, weight, None, stride, pad, 1, groups).backward(dy)

        cases.append({"name": name, "flops": flops, "fwd": fwd, "fwd_bwd": fwd_bwd, "t_fwd": [], "t_fwd_bwd": []})
    for case in cases:
        for _ in range(2):
            case["fwd_bwd"]()
            case["fwd"]()
    for _ in range(args.rounds):
        for case in cases:
            for op in ("fwd", "fwd_bwd"):
                t0 = time.perf_counter()
                case[op]()
                case["t_" + op].append((time.perf_counter() - t0) * 1e3)
    rows = []
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, medians of {args.rounds} rounds")
    print("shape                  | fwd ms (GFLOP/s) | fwd+bwd ms (GFLOP/s)")
    for case in cases:
        t_fwd = statistics.median(case["t_fwd"])
        t_fb = statistics.median(case["t_fwd_bwd"])
        row = {
            "shape": case["name"], "threads": args.threads, "fwdMs": t_fwd, "fwdBwdMs": t_fb,
            "fwdGflops": case["flops"] / t_fwd / 1e6, "fwdBwdGflops": 3 * case["flops"] / t_fb / 1e6,
        }
        rows.append(row)
        print(f"{case['name']:<22} | {t_fwd:7.2f} ({row['fwdGflops']:3.0f})    | {t_fb:7.2f} ({row['fwdBwdGflops']:3.0f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
