#!/usr/bin/env python3
"""Where the int8 model's quality goes: teacher-forced top-1 agreement with the float model
when only some of the engine's quantization steps are simulated (fake-quantized in float).

Not the engine: a numpy float32 llama forward (`float_reference.py`) with per-row int8
rounding inserted where `spec/inference.md` quantizes. Letters select the steps:
  W  weights, int8 per row (embedding per 32)     A  all activation rows feeding a GEMM
  a  attention-norm output (q/k/v input)          o  attention output (o input)
  f  feed-forward-norm output (gate/up input)     d  SwiGLU output (down input)
  l  final-norm output (logits input)             K  q and k per (token, head)
  V  v per (token, head)                          P  softmax probabilities per row
`G` rounds weights to int8 per 32-element group instead, `B` to bfloat16 (for scale),
and `S` applies conversion v2's smoothing (alpha 1/2 at a and f; stats from this float model
on the calibration prompts). Conversion v3 (`aivm/model/src/convert/`), approximated with
statistics from the rotated float model: `R` turns the residual stream by a random
orthogonal matrix after folding the norm gains (`H`: a randomized Hadamard instead), `D`
smooths the down input (folded into the up rows), `Q` rounds q/k/v/gate/up by GPTQ
(with `W`), `O` also o and the output projection, `Z` turns v and o per head.
Lower-case letters leave weights out of `W`, for a profile: `x` the output projection, `e`
the embedding, `i` the readers (q/k/v/gate/up), `w` o and down.
What `aivm model convert` writes is approximated by `RWAKVPQD`.

Usage: python3 scripts/quant_ablation.py [--home ~/.cache/aivm] WAKVP W A a f d l K P WAKVPS
Prompts: the 32 of `benches/src/bin/infer.rs` (tokenized by `aivm model run --json`), 64
positions each, as `infer --quality` scores them. Takes ~1 min per variant on 2 cores.
"""
import json, os, re, subprocess, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from float_reference import load, rope, generate, rms

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
AIVM = os.environ.get('AIVM', os.path.join(os.environ.get('CARGO_TARGET_DIR', os.path.join(ROOT, 'target')), 'release', 'aivm'))
POSITIONS = 64


def rust_strings(path, const):
    src = open(path).read()
    body = src[src.index(const):]
    body = body[:body.index('];')]
    return re.findall(r'"((?:[^"\\]|\\.)*)"', body)


def tokenize(texts, tokens=1):
    out = []
    for t in texts:
        j = json.loads(subprocess.run([AIVM, 'model', 'run', '--prompt', t, '--max-tokens', str(tokens), '--json'],
                                      capture_output=True, text=True, check=True).stdout)
        out.append(j['prompt_ids'] + (j['tokens'] if tokens > 1 else []))
    return out


def qrow(x):
    a = np.abs(x).max(axis=-1, keepdims=True)
    s = np.where(a == 0, 1, a / 127.0)
    return (np.clip(np.round(x / s), -127, 127) * s).astype(np.float32)


def forward(cfg, W, toks, opt, stats=None):
    d, H, KV = cfg['d'], cfg['heads'], cfg['kvh']
    hd = d // H
    T = len(toks)
    pos = np.arange(T)

    def act(v, c, key=None):
        if stats is not None and key is not None:
            stats[key] = np.maximum(stats.get(key, 0), np.abs(v).max(0))
            v64 = v.astype(np.float64)
            stats['H' + key] = stats.get('H' + key, 0) + v64.T @ v64
        return qrow(v) if ('A' in opt or c in opt) else v

    x = W['emb'][toks].astype(np.float32)
    for l in range(cfg['layers']):
        p = f'blk.{l}.'
        h = act(rms(x, W[p + 'attn_norm.weight'], cfg['eps']), 'a', p + 'a')
        q = rope((h @ W[p + 'attn_q.weight'].T).reshape(T, H, hd), pos, cfg['theta'], cfg['arch'] == 'qwen2')
        k = rope((h @ W[p + 'attn_k.weight'].T).reshape(T, KV, hd), pos, cfg['theta'], cfg['arch'] == 'qwen2')
        v = (h @ W[p + 'attn_v.weight'].T).reshape(T, KV, hd)
        if 'K' in opt:
            q, k = qrow(q), qrow(k)
        if 'V' in opt:
            v = qrow(v)
        att = np.zeros((T, H, hd), np.float32)
        mask = pos[None, :] > pos[:, None]
        for hh in range(H):
            g = hh // (H // KV)
            s = (q[:, hh, :] @ k[:, g, :].T).astype(np.float64) / np.sqrt(hd)
            s[mask] = -np.inf
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            if 'P' in opt:
                s = qrow(s)
            att[:, hh, :] = s @ v[:, g, :]
        x = x + act(att.reshape(T, d), 'o', p + 'o') @ W[p + 'attn_output.weight'].T
        h = act(rms(x, W[p + 'ffn_norm.weight'], cfg['eps']), 'f', p + 'f')
        gt, up = h @ W[p + 'ffn_gate.weight'].T, h @ W[p + 'ffn_up.weight'].T
        x = x + act((gt / (1 + np.exp(-gt))) * up, 'd', p + 'd') @ W[p + 'ffn_down.weight'].T
    return act(rms(x, W['output_norm.weight'], cfg['eps']), 'l', 'l') @ W['out'].T


