#!/usr/bin/env python3
"""Dev-only peer: one ordinary training step of a two-network L-MCL ResNet-32 cohort in PyTorch
(Debian python3-torch 1.13), the step `lmcl profile --arch resnet32 --method lmcl` times
(docs/method.md §2; src/losses/lmcl.ts LmclMethod.loss through src/train/step.ts standardStep).
Row (c) of the CPU-speed comparison, next to bench/pytorch_resnet32_step.py (a) and
bench/pytorch_mcl_step.py (b).

NOT timed: the meta phase (φ's hypergradient: 2 virtual contrastive steps + 1 CE step with double
backward, src/losses/lmcl.ts metaPhase). lmcl runs it every --meta-freq = 50 batches, after that
batch's main update; `lmcl profile` puts it in its first (unrecorded) warm-up step, batch index 0,
so its recorded steps are main updates only, and so are all steps here.

Cohort (src/models/resnet_cifar.ts with auxiliary: true, src/models/blocks.ts): per network, the
ResNet-32 backbone of bench/pytorch_resnet32_step.py (100 classes) and the reference's
Auxiliary_Classifier: block_extractor1 = fresh copies of layer2 + layer3, fed layer1's output
(16×32×32); block_extractor2 = a fresh copy of layer3, fed layer2's output (32×16×16); each GAP →
its own fc (64 → 100). Stages s = [aux1, aux2, backbone] (S = 3), every feature f_{n,s} 64-d.
Init as lmcl: every conv Kaiming-normal (fan_out, relu), BN (1, 0), Linear PyTorch's default, the
auxiliary fc biases 0 (init does not change the cost, only the loss values).
Method modules (src/losses/lmcl.ts LmclCriterion), all at PyTorch's default Linear init:
- 6 Embed heads, one per (network, stage): Linear 64→128, ReLU, Linear 128→128, ℓ2-normalised
  (F.normalize, eps 1e-12, as src/losses/embed.ts);
- 2 stage aggregators: π_n = softmax(Linear 64→3 (ReLU (Linear 192→64 (concat_s f_{n,s})))),
  ō_n = Σ_s π_{n,s} ⊙ o_{n,s} (input not detached);
- φ, the loss-weight network: 6 × Linear 64→128; in this step evaluated under no_grad:
  w_p = sigmoid(cos(φ_{n,s} f_{n,s}, φ_{m,t} f_{m,t})) ∈ R^B for the 18 ordered pairs
  p = ((n,s),(m,t)), n ≠ m, in the order n, m, s, t.
Loss (τ = 0.1, T = 3, α = β = 0.1, γ = λ = 1: the --method lmcl defaults, src/losses/mcl.ts
contrastiveOptions and src/losses/dml.ts --kd-T):

    loss = Σ_n Σ_s CE(o_{n,s}, y) + Σ_n CE(ō_n, y) + Σ_n Σ_m KL_T(o_{n,final} ‖ sg ō_m)
           + α·Σ_p VCL_p + β·Σ_p ICL_p + γ·Σ_p SoftVCL_p + λ·Σ_p SoftICL_p

with z = Embed(f), L_ab = z_a z_bᵀ / τ and, for pair p = (a, b) with weight w = w_p per anchor row:
VCL_p = ℓ(L_aa, w) + ℓ(L_bb, w), ICL_p = ℓ(L_ab, w) + ℓ(L_ba, w), SoftVCL_p = KL_w(L_aa ‖ sg L_bb) +
KL_w(L_bb ‖ sg L_aa), SoftICL_p = KL_w(L_ab ‖ sg L_ba) + KL_w(L_ba ‖ sg L_ab); ℓ the supervised
InfoNCE (self excluded from the positives and the denominator, w_u on row u, divided by the number
of rows that have a positive, = B here), KL_w = (T²/B) Σ_u w_u KL(q_u ‖ p_u) over all B columns,
teacher side detached; KL_T on logits = KL(softmax(sg ō/T) ‖ softmax(o/T)) · T², batchmean.
The four pair sums are computed in one batched pass (default): each similarity block once (the 6
self blocks and the 9 cross-network blocks, L_ba = L_abᵀ), each block's per-row InfoNCE / KL
vectors once, then weighted by the pair weights, as lmcl's fused F.cohortContrastive shares the
blocks and row statistics between pairs (its cost follows the distinct embeddings, not P × 4).
--pair-loop instead evaluates every pair's eight terms separately, like the reference's Python loop
(same values to rounding; more work).
Also as lmcl's step: the 9 mean pair weights per stage pair (a logged part, no grad).
Update: zero_grad, backward, then SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4 (the train
config defaults `lmcl profile` uses) over the main parameter set = both networks (incl. auxiliary
branches) + the 6 Embed heads + the 2 aggregators; φ has its own SGD (same settings, Nesterov),
which lmcl's standard step also steps, and which does nothing here: φ gets no gradient in the main
update (torch's SGD skips a None grad, lmcl's skips a parameter without one).
Data as `lmcl profile` (src/train/profile.ts): one fixed batch of random normal 3×32×32 images,
labels y_i = ⌊i/2⌋ mod 100 in order (two per class; bench/methods_step.bench.mjs shuffles them,
profile does not; the order changes no cost). Warm-up, then the median over --steps, for NCHW and
channels_last (networks and input converted with memory_format=torch.channels_last).

Not mirrored exactly: lmcl's ops are its own (fused BN+add+ReLU, fused contrastive kernel,
softmax etc.); here they are plain torch ops with the same arithmetic. lmcl keeps the loss parts
(CE per net/head, aggregator CE, KD, the four terms) as detached device scalars; only the total is
read here (once per step, .item(); CPU ops are synchronous anyway).
Parameter counts (printed in the header line) equal lmcl's, read off LmclMethod.parameterSets() of
the same cohort: per network 1,281,852 (backbone 472,756 + auxiliary branches 809,096), Embed heads
148,992, aggregators 25,094 → 'main' set 2,737,790; φ ('loss_weight' set) 49,920.

    /usr/bin/python3 bench/pytorch_lmcl_step.py [--threads 2] [--steps 9] [--warmup 3] [--batch-size 128] [--formats nchw,cl] [--pair-loop]

(Preload tcmalloc and unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for a fair peer; see
docs/architecture.md, e.g. `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 /usr/bin/python3 bench/pytorch_lmcl_step.py`.
`python3` on PATH may be a pyenv without torch; use /usr/bin/python3.)
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_resnet32_step import BasicBlock, CifarResNet  # noqa: E402

CLASSES, BLOCKS, STAGES, FEAT_DIM = 100, 5, 3, 128
TAU, T = 0.1, 3.0
VCL_W, ICL_W, SOFT_VCL_W, SOFT_ICL_W = 0.1, 0.1, 1.0, 1.0


def make_stage(in_planes, planes, blocks, stride):
    return nn.Sequential(*[BasicBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1) for i in range(blocks)])


class AuxiliaryResNet(nn.Module):
    """ResNet-32 backbone + the reference's Auxiliary_Classifier; forward → ([f_aux1, f_aux2, f], [o_aux1, o_aux2, o])."""

    def __init__(self, blocks_per_stage=BLOCKS, num_classes=CLASSES):
        super().__init__()
        self.backbone = CifarResNet(blocks_per_stage, num_classes)
        self.block_extractor1 = nn.Sequential(make_stage(16, 32, blocks_per_stage, 2), make_stage(32, 64, blocks_per_stage, 2))
        self.block_extractor2 = nn.Sequential(make_stage(32, 64, blocks_per_stage, 2))
        self.fc1 = nn.Linear(64, num_classes)
        self.fc2 = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        net = self.backbone
        f1 = net.layer1(F.relu(net.bn1(net.conv1(x))))
        f2 = net.layer2(f1)
        feature = F.adaptive_avg_pool2d(net.layer3(f2), 1).flatten(1)
        aux1 = F.adaptive_avg_pool2d(self.block_extractor1(f1), 1).flatten(1)
        aux2 = F.adaptive_avg_pool2d(self.block_extractor2(f2), 1).flatten(1)
        return [aux1, aux2, feature], [self.fc1(aux1), self.fc2(aux2), net.fc(feature)]


