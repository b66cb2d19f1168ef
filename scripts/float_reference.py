#!/usr/bin/env python3
"""Float reference for the integer engine: a plain numpy llama/qwen2 forward pass over the
GGUF weights dequantized by the PyPI `gguf` package (float32 math, float64 softmax).

Reads JSON from stdin: {"gguf": path, "prompts": [[ids...], ...], "max_new": N, "eos": id}
and prints {"outputs": [[ids...], ...]}: greedy continuations, ties to the lowest id.
Used by `aivm-benches --bin quality` to measure greedy agreement; not part of consensus.
"""
import json, sys
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def load(path):
    r = GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}
    def val(k):
        fld = f[k]
        return fld.parts[fld.data[0]][0] if fld.types[0].name != 'STRING' else bytes(fld.parts[fld.data[0]]).decode()
    arch = val('general.architecture')
    cfg = dict(arch=arch, layers=int(val(f'{arch}.block_count')), d=int(val(f'{arch}.embedding_length')),
               heads=int(val(f'{arch}.attention.head_count')), kvh=int(val(f'{arch}.attention.head_count_kv')),
               theta=float(val(f'{arch}.rope.freq_base')), eps=float(val(f'{arch}.attention.layer_norm_rms_epsilon')))
    w = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        w[t.name] = a.reshape([int(x) for x in reversed(t.shape)]) if a.ndim == 1 and len(t.shape) > 1 else a
    return cfg, w


def rope(x, pos, theta, halves):
    # x: [T, H, hd]
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(pos, inv)  # [T, hd/2]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if halves:
        a, b = x[..., :hd // 2], x[..., hd // 2:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1).astype(np.float32)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def rms(x, g, eps):
    return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)).astype(np.float32) * g


def generate(cfg, w, prompt, max_new, eos):
    d, H, KV = cfg['d'], cfg['heads'], cfg['kvh']
    hd = d // H
    halves = cfg['arch'] == 'qwen2'
    emb = w['token_embd.weight']
    out_w = w.get('output.weight', emb)
    caches = [([], []) for _ in range(cfg['layers'])]
    toks, out, pos0 = list(prompt), [], 0
    for _ in range(max_new):
        T = len(toks)
        pos = np.arange(pos0, pos0 + T)
        x = emb[toks].astype(np.float32)
        for l in range(cfg['layers']):
            p = f'blk.{l}.'
            h = rms(x, w[p + 'attn_norm.weight'], cfg['eps'])
            q = h @ w[p + 'attn_q.weight'].T + w.get(p + 'attn_q.bias', 0)
            k = h @ w[p + 'attn_k.weight'].T + w.get(p + 'attn_k.bias', 0)
            v = h @ w[p + 'attn_v.weight'].T + w.get(p + 'attn_v.bias', 0)
            q = rope(q.reshape(T, H, hd), pos, cfg['theta'], halves)
            k = rope(k.reshape(T, KV, hd), pos, cfg['theta'], halves)
            caches[l][0].append(k); caches[l][1].append(v.reshape(T, KV, hd))
            K = np.concatenate(caches[l][0]); V = np.concatenate(caches[l][1])
            att = np.zeros((T, H, hd), np.float32)
            for hh in range(H):
                g = hh // (H // KV)
                s = (q[:, hh, :] @ K[:, g, :].T).astype(np.float64) / np.sqrt(hd)
                mask = np.arange(K.shape[0])[None, :] > pos[:, None]
                s[mask] = -np.inf
                s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
                att[:, hh, :] = (s @ V[:, g, :]).astype(np.float32)
            x = x + att.reshape(T, d) @ w[p + 'attn_output.weight'].T
            h = rms(x, w[p + 'ffn_norm.weight'], cfg['eps'])
            gt = h @ w[p + 'ffn_gate.weight'].T
            up = h @ w[p + 'ffn_up.weight'].T
            x = x + ((gt / (1 + np.exp(-gt))) * up) @ w[p + 'ffn_down.weight'].T
        logits = rms(x[-1:], w['output_norm.weight'], cfg['eps']) @ out_w.T
        nxt = int(np.argmax(logits[0]))
        if nxt == eos:
            break
        out.append(nxt)
        pos0 += T
        toks = [nxt]
    return out


def main():
    req = json.load(sys.stdin)
    cfg, w = load(req['gguf'])
    outs = [generate(cfg, w, p, req['max_new'], req['eos']) for p in req['prompts']]
    json.dump({'outputs': outs}, sys.stdout)


if __name__ == '__main__':
    main()