def weights(cfg, w, opt, stats):
    W = dict(w)
    W['emb'] = w['token_embd.weight']
    W['out'] = w.get('output.weight', w['token_embd.weight'])
    if 'S' in opt:
        for l in range(cfg['layers']):
            p = f'blk.{l}.'
            for point, norm, mats in (('a', 'attn_norm', ['attn_q', 'attn_k', 'attn_v']), ('f', 'ffn_norm', ['ffn_gate', 'ffn_up'])):
                aw = np.max([np.abs(W[p + m + '.weight']).max(0) for m in mats], axis=0)
                ax = stats[p + point]
                s = np.where((ax > 0) & (aw > 0), np.sqrt(ax / np.maximum(aw, 1e-30)), 1.0).clip(1 / 256, 256).astype(np.float32)
                W[p + norm + '.weight'] = W[p + norm + '.weight'] / s
                for m in mats:
                    W[p + m + '.weight'] = W[p + m + '.weight'] * s[None, :]
    if 'R' in opt or 'H' in opt:
        rotate(cfg, W, 'H' in opt)
    group32 = lambda v: qrow(v.reshape(v.shape[0], -1, 32)).reshape(v.shape)
    rounding = {'W': qrow, 'G': group32, 'B': bf16}
    if 'Z' in opt:
        hd = cfg['d'] // cfg['heads']
        rng = np.random.default_rng(2)
        qh, r = np.linalg.qr(rng.standard_normal((hd, hd)))
        for l in range(cfg['layers']):
            p = f'blk.{l}.'
            wv = W[p + 'attn_v.weight'].astype(np.float64)
            for g in range(cfg['kvh']):
                wv[g * hd:(g + 1) * hd] = qh.T @ wv[g * hd:(g + 1) * hd]
            W[p + 'attn_v.weight'] = wv.astype(np.float32)
            wo = W[p + 'attn_output.weight'].astype(np.float64)
            for h in range(cfg['heads']):
                wo[:, h * hd:(h + 1) * hd] = wo[:, h * hd:(h + 1) * hd] @ qh
            W[p + 'attn_output.weight'] = wo.astype(np.float32)
    if 'D' in opt:
        for l in range(cfg['layers']):
            p = f'blk.{l}.'
            aw = np.abs(W[p + 'ffn_down.weight']).max(0)
            ax = stats[p + 'd']
            s = np.where((ax > 0) & (aw > 0), np.sqrt(ax / np.maximum(aw, 1e-30)), 1.0).clip(1 / 256, 256)
            W[p + 'ffn_up.weight'] = (W[p + 'ffn_up.weight'] / s[:, None]).astype(np.float32)
            W[p + 'ffn_down.weight'] = (W[p + 'ffn_down.weight'] * s[None, :]).astype(np.float32)
    if 'Q' in opt:
        for l in range(cfg['layers']):
            p = f'blk.{l}.'
            for point, mats in (('a', ['attn_q', 'attn_k', 'attn_v']), ('f', ['ffn_gate', 'ffn_up'])) + ((('o', ['attn_output']),) if 'O' in opt else ()):
                for m in mats:
                    W[p + m + '.weight'] = gptq(W[p + m + '.weight'], stats['H' + p + point])
        if 'O' in opt:
            W['out'] = gptq(W['out'], stats['Hl'])
    for letter, f in rounding.items():
        if letter == 'W' and 'Q' in opt:
            for k, v in list(W.items()):
                if k.startswith('blk.') and k.endswith('.weight') and v.ndim == 2 and not any(m in k for m in ('q.', 'k.', 'v.', 'gate', 'up')) and not ('O' in opt and 'attn_output' in k):
                    W[k] = f(v)
            if 'O' not in opt:
                W['out'] = f(W['out'])
            W['emb'] = group32(W['emb'])
            continue
        if letter in opt:
            for k, v in list(W.items()):
                if k.startswith('blk.') and k.endswith('.weight') and v.ndim == 2 and not ('i' in opt and any(m in k for m in ('q.', 'k.', 'v.', 'gate', 'up'))) and not ('w' in opt and any(m in k for m in ('output', 'down'))):
                    W[k] = f(v)
            if 'x' not in opt:
                W['out'] = f(W['out'])
            if 'e' not in opt:
                W['emb'] = bf16(W['emb']) if letter == 'B' else group32(W['emb'])
    return W


