#!/usr/bin/env python3
"""Dev-only peer: one training step of a two-network MCL ResNet-32 cohort in PyTorch (Debian
python3-torch 1.13), the step `lmcl profile --arch resnet32 --method mcl` times (docs/method.md §1.1):
two CIFAR ResNet-32 (bench/pytorch_resnet32_step.py's network, 100 classes), an Embed head per
network (Linear 64→128, ReLU, Linear 128→128, ℓ2-normalised), L_nm = z_n z_mᵀ / τ (τ = 0.1), and

    loss = Σ_n CE(o_n, y) + 0.1·VCL + 1·SoftVCL + 0.1·ICL + 1·SoftICL

with VCL = Σ_n ℓ(L_nn), ICL = ℓ(L_01) + ℓ(L_10), SoftVCL = KL(L_00‖sg L_11) + KL(L_11‖sg L_00),
SoftICL = KL(L_01‖sg L_10) + KL(L_10‖sg L_01); ℓ the supervised InfoNCE (self excluded from the
positives and the denominator), KL at temperature T = 3 over all B columns, batchmean · T².
One SGD (lr 0.1, momentum 0.9, Nesterov, wd 5e-4) over both networks and heads. Batch 128 of
random 3×32×32 images, labels two per class (the m-per-class sampler's batches).
Warm-up, then the median over --steps, for NCHW and channels_last.

    /usr/bin/python3 bench/pytorch_mcl_step.py [--threads 2] [--steps 9] [--formats nchw,cl] [--device cuda] [--fp32]

On CUDA the first line says whether TF32 was allowed (PyTorch's defaults: on for cuDNN convolutions,
off for matmul); --fp32 turns it off for both, the like-for-like peer of lmcl's FP32 kernels.

(Preload tcmalloc and unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for a fair peer; see
docs/architecture.md.)
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_resnet32_step import CifarResNet  # noqa: E402

TAU, T = 0.1, 3.0


class Embed(nn.Module):
    def __init__(self, dim_in=64, dim_out=128):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(dim_in, dim_out), nn.ReLU(inplace=True), nn.Linear(dim_out, dim_out))

    def forward(self, x):
        return F.normalize(self.head(x), dim=1)


def features_and_logits(net, x):
    out = F.relu(net.bn1(net.conv1(x)))
    out = net.layer3(net.layer2(net.layer1(out)))
    feature = F.adaptive_avg_pool2d(out, 1).flatten(1)
    return feature, net.fc(feature)


def sup_infonce(logits, positives, not_self):
    # ℓ(L) = −(1/B) Σ_u (1/|P_u|) Σ_v P_uv [L_uv − log Σ_{k≠u} exp L_uk]
    log_denominator = torch.logsumexp(logits.masked_fill(~not_self, float('-inf')), dim=1, keepdim=True)
    log_probability = logits - log_denominator
    count = positives.sum(1).clamp(min=1)
    return -((positives * log_probability).sum(1) / count).mean()


def contrastive_kl(student, teacher):
    p = F.log_softmax(student / T, dim=1)
    q = F.softmax(teacher.detach() / T, dim=1)
    return F.kl_div(p, q, reduction='batchmean') * T * T


def run(fmt, args):
    torch.manual_seed(0)
    device = torch.device(args.device)
    nets = [CifarResNet(5, 100).to(device) for _ in range(2)]
    heads = [Embed().to(device) for _ in range(2)]
    x = torch.randn(args.batch, 3, 32, 32).to(device)
    y = (torch.arange(args.batch) // 2 % 100).to(device)
    if fmt == 'cl':
        nets = [net.to(memory_format=torch.channels_last) for net in nets]
        x = x.contiguous(memory_format=torch.channels_last)
    params = [p for module in nets + heads for p in module.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    same = y[:, None] == y[None, :]
    not_self = ~torch.eye(args.batch, dtype=torch.bool, device=device)
    positives = (same & not_self).float()

    def step():
        outputs = [features_and_logits(net, x) for net in nets]
        z = [head(feature) for head, (feature, _) in zip(heads, outputs)]
        L = [[z[n] @ z[m].t() / TAU for m in range(2)] for n in range(2)]
        loss = sum(F.cross_entropy(logits, y) for _, logits in outputs)
        vcl = sup_infonce(L[0][0], positives, not_self) + sup_infonce(L[1][1], positives, not_self)
        icl = sup_infonce(L[0][1], positives, not_self) + sup_infonce(L[1][0], positives, not_self)
        soft_vcl = contrastive_kl(L[0][0], L[1][1]) + contrastive_kl(L[1][1], L[0][0])
        soft_icl = contrastive_kl(L[0][1], L[1][0]) + contrastive_kl(L[1][0], L[0][1])
        loss = loss + 0.1 * vcl + soft_vcl + 0.1 * icl + soft_icl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    ms = statistics.median(times)
    name = 'NCHW' if fmt == 'nchw' else 'channels_last'
    print(f"torch mcl {name}: median {ms:.1f} ms/step (min {min(times):.1f}, max {max(times):.1f}, {args.steps} steps after 3 warm-up) "
          f"= {args.batch / ms * 1000:.0f} images/s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=9)
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--formats', default='nchw,cl')
    parser.add_argument('--device', default='cpu', help="cpu or cuda (each step ends in loss.item(), a synchronisation)")
    parser.add_argument('--fp32', action='store_true',
                        help="CUDA: turn TF32 off for convolutions too (PyTorch's default lets cuDNN use TF32 tensor cores for "
                             "convolutions, not for matmul; lmcl computes both in FP32 unless told otherwise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fp32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    where = f"{torch.get_num_threads()} thread(s)" if args.device == 'cpu' else (
        f"device {torch.cuda.get_device_name(0)}, TF32: conv {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}")
    print(f"torch {torch.__version__} two-network MCL ResNet-32 step: batch {args.batch}, {where}")
    for fmt in args.formats.split(','):
        run(fmt, args)
    print(f"peak RSS (whole process, all formats run) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == '__main__':
    main()