class Embed(nn.Module):
    def __init__(self, dim_in=64, dim_out=FEAT_DIM):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(dim_in, dim_out), nn.ReLU(inplace=True), nn.Linear(dim_out, dim_out))

    def forward(self, x):
        return F.normalize(self.head(x), dim=1)


class Aggregator(nn.Module):
    def __init__(self, dim=64, stages=STAGES):
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(stages * dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, stages))

    def forward(self, features, logits):
        pi = F.softmax(self.mix(torch.cat(features, 1)), dim=1)
        return sum(o * pi[:, s:s + 1] for s, o in enumerate(logits))


def count(modules):
    return sum(p.numel() for module in modules for p in module.parameters())


def build_pairs():
    """The 18 ordered pairs ((n,s),(m,t)) as flat indices (n·S + s, m·S + t), in lmcl's order."""
    return [(n * STAGES + s, m * STAGES + t) for n in range(2) for m in range(2) if m != n
            for s in range(STAGES) for t in range(STAGES)]


# ---- the four contrastive totals -------------------------------------------------------------------

def infonce_rows(logits, log_positives_mask, positives):
    # r_u = −Σ_v P_uv/|P_u| · log softmax_{k≠u}(L_u)_v (0 on rows without positives); logits [..., B, B].
    log_probability = F.log_softmax(logits + log_positives_mask, dim=-1)
    return -(log_probability * positives).sum(-1)