def hadamard(n):
    """A Hadamard matrix of order n: Sylvester doublings of Paley's order 12 (or of 1)."""
    base = np.ones((1, 1))
    if n % 12 == 0:
        qr = {(i * i) % 11 for i in range(1, 11)}
        chi = lambda a: 0 if a % 11 == 0 else (1 if a % 11 in qr else -1)
        Qm = np.array([[chi(j - i) for j in range(11)] for i in range(11)])
        S = np.zeros((12, 12)); S[0, 1:] = 1; S[1:, 0] = -1; S[1:, 1:] = Qm
        base = S + np.eye(12)
    H = base
    while H.shape[0] < n:
        if n % (2 * H.shape[0]) == 0 and n // H.shape[0] % 2 == 0 and (n // H.shape[0]) & (n // H.shape[0] - 1) == 0:
            H = np.block([[H, H], [H, -H]])
        else:
            H = np.kron(H, base)
    assert H.shape[0] == n and np.allclose(H @ H.T, n * np.eye(n)), n
    return H


def rotate(cfg, W, had=False):
    """Rotate the residual stream by a fixed random orthogonal Q (QuaRot): norm gains folded
    into the GEMMs that read them, readers W·Q, writers Qᵀ·W, embedding E·Q."""
    d = cfg['d']
    rng = np.random.default_rng(1)
    if had:
        Q = hadamard(d) * rng.choice([-1.0, 1.0], d)[:, None] / np.sqrt(d)
    else:
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        Q = (q * np.sign(np.diag(r))[None, :]).astype(np.float64)
    for l in range(cfg['layers']):
        p = f'blk.{l}.'
        for norm, mats in (('attn_norm', ['attn_q', 'attn_k', 'attn_v']), ('ffn_norm', ['ffn_gate', 'ffn_up'])):
            g = W[p + norm + '.weight'].astype(np.float64)
            for m in mats:
                W[p + m + '.weight'] = ((W[p + m + '.weight'] * g[None, :]) @ Q).astype(np.float32)
            W[p + norm + '.weight'] = np.ones(d, np.float32)
        for m in ('attn_output', 'ffn_down'):
            W[p + m + '.weight'] = (Q.T @ W[p + m + '.weight']).astype(np.float32)
    g = W['output_norm.weight'].astype(np.float64)
    W['out'] = ((W['out'] * g[None, :]) @ Q).astype(np.float32)
    W['output_norm.weight'] = np.ones(d, np.float32)
    W['emb'] = (W['emb'] @ Q).astype(np.float32)


def gptq(w, H, damp=0.01):
    """GPTQ (Frantar et al. 2022) with the per-row int8 grid: columns quantized in order, each
    one's error spread over the later columns through the inverse Hessian's Cholesky factor."""
    w = w.astype(np.float64).copy()
    H = H.copy()
    H += damp * np.mean(np.diag(H)) * np.eye(H.shape[0])
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    s = np.abs(w).max(1)
    s = np.where(s == 0, 1, s / 127.0)
    out = np.empty_like(w)
    for j in range(w.shape[1]):
        q = np.clip(np.round(w[:, j] / s), -127, 127) * s
        out[:, j] = q
        e = (w[:, j] - q) / U[j, j]
        w[:, j + 1:] -= np.outer(e, U[j, j + 1:])
    return out.astype(np.float32)


def bf16(v):
    b = v.astype(np.float32).view(np.uint32)
    b = ((b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000).astype(np.uint32)
    return b.view(np.float32)


def main():
    args = sys.argv[1:] or ['WAKVP', 'W', 'A', 'K', 'V', 'P', 'WAKVPS']
    infer = os.path.join(ROOT, 'benches', 'src', 'bin', 'infer.rs')
    texts = rust_strings(infer, 'const PROMPTS') + rust_strings(infer, 'const MORE_PROMPTS')
    calib = rust_strings(os.path.join(ROOT, 'aivm', 'model', 'src', 'convert', 'calibration.rs'), 'CALIBRATION_PROMPTS')
    gguf = os.path.expanduser('~/.cache/aivm/models/SmolLM2-135M-Instruct.Q4_1.gguf')
    cfg, w = load(gguf)
    prompts = tokenize(texts)
    refs = [generate(cfg, w, p, POSITIONS, -1) for p in prompts]
    stats = {}
    if any('S' in a or 'Q' in a or 'D' in a for a in args):
        base = weights(cfg, w, 'R' if any('Q' in a or 'D' in a for a in args) else '', None)
        for toks in tokenize(calib, 64):
            forward(cfg, base, toks, '', stats)
    for opt in args:
        W = weights(cfg, w, opt, stats)
        agree = total = 0
        for p, r in zip(prompts, refs):
            pred = forward(cfg, W, p + r[:-1], opt)[len(p) - 1:].argmax(-1)
            agree += int((pred == np.array(r)).sum())
            total += len(r)
        print(f'{opt:8} {100 * agree / total:6.2f} %', flush=True)


if __name__ == '__main__':
    main()
