#!/usr/bin/env python3
"""Independent Python reference of the fixed-point algorithms in spec/opcodes.md.

It prints the test vectors that spec/opcodes.md lists and the Rust tests check, so the
vectors come from a second implementation of the written rules, not from the kernels.
Run: python3 spec/reference.py
"""
from fractions import Fraction
import math

ONE = 1 << 30
LN2 = 744261118
LOG2E = 1549082005

def rnd_q30(x: Fraction) -> int:
    return math.floor(x * ONE + Fraction(1, 2))

EXP2 = [math.floor(2 ** (i / 64) * ONE + 0.5) for i in range(64)]
LOG2 = [math.floor(math.log2(1 + j / 64) * ONE + 0.5) for j in range(64)]

def exp2_frac(f):
    i, r = f >> 24, f & ((1 << 24) - 1)
    y = (r * LN2) >> 30
    p = ONE // 2 + ((y * 178956971) >> 30)
    p = ONE + ((y * p) >> 30)
    p = ONE + ((y * p) >> 30)
    return (EXP2[i] * p) >> 30

def exp_neg(x):
    if x <= -(24 << 16):
        return 0
    t = (x * LOG2E) >> 16
    k = t >> 30
    return exp2_frac(t - (k << 30)) >> (-k)

def log2_q30(v):
    e = v.bit_length() - 1
    m = v << (30 - e) if e <= 30 else v >> (e - 30)
    j = (m - ONE) >> 24
    mj = ONE + (j << 24)
    r = ((m - mj) << 30) // mj
    p = 357913941 - ((r * (ONE // 4)) >> 30)
    p = ONE // 2 - ((r * p) >> 30)
    p = ONE - ((r * p) >> 30)
    ln1p = (r * p) >> 30
    return (e << 30) + LOG2[j] + ((ln1p * LOG2E) >> 30)

def div_rhe(n, d):
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q & 1):
        q += 1
    return q

def softmax(row):
    m = max(row)
    e = [exp_neg(x - m) for x in row]
    s = sum(e)
    return [((v << 16) + s // 2) // s for v in e]

def rmsnorm(row, eps=0):
    ms = sum(x * x for x in row) // len(row)
    r = math.isqrt(ms + (eps << 16))
    return [0] * len(row) if r == 0 else [div_rhe(x << 16, r) for x in row]

def kl(p, q):
    acc = 0
    for a, b in zip(p, q):
        if a == 0:
            continue
        acc += a * (log2_q30(a) - log2_q30(b))
    return (acc * LN2) >> 44

if __name__ == "__main__":
    print("softmax([0,1,2,3] Q16) =", softmax([0, 65536, 131072, 196608]))
    print("rmsnorm([1,-2,3,0.5] Q16) =", rmsnorm([65536, -131072, 196608, 32768]))
    print("kl([.1,.2,.3,.4] || uniform) Q32.32 =", kl([6554, 13107, 19661, 26214], [16384] * 4))