def kl_rows(student, teacher):
    # KL(q_u ‖ p_u) per row, p = softmax(L_s/T), q = softmax(sg L_t/T), all columns.
    teacher = teacher.detach() / T
    q_log = F.log_softmax(teacher, dim=-1)
    return (q_log.exp() * (q_log - F.log_softmax(student / T, dim=-1))).sum(-1)


def contrastive_batched(z, w, masks):
    """(VCL, ICL, SoftVCL, SoftICL) summed over the 18 pairs; each block and row statistic once."""
    diagonal, positives, rows = masks
    batch = z[0].shape[0]
    z0, z1 = torch.stack(z[:STAGES]), torch.stack(z[STAGES:])               # [S, B, D] per network
    self0 = torch.bmm(z0, z0.transpose(1, 2)) / TAU                          # L_{(0,s),(0,s)} [S, B, B]
    self1 = torch.bmm(z1, z1.transpose(1, 2)) / TAU
    cross = torch.einsum('sbd,tcd->stbc', z0, z1) / TAU                      # L_{(0,s),(1,t)} [S, S, B, B]
    cross_t = cross.transpose(2, 3)                                          # L_{(1,t),(0,s)}
    # Pair weights on the (s, t) grid of the cross blocks: pair ((0,s),(1,t)) and its mirror
    # ((1,t),(0,s)) have the same four terms, so their weights add.
    W = w[:STAGES * STAGES].view(STAGES, STAGES, batch) + w[STAGES * STAGES:].view(STAGES, STAGES, batch).transpose(0, 1)
    r_self0 = infonce_rows(self0, diagonal, positives)                       # [S, B]
    r_self1 = infonce_rows(self1, diagonal, positives)
    vcl_rows = r_self0[:, None] + r_self1[None, :]                           # [S, S, B]
    icl_rows = infonce_rows(cross, diagonal, positives) + infonce_rows(cross_t, diagonal, positives)
    a, b = self0[:, None].expand(-1, STAGES, -1, -1), self1[None, :].expand(STAGES, -1, -1, -1)
    soft_vcl_rows = kl_rows(a, b) + kl_rows(b, a)
    soft_icl_rows = kl_rows(cross, cross_t) + kl_rows(cross_t, cross)
    nce_scale, kl_scale = (1.0 / rows if rows else 0.0), T * T / batch
    return ((W * vcl_rows).sum() * nce_scale, (W * icl_rows).sum() * nce_scale,
            (W * soft_vcl_rows).sum() * kl_scale, (W * soft_icl_rows).sum() * kl_scale)


def contrastive_pair_loop(z, w, masks, pairs):
    """The same totals, every pair's eight terms evaluated separately (the reference's loop)."""
    diagonal, positives, rows = masks
    batch = z[0].shape[0]
    nce_scale, kl_scale = (1.0 / rows if rows else 0.0), T * T / batch
    totals = [0.0, 0.0, 0.0, 0.0]
    for p, (a, b) in enumerate(pairs):
        L_aa, L_bb, L_ab = z[a] @ z[a].t() / TAU, z[b] @ z[b].t() / TAU, z[a] @ z[b].t() / TAU
        L_ba = z[b] @ z[a].t() / TAU
        nce = lambda L: (infonce_rows(L, diagonal, positives) * w[p]).sum() * nce_scale  # noqa: E731
        kl = lambda s, t: (kl_rows(s, t) * w[p]).sum() * kl_scale  # noqa: E731
        terms = (nce(L_aa) + nce(L_bb), nce(L_ab) + nce(L_ba), kl(L_aa, L_bb) + kl(L_bb, L_aa), kl(L_ab, L_ba) + kl(L_ba, L_ab))
        totals = [total + term for total, term in zip(totals, terms)]
    return tuple(totals)


def distill_kl(student, teacher):
    return F.kl_div(F.log_softmax(student / T, dim=1), F.softmax(teacher.detach() / T, dim=1), reduction='batchmean') * T * T


def infonce_masks(y):
    same = y[:, None] == y[None, :]
    not_self = ~torch.eye(len(y), dtype=torch.bool)
    positives = (same & not_self).float()
    counts = positives.sum(1, keepdim=True)
    rows = int((counts > 0).sum())
    diagonal = torch.zeros(len(y), len(y)).masked_fill(~not_self, -1e30)
    return diagonal, positives / counts.clamp(min=1), rows


