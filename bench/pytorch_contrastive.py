#!/usr/bin/env python3
"""Dev-only PyTorch peer for bench/contrastive.bench.mjs: the contrastive losses composed as a
user (and the MCL / L-MCL reference code) writes them, timed on request so that the Node
benchmark can interleave lmcl and PyTorch in one run.

Protocol: one JSON object per line on stdin, one per line on stdout.
    {"case": "supcon" | "contrastive_kl" | "distill_kl" | "cohort" | "memory_logits" | "memory_infonce",
     "batch": B, "dim": D, "mode": "forward" | "backward", "reps": n, ...case parameters}
    -> {"ms": [t_1, ..., t_n]}  (milliseconds per call; "backward" = forward + backward)
    -> {"error": "..."}         (e.g. out of memory)
    {"quit": true} ends the worker. Inputs are drawn once per distinct case and reused.

Formulas (method.md §0.1, the L-MCL reference's Sup_MCL_Loss_Meta / KLDiv / DistillKL):
    supcon:          L = a @ c.T / tau; log_prob = L - log((exp(L) * (1 - eye)).sum(1));
                     loss = -(w * (mask_pos * log_prob).sum(1) / mask_pos.sum(1))[has_pos].sum() / R
    contrastive_kl:  F.kl_div(log_softmax(Ls / T), softmax(Lt.detach() / T), 'none').sum(1) * w, * T^2 / B
    distill_kl:      the same on logits [B, C]
    cohort:          N = 2, S = 3 -> 18 ordered pairs; per pair four similarity GEMMs (L_aa, L_bb,
                     L_ab, L_ba) and the 8 terms above, as the reference loops do
    memory_*:        torch.index_select(bank, 0, idx).view(B, K, D) then torch.bmm with the query
                     (the MCL ImageNet reference); memory_infonce adds log_softmax and the mean
                     over the positive columns

Run it with tcmalloc preloaded and the OpenMP OpenBLAS (libopenblas0-openmp) with
OPENBLAS_CORETYPE unset; bench/contrastive.bench.mjs starts it that way. Use /usr/bin/python3
(Debian's python3-torch), 2 threads by default (--threads).
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def unit_rows(batch, dim, requires_grad=True):
    x = torch.randn(batch, dim)
    x = x / x.norm(dim=1, keepdim=True)
    return x.requires_grad_(requires_grad)


def two_per_class(batch):
    labels = torch.arange(batch) // 2
    return labels[torch.randperm(batch)]


def supcon(a, c, labels, tau, w):
    logits = a @ c.t() / tau
    batch = labels.shape[0]
    eye = torch.eye(batch)
    mask_pos = (labels[:, None] == labels[None, :]).float() - eye
    denominator = torch.exp(logits) * (1 - eye)
    log_prob = logits - torch.log(denominator.sum(1, keepdim=True))
    positives = mask_pos.sum(1)
    has = positives > 0
    mean_log_prob_pos = (mask_pos * log_prob).sum(1)[has] / positives[has]
    weights = w[has] if w is not None else 1.0
    return -(weights * mean_log_prob_pos).sum() / max(int(has.sum()), 1)


def kl_rows(student_logits, teacher_logits, temperature, w):
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    q = F.softmax(teacher_logits.detach() / temperature, dim=1)
    per_row = F.kl_div(log_p, q, reduction='none').sum(1)
    if w is not None:
        per_row = per_row * w
    return per_row.sum() * temperature * temperature / student_logits.shape[0]


class Cases:
    def __init__(self):
        self.cache = {}

    def inputs(self, request):
        key = json.dumps({k: v for k, v in request.items() if k not in ('mode', 'reps')}, sort_keys=True)
        if key not in self.cache:
            self.cache.clear()  # one case's inputs at a time (the big ones are GiB-sized)
            self.cache[key] = self.make(request)
        return self.cache[key]

    def make(self, r):
        torch.manual_seed(0)
        batch, dim = r['batch'], r['dim']
        name = r['case']
        if name == 'supcon':
            a, c = unit_rows(batch, dim), unit_rows(batch, dim)
            labels = two_per_class(batch)
            return lambda: supcon(a, c, labels, r['temperature'], None), [a, c]
        if name == 'contrastive_kl':
            sa, sc = unit_rows(batch, dim), unit_rows(batch, dim)
            ta, tc = unit_rows(batch, dim, False), unit_rows(batch, dim, False)
            tau, temperature = r['temperature'], r['klTemperature']
            return lambda: kl_rows(sa @ sc.t() / tau, ta @ tc.t() / tau, temperature, None), [sa, sc]
        if name == 'distill_kl':
            s = (torch.randn(batch, dim) * 3).requires_grad_(True)
            t = torch.randn(batch, dim) * 3
            return lambda: kl_rows(s, t, r['temperature'], None), [s]
        if name == 'cohort':
            count = r['count']
            z = [unit_rows(batch, dim) for _ in range(count)]
            labels = two_per_class(batch)
            pairs = r['pairs']
            w = torch.rand(len(pairs), batch) * 0.46 + 0.27
            tau, temperature = r['temperature'], r['klTemperature']

            def loss():
                total = 0.0
                for p, (a, b) in enumerate(pairs):
                    za, zb, wp = z[a], z[b], w[p]
                    l_aa, l_bb = za @ za.t() / tau, zb @ zb.t() / tau
                    l_ab, l_ba = za @ zb.t() / tau, zb @ za.t() / tau
                    total = total + supcon(za, za, labels, tau, wp) + supcon(zb, zb, labels, tau, wp)
                    total = total + supcon(za, zb, labels, tau, wp) + supcon(zb, za, labels, tau, wp)
                    total = total + kl_rows(l_aa, l_bb, temperature, wp) + kl_rows(l_bb, l_aa, temperature, wp)
                    total = total + kl_rows(l_ab, l_ba, temperature, wp) + kl_rows(l_ba, l_ab, temperature, wp)
                return total
            return loss, z
        if name in ('memory_logits', 'memory_infonce'):
            k, bank_rows, positives = r['k'], r['bankRows'], r.get('positives', 2)
            query = unit_rows(batch, dim)
            bank = torch.rand(bank_rows, dim) * 0.306 - 0.153
            index = torch.randint(0, bank_rows, (batch * k,))
            tau = r['temperature']

            def logits():
                keys = torch.index_select(bank, 0, index).view(batch, k, dim)
                return torch.bmm(keys, query.view(batch, dim, 1)).view(batch, k) / tau

            if name == 'memory_logits':
                return lambda: logits().sum(), [query]
            return lambda: -F.log_softmax(logits(), dim=1)[:, :positives].mean(1).mean(), [query]
        raise ValueError(f'unknown case {name}')

    def run(self, request):
        loss_fn, leaves = self.inputs(request)
        times = []
        for _ in range(request.get('reps', 1)):
            for leaf in leaves:
                leaf.grad = None
            start = time.perf_counter()
            if request['mode'] == 'forward':
                with torch.no_grad():
                    loss_fn()
            else:
                loss_fn().backward()
            times.append((time.perf_counter() - start) * 1e3)
        return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = Cases()
    print(json.dumps({'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
                      'blas': 'openblas' if 'openblas' in torch.__config__.show().lower() else 'see torch.__config__'}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get('quit'):
            break
        try:
            print(json.dumps({'ms': cases.run(request)}), flush=True)
        except Exception as error:  # noqa: BLE001 - reported to the caller, e.g. out of memory
            cases.cache.clear()
            print(json.dumps({'error': f'{type(error).__name__}: {error}'}), flush=True)


if __name__ == '__main__':
    main()
