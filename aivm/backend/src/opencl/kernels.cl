// AIVM's OpenCL kernels: the integer functions of spec/opcodes.md and spec/inference.md.
//
// Every kernel here must return exactly the CPU backend's bits. There are no floating-point
// operations in this program (contraction is off regardless, as pocl fuses a*b+c by default).
// OpenCL C fixes what C leaves open and these rely on: two's-complement integers, `long` is
// 64 bits, and `>>` of a negative signed value is arithmetic (like Rust's). Sums are exact
// integers, so the order in which work-items reduce them cannot change a result.

#pragma OPENCL FP_CONTRACT OFF

// ---------------------------------------------------------------------------------------------
// int8 GEMM: Y[m×n] = X[m×k] · Wᵀ with W [n×k] row-major (TENSOR_MATMUL passes Bᵀ as W).
// Tiled (GPUs): each 8×8 work-group computes a 32×32 tile of Y, 4×4 outputs per work-item, staging 32-byte
// slices of k through local memory. Sums stay below 2^31 because k ≤ MAX_K (checked on the host).

#define TS 32
#define TK 32
#define WPT 4

__kernel __attribute__((reqd_work_group_size(8, 8, 1)))
void gemm_nt(__global const char* x, __global const char* w, __global int* y,
             const uint m, const uint n, const uint k) {
    __local char xs[TS][TK];
    __local char ws[TS][TK];
    const uint tx = get_local_id(0), ty = get_local_id(1);
    const uint j0 = get_group_id(0) * TS, i0 = get_group_id(1) * TS;
    // Loader role: each of the 64 work-items fetches 16 bytes of one row of each tile.
    const uint lid = ty * 8 + tx;
    const uint lr = lid >> 1, lc = (lid & 1) * 16;
    int acc[WPT][WPT];
    for (int i = 0; i < WPT; i++)
        for (int j = 0; j < WPT; j++) acc[i][j] = 0;

    for (uint k0 = 0; k0 < k; k0 += TK) {
        const uint kk = k0 + lc;
        const uint gi = i0 + lr, gj = j0 + lr;
        if (gi < m && kk + 16 <= k) {
            vstore16(vload16(0, x + (size_t)gi * k + kk), 0, &xs[lr][lc]);
        } else {
            for (uint c = 0; c < 16; c++) xs[lr][lc + c] = (gi < m && kk + c < k) ? x[(size_t)gi * k + kk + c] : 0;
        }
        if (gj < n && kk + 16 <= k) {
            vstore16(vload16(0, w + (size_t)gj * k + kk), 0, &ws[lr][lc]);
        } else {
            for (uint c = 0; c < 16; c++) ws[lr][lc + c] = (gj < n && kk + c < k) ? w[(size_t)gj * k + kk + c] : 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint p = 0; p < TK; p++) {
            int a[WPT], b[WPT];
            for (int i = 0; i < WPT; i++) a[i] = xs[ty * WPT + i][p];
            for (int j = 0; j < WPT; j++) b[j] = ws[tx * WPT + j][p];
            for (int i = 0; i < WPT; i++)
                for (int j = 0; j < WPT; j++) acc[i][j] += a[i] * b[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < WPT; i++) {
        const uint gi = i0 + ty * WPT + i;
        if (gi >= m) break;
        for (int j = 0; j < WPT; j++) {
            const uint gj = j0 + tx * WPT + j;
            if (gj < n) y[(size_t)gi * n + gj] = acc[i][j];
        }
    }
}

// Row-by-column products: one work-item per output, a dot product over k in 16-byte vectors.
// For few-row GEMMs (decode steps, where a 32-row tile would be mostly padding) and for CPU
// drivers such as pocl, whose local memory is ordinary cache and whose barriers are costly
// (measured there: ~7x the tiled kernel's throughput; see BENCHMARKS.md).
__kernel void gemm_nt_rows(__global const char* x, __global const char* w, __global int* y,
                           const uint m, const uint n, const uint k) {
    const uint j = get_global_id(0), i = get_global_id(1);
    if (j >= n || i >= m) return;
    __global const char* xr = x + (size_t)i * k;
    __global const char* wr = w + (size_t)j * k;
    int16 acc = 0;
    uint p = 0;
    for (; p + 16 <= k; p += 16) acc += convert_int16(vload16(0, xr + p)) * convert_int16(vload16(0, wr + p));
    int s = acc.s0 + acc.s1 + acc.s2 + acc.s3 + acc.s4 + acc.s5 + acc.s6 + acc.s7
          + acc.s8 + acc.s9 + acc.sa + acc.sb + acc.sc + acc.sd + acc.se + acc.sf;
    for (; p < k; p++) s += xr[p] * wr[p];
    y[(size_t)i * n + j] = s;
}

// ---------------------------------------------------------------------------------------------
// Rounding helpers (tensor/fixed.rs).

// n / d rounded to nearest, ties to even (d > 0).
long div_round_half_even(long n, long d) {
    long q = n / d, r = n % d;          // C truncates toward zero ...
    if (r < 0) { q -= 1; r += d; }      // ... Euclidean form: 0 <= r < d
    const long r2 = 2 * r;
    if (r2 > d) return q + 1;
    if (r2 == d) return q + (q & 1);
    return q;
}

int saturate_i32(long v) {
    return (int)clamp(v, (long)INT_MIN, (long)INT_MAX);
}

__kernel void quantize(__global const int* x, __global char* out, const long scale, const ulong len) {
    const size_t i = get_global_id(0);
    if (i < len) out[i] = (char)clamp(div_round_half_even((long)x[i], scale), -127L, 127L);
}

// |x| ≤ 2^31 and 0 < scale < 2^31, so the product fits a long exactly.
__kernel void dequantize_i8(__global const char* x, __global int* out, const long scale, const ulong len) {
    const size_t i = get_global_id(0);
    if (i < len) out[i] = saturate_i32((long)x[i] * scale);
}

__kernel void dequantize_i32(__global const int* x, __global int* out, const long scale, const ulong len) {
    const size_t i = get_global_id(0);
    if (i < len) out[i] = saturate_i32((long)x[i] * scale);
}

// ---------------------------------------------------------------------------------------------
// exp2 / exp / log2 in Q30, line for line as tensor/fixed.rs.

// Q30_ONE, LN2_Q30, LOG2E_Q30, EXP_CUTOFF_Q16, EXP2_TABLE and LOG2_TABLE are defined in a
// prelude the host generates from aivm/src/tensor/fixed.rs (`opencl::source()`), so the
// device cannot hold other constants than the CPU.

long exp2_frac_q30(long f) {
    const int i = (int)(f >> 24);
    const long r = f & ((1L << 24) - 1);
    const long y = (r * LN2_Q30) >> 30;
    long p = Q30_ONE / 2 + ((y * 178956971L) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    return (EXP2_TABLE[i] * p) >> 30;
}

// e^x for x ≤ 0 in Q16, as Q30.
long exp_neg_q16_to_q30(long x) {
    if (x <= EXP_CUTOFF_Q16) return 0;
    const long t = (x * LOG2E_Q30) >> 16;
    const long kk = t >> 30;
    const long f = t - kk * Q30_ONE;  // (kk < 0: no left shift of a negative value)
    return exp2_frac_q30(f) >> (-kk);
}

// log2(v) in Q30 for v > 0.
long log2_q30(ulong v) {
    const long e = 63 - (long)clz(v);
    const long m = e <= 30 ? (long)(v << (30 - e)) : (long)(v >> (e - 30));
    const int j = (int)((m - Q30_ONE) >> 24);
    const long m_j = Q30_ONE + ((long)j << 24);
    const long r = ((m - m_j) << 30) / m_j;
    long p = 357913941L - ((r * (Q30_ONE / 4)) >> 30);
    p = Q30_ONE / 2 - ((r * p) >> 30);
    p = Q30_ONE - ((r * p) >> 30);
    const long ln1p = (r * p) >> 30;
    return (e << 30) + LOG2_TABLE[j] + ((ln1p * LOG2E_Q30) >> 30);
}

// KL_DIVERGE's per-element log ratio; the host checked the inputs and sums p_i·d_i in i128.
__kernel void kl_log_ratios(__global const int* p, __global const int* q, __global long* d, const ulong len) {
    const size_t i = get_global_id(0);
    if (i >= len) return;
    const int pi = p[i], qi = q[i];
    d[i] = (pi <= 0 || qi <= 0) ? 0 : log2_q30((ulong)pi) - log2_q30((ulong)qi);
}

// ---------------------------------------------------------------------------------------------
// Row kernels: one work-group of RL work-items per row; each work-item strides over the row,
// then partial results are combined in local memory. Max and integer sums are exact, so the
// combination order is irrelevant.

#define RL 64

__kernel __attribute__((reqd_work_group_size(RL, 1, 1)))
void softmax_rows(__global const int* x, __global int* out, const uint n) {
    __local long red[RL];
    const uint lid = get_local_id(0);
    const size_t base = (size_t)get_group_id(0) * n;
    int mx = INT_MIN;
    for (uint i = lid; i < n; i += RL) mx = max(mx, x[base + i]);
    red[lid] = mx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = RL / 2; s > 0; s >>= 1) {
        if (lid < s) red[lid] = max(red[lid], red[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const long m = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    long sum = 0;
    for (uint i = lid; i < n; i += RL) sum += exp_neg_q16_to_q30((long)x[base + i] - m);
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = RL / 2; s > 0; s >>= 1) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    // S = Σ e_i ≤ n·2^30 < 2^62 and e_i·2^16 < 2^47: every step fits a long.
    const long total = red[0];
    for (uint i = lid; i < n; i += RL) {
        const long e = exp_neg_q16_to_q30((long)x[base + i] - m);
        out[base + i] = (int)(((e << 16) + total / 2) / total);
    }
}

// Unsigned 128-bit integers as (hi, lo) for the norms' sums of squares.
typedef struct { ulong hi, lo; } u128_t;

u128_t u128_add(u128_t a, u128_t b) {
    u128_t r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo);
    return r;
}

u128_t u128_sub(u128_t a, u128_t b) {
    u128_t r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo);
    return r;
}

int u128_ge(u128_t a, u128_t b) {
    return a.hi > b.hi || (a.hi == b.hi && a.lo >= b.lo);
}

u128_t u128_shr(u128_t a, uint s) {  // 0 < s < 64
    u128_t r;
    r.lo = (a.lo >> s) | (a.hi << (64 - s));
    r.hi = a.hi >> s;
    return r;
}

// floor(a / d) for 0 < d < 2^32, by 32-bit limbs (each step's dividend is below d·2^32).
u128_t u128_div_small(u128_t a, ulong d) {
    const ulong limbs[4] = { a.hi >> 32, a.hi & 0xffffffffUL, a.lo >> 32, a.lo & 0xffffffffUL };
    ulong q[4];
    ulong rem = 0;
    for (int i = 0; i < 4; i++) {
        const ulong cur = (rem << 32) | limbs[i];
        q[i] = cur / d;
        rem = cur % d;
    }
    u128_t r;
    r.hi = (q[0] << 32) | q[1];
    r.lo = (q[2] << 32) | q[3];
    return r;
}

// floor(sqrt(a)), digit by digit (the result fits 64 bits).
ulong u128_isqrt(u128_t a) {
    u128_t res = {0, 0};
    u128_t bit = {1UL << 62, 0};  // 4^63, the largest power of four below 2^128
    while (!u128_ge(a, bit) && (bit.hi | bit.lo)) bit = u128_shr(bit, 2);
    while (bit.hi | bit.lo) {
        const u128_t t = u128_add(res, bit);
        if (u128_ge(a, t)) {
            a = u128_sub(a, t);
            res = u128_add(u128_shr(res, 1), bit);
        } else {
            res = u128_shr(res, 1);
        }
        bit = u128_shr(bit, 2);
    }
    return res.lo;
}

// kind 0 = RMS, 1 = Layer; eps in Q16, ≥ 0.
__kernel __attribute__((reqd_work_group_size(RL, 1, 1)))
void norm_rows(__global const int* x, __global int* out, const uint n, const int kind, const long eps_q16) {
    __local long red[RL];
    __local ulong hi[RL], lo[RL];
    const uint lid = get_local_id(0);
    const size_t base = (size_t)get_group_id(0) * n;
    long mean = 0;
    if (kind == 1) {
        // |Σx| ≤ 2^31·n < 2^63 for the at most 2^32 elements a tensor has.
        long s = 0;
        for (uint i = lid; i < n; i += RL) s += x[base + i];
        red[lid] = s;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint st = RL / 2; st > 0; st >>= 1) {
            if (lid < st) red[lid] += red[lid + st];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        mean = div_round_half_even(red[0], (long)n);
    }
    // |x − μ| < 2^32, so each square fits a ulong; the sum needs 128 bits.
    u128_t sq = {0, 0};
    for (uint i = lid; i < n; i += RL) {
        const long dlt = (long)x[base + i] - mean;
        const ulong a = (ulong)(dlt < 0 ? -dlt : dlt);
        const u128_t t = {0, a * a};
        sq = u128_add(sq, t);
    }
    hi[lid] = sq.hi;
    lo[lid] = sq.lo;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint st = RL / 2; st > 0; st >>= 1) {
        if (lid < st) {
            const u128_t a = {hi[lid], lo[lid]}, b = {hi[lid + st], lo[lid + st]};
            const u128_t r = u128_add(a, b);
            hi[lid] = r.hi;
            lo[lid] = r.lo;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const u128_t total = {hi[0], lo[0]};
    const u128_t eps = {0, (ulong)eps_q16 << 16};
    const long denom = (long)u128_isqrt(u128_add(u128_div_small(total, n), eps));
    for (uint i = lid; i < n; i += RL) {
        out[base + i] = denom == 0 ? 0 : saturate_i32(div_round_half_even(((long)x[base + i] - mean) * 65536L, denom));
    }
}