def build(fmt, batch_size):
    torch.manual_seed(0)
    nets = [AuxiliaryResNet() for _ in range(2)]
    embeds = [Embed() for _ in range(2 * STAGES)]
    aggregators = [Aggregator() for _ in range(2)]
    phi = [nn.Linear(64, FEAT_DIM) for _ in range(2 * STAGES)]
    x = torch.randn(batch_size, 3, 32, 32)
    y = torch.arange(batch_size) // 2 % CLASSES
    if fmt == 'cl':
        nets = [net.to(memory_format=torch.channels_last) for net in nets]
        x = x.contiguous(memory_format=torch.channels_last)
    for module in nets + embeds + aggregators + phi:
        module.train()
    return nets, embeds, aggregators, phi, x, y


def run(fmt, args):
    nets, embeds, aggregators, phi, x, y = build(fmt, args.batch_size)
    main_params = [p for module in nets + embeds + aggregators for p in module.parameters()]
    phi_params = [p for module in phi for p in module.parameters()]
    optimizers = [torch.optim.SGD(main_params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  torch.optim.SGD(phi_params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)]
    masks = infonce_masks(y)
    pairs = build_pairs()
    loss_parts = {}

    def step():
        outputs = [net(x) for net in nets]
        features = [f for fs, _ in outputs for f in fs]                     # flat n·S + s
        loss = sum(F.cross_entropy(o, y) for _, os_ in outputs for o in os_)
        aggregated = [agg(fs, os_) for agg, (fs, os_) in zip(aggregators, outputs)]
        loss = loss + sum(F.cross_entropy(o, y) for o in aggregated)
        loss = loss + sum(distill_kl(os_[-1], teacher) for _, os_ in outputs for teacher in aggregated)
        with torch.no_grad():
            projected = [layer(f) for layer, f in zip(phi, features)]
            w = torch.stack([torch.sigmoid(F.cosine_similarity(projected[a], projected[b], dim=1)) for a, b in pairs])
        z = [head(f) for head, f in zip(embeds, features)]
        if args.pair_loop:
            vcl, icl, soft_vcl, soft_icl = contrastive_pair_loop(z, w, masks, pairs)
        else:
            vcl, icl, soft_vcl, soft_icl = contrastive_batched(z, w, masks)
        loss = loss + VCL_W * vcl + ICL_W * icl + SOFT_VCL_W * soft_vcl + SOFT_ICL_W * soft_icl
        with torch.no_grad():
            loss_parts['weight'] = w.view(2, STAGES, STAGES, -1).mean((0, 3))   # the 9 'weight/s<s>t<t>' parts
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - start) * 1000)
    ms = statistics.median(times)
    name = 'NCHW' if fmt == 'nchw' else 'channels_last'
    finite = all(math.isfinite(value) for value in losses)
    print(f"torch lmcl {name}: median {ms:.1f} ms/step (min {min(times):.1f}, max {max(times):.1f}, {args.steps} steps after {args.warmup} warm-up) "
          f"= {args.batch_size / ms * 1000:.0f} images/s; loss first {losses[0]:.4f}, last {losses[-1]:.4f}{'' if finite else ' (NOT FINITE)'}")
    print(f"  all step times ms: {' '.join(f'{t:.1f}' for t in times)}")
    return ms


def rss_mib():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def main():
    baseline_rss = rss_mib()
    parser = argparse.ArgumentParser()
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=9)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch-size', '--batch', dest='batch_size', type=int, default=128)
    parser.add_argument('--formats', default='nchw,cl')
    parser.add_argument('--pair-loop', action='store_true', help="evaluate every pair's terms separately (the reference's loop)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, embeds, aggregators, phi = AuxiliaryResNet(), [Embed()], [Aggregator()], [nn.Linear(64, FEAT_DIM)]
    backbone, per_net = count([net.backbone]), count([net])
    embed, aggregator, loss_weight = 2 * STAGES * count(embeds), 2 * count(aggregators), 2 * STAGES * count(phi)
    optimized = 2 * per_net + embed + aggregator
    print(f"torch {torch.__version__} two-network L-MCL ResNet-32 step (S = {STAGES} stages, 18 stage pairs, "
          f"{'per-pair loop' if args.pair_loop else 'batched pair terms'}): batch {args.batch_size}, {torch.get_num_threads()} thread(s)")
    print(f"  parameters: per network {per_net} (backbone {backbone} + auxiliary branches {per_net - backbone}), "
          f"Embed heads {embed}, aggregators {aggregator} → main SGD {optimized}; φ (no grad in this step) {loss_weight}; "
          f"all {optimized + loss_weight}")
    for fmt in args.formats.split(','):
        run(fmt, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (whole process, all formats run) {peak:.1f} MiB; RSS after import torch {baseline_rss:.1f} MiB")


if __name__ == '__main__':
    main()
