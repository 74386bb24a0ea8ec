// Fused multi-head attention for power-perceiver: forward (online softmax, per-row log-sum-exp
// saved) and backward (dQ, dK, dV recomputing probabilities from the saved statistics), with a
// key-padding mask. Compiled at run time by NVRTC (no headers needed: bf16 is handled as raw
// 16-bit patterns and tensor-core instructions are written as inline PTX).
//
// Layouts (all contiguous, row-major):
//   q [B, H, Nq, D], k and v [B, H, Nk, D], out [B, H, Nq, D], lse [B, H, Nq] (f32),
//   keep [B, Nk] (f32, 0 = padding key) or null, scale = 1/sqrt(D).
// A query row with no kept key gets a zero output and lse 0; backward gives it zero gradients.
// Head dimensions 16..128 in steps of 8 (the tensor-core path needs D % 16 == 0).
//
// Kernels:
//   attn_fwd_f32            one warp per query row, K/V tiles in shared memory, f32 throughout.
//   attn_bwd_delta_f32      delta_i = sum_d dO_id * O_id (one warp per row).
//   attn_bwd_dq_f32         dQ, one warp per query row.
//   attn_bwd_dkv_f32        dK and dV, one warp per key row (no atomics: deterministic).
//   attn_fwd_bf16_mma       tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate, sm_80+):
//                           one warp per 16 query rows, 64-key tiles in shared memory, online
//                           softmax on the accumulator fragments. Inputs f32 (rounded to bf16 on
//                           load) or bf16 (raw bits), chosen by the `_f32in` / `_bf16in` entry.

#define WARP 32
#define MAX_D 128
#define ROWS_PER_BLOCK 4   // warps per block in the f32 kernels
#define KEY_TILE 32        // keys per shared-memory tile in the f32 kernels

typedef unsigned short bf16_bits;
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ bool kept(const float* keep, int b, int nk, int j) {
    return keep == nullptr || keep[(long long)b * nk + j] != 0.0f;
}

// ---------------------------------------------------------------------------------------------
// f32 forward
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void attn_fwd_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ keep, float* __restrict__ out, float* __restrict__ lse,
    int heads, int nq, int nk, int d, float scale)
{
    __shared__ float ks[KEY_TILE][MAX_D];
    __shared__ float vs[KEY_TILE][MAX_D];
    __shared__ float kk[KEY_TILE];

    const int bh = blockIdx.y;
    const int b = bh / heads;
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int row = blockIdx.x * ROWS_PER_BLOCK + warp;
    const bool active = row < nq;

    const float* qr = q + ((long long)bh * nq + (active ? row : 0)) * d;
    const float* kb = k + (long long)bh * nk * d;
    const float* vb = v + (long long)bh * nk * d;

    // Each lane owns dimensions lane, lane+32, lane+64, lane+96.
    float qv[MAX_D / WARP], acc[MAX_D / WARP];
    #pragma unroll
    for (int i = 0; i < MAX_D / WARP; ++i) {
        const int dd = lane + i * WARP;
        qv[i] = (active && dd < d) ? qr[dd] * scale : 0.0f;
        acc[i] = 0.0f;
    }
    float m = NEG_INF, l = 0.0f;

    for (int j0 = 0; j0 < nk; j0 += KEY_TILE) {
        const int tile = min(KEY_TILE, nk - j0);
        __syncthreads();
        for (int idx = threadIdx.x; idx < tile * d; idx += blockDim.x) {
            const int j = idx / d, dd = idx % d;
            ks[j][dd] = kb[(long long)(j0 + j) * d + dd];
            vs[j][dd] = vb[(long long)(j0 + j) * d + dd];
        }
        for (int j = threadIdx.x; j < tile; j += blockDim.x) kk[j] = kept(keep, b, nk, j0 + j) ? 1.0f : 0.0f;
        __syncthreads();
        if (!active) continue;
        for (int j = 0; j < tile; ++j) {
            if (kk[j] == 0.0f) continue;
            float s = 0.0f;
            #pragma unroll
            for (int i = 0; i < MAX_D / WARP; ++i) {
                const int dd = lane + i * WARP;
                if (dd < d) s += qv[i] * ks[j][dd];
            }
            s = warp_sum(s);
            const float m_new = fmaxf(m, s);
            const float correction = __expf(m - m_new);  // 0 when m was -inf
            const float p = __expf(s - m_new);
            l = l * correction + p;
            #pragma unroll
            for (int i = 0; i < MAX_D / WARP; ++i) {
                const int dd = lane + i * WARP;
                if (dd < d) acc[i] = acc[i] * correction + p * vs[j][dd];
            }
            m = m_new;
        }
    }
    if (!active) return;
    float* o = out + ((long long)bh * nq + row) * d;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    #pragma unroll
    for (int i = 0; i < MAX_D / WARP; ++i) {
        const int dd = lane + i * WARP;
        if (dd < d) o[dd] = acc[i] * inv;
    }
    if (lane == 0) lse[(long long)bh * nq + row] = l > 0.0f ? m + __logf(l) : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// f32 backward
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void attn_bwd_delta_f32(
    const float* __restrict__ out, const float* __restrict__ d_out, float* __restrict__ delta,
    long long rows, int d)
{
    const long long row = (long long)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    float s = 0.0f;
    for (int dd = lane; dd < d; dd += WARP) s += out[row * d + dd] * d_out[row * d + dd];
    s = warp_sum(s);
    if (lane == 0) delta[row] = s;
}

// dQ_i = scale * sum_j P_ij (dP_ij - delta_i) K_j, with P_ij = exp(scale q_i.k_j - lse_i) and
// dP_ij = dO_i . V_j.
extern "C" __global__ void attn_bwd_dq_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ keep, const float* __restrict__ d_out,
    const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dq,
    int heads, int nq, int nk, int d, float scale)
{
    __shared__ float ks[KEY_TILE][MAX_D];
    __shared__ float vs[KEY_TILE][MAX_D];
    __shared__ float kk[KEY_TILE];

    const int bh = blockIdx.y;
    const int b = bh / heads;
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int row = blockIdx.x * ROWS_PER_BLOCK + warp;
    const bool active = row < nq;
    const long long r = (long long)bh * nq + (active ? row : 0);

    float qv[MAX_D / WARP], go[MAX_D / WARP], acc[MAX_D / WARP];
    #pragma unroll
    for (int i = 0; i < MAX_D / WARP; ++i) {
        const int dd = lane + i * WARP;
        qv[i] = (active && dd < d) ? q[r * d + dd] * scale : 0.0f;
        go[i] = (active && dd < d) ? d_out[r * d + dd] : 0.0f;
        acc[i] = 0.0f;
    }
    const float row_lse = active ? lse[r] : 0.0f;
    const float row_delta = active ? delta[r] : 0.0f;
    const float* kb = k + (long long)bh * nk * d;
    const float* vb = v + (long long)bh * nk * d;

    for (int j0 = 0; j0 < nk; j0 += KEY_TILE) {
        const int tile = min(KEY_TILE, nk - j0);
        __syncthreads();
        for (int idx = threadIdx.x; idx < tile * d; idx += blockDim.x) {
            const int j = idx / d, dd = idx % d;
            ks[j][dd] = kb[(long long)(j0 + j) * d + dd];
            vs[j][dd] = vb[(long long)(j0 + j) * d + dd];
        }
        for (int j = threadIdx.x; j < tile; j += blockDim.x) kk[j] = kept(keep, b, nk, j0 + j) ? 1.0f : 0.0f;
        __syncthreads();
        if (!active) continue;
        for (int j = 0; j < tile; ++j) {
            if (kk[j] == 0.0f) continue;
            float s = 0.0f, dp = 0.0f;
            #pragma unroll
            for (int i = 0; i < MAX_D / WARP; ++i) {
                const int dd = lane + i * WARP;
                if (dd < d) {
                    s += qv[i] * ks[j][dd];
                    dp += go[i] * vs[j][dd];
                }
            }
            s = warp_sum(s);
            dp = warp_sum(dp);
            const float ds = __expf(s - row_lse) * (dp - row_delta);
            #pragma unroll
            for (int i = 0; i < MAX_D / WARP; ++i) {
                const int dd = lane + i * WARP;
                if (dd < d) acc[i] += ds * ks[j][dd];
            }
        }
    }
    if (!active) return;
    #pragma unroll
    for (int i = 0; i < MAX_D / WARP; ++i) {
        const int dd = lane + i * WARP;
        if (dd < d) dq[r * d + dd] = acc[i] * scale;
    }
}

// dV_j = sum_i P_ij dO_i; dK_j = scale * sum_i P_ij (dP_ij - delta_i) q_i. One warp per key.
extern "C" __global__ void attn_bwd_dkv_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ keep, const float* __restrict__ d_out,
    const float* __restrict__ lse, const float* __restrict__ delta,
    float* __restrict__ dk, float* __restrict__ dv,
    int heads, int nq, int nk, int d, float scale)
{
    __shared__ float qs[KEY_TILE][MAX_D];
    __shared__ float gs[KEY_TILE][MAX_D];
    __shared__ float ls[KEY_TILE];
    __shared__ float ds_[KEY_TILE];

    const int bh = blockIdx.y;
    const int b = bh / heads;
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int key = blockIdx.x * ROWS_PER_BLOCK + warp;
    const bool active = key < nk && kept(keep, b, nk, key);
    const long long kr = (long long)bh * nk + (key < nk ? key : 0);

    float kv[MAX_D / WARP], vv[MAX_D / WARP], dka[MAX_D / WARP], dva[MAX_D / WARP];
    #pragma unroll
    for (int i = 0; i < MAX_D / WARP; ++i) {
        const int dd = lane + i * WARP;
        kv[i] = (active && dd < d) ? k[kr * d + dd] * scale : 0.0f;
        vv[i] = (active && dd < d) ? v[kr * d + dd] : 0.0f;
        dka[i] = 0.0f;
        dva[i] = 0.0f;
    }
    const float* qb = q + (long long)bh * nq * d;
    const float* gb = d_out + (long long)bh * nq * d;

    for (int i0 = 0; i0 < nq; i0 += KEY_TILE) {
        const int tile = min(KEY_TILE, nq - i0);
        __syncthreads();
        for (int idx = threadIdx.x; idx < tile * d; idx += blockDim.x) {
            const int i = idx / d, dd = idx % d;
            qs[i][dd] = qb[(long long)(i0 + i) * d + dd];
            gs[i][dd] = gb[(long long)(i0 + i) * d + dd];
        }
        for (int i = threadIdx.x; i < tile; i += blockDim.x) {
            ls[i] = lse[(long long)bh * nq + i0 + i];
            ds_[i] = delta[(long long)bh * nq + i0 + i];
        }
        __syncthreads();
        if (!active) continue;
        for (int i = 0; i < tile; ++i) {
            float s = 0.0f, dp = 0.0f;
            #pragma unroll
            for (int c = 0; c < MAX_D / WARP; ++c) {
                const int dd = lane + c * WARP;
                if (dd < d) {
                    s += kv[c] * qs[i][dd];
                    dp += vv[c] * gs[i][dd];
                }
            }
            s = warp_sum(s);
            dp = warp_sum(dp);
            const float p = __expf(s - ls[i]);
            const float dsv = p * (dp - ds_[i]);
            #pragma unroll
            for (int c = 0; c < MAX_D / WARP; ++c) {
                const int dd = lane + c * WARP;
                if (dd < d) {
                    dva[c] += p * gs[i][dd];
                    dka[c] += dsv * qs[i][dd];
                }
            }
        }
    }
    if (key >= nk) return;
    #pragma unroll
    for (int c = 0; c < MAX_D / WARP; ++c) {
        const int dd = lane + c * WARP;
        if (dd < d) {
            dk[kr * d + dd] = dka[c] * scale;
            dv[kr * d + dd] = dva[c];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core forward: bf16 inputs, f32 accumulation, mma.sync.m16n8k16 (sm_80 and later).
// ---------------------------------------------------------------------------------------------

#define TC_WARPS 4            // warps per block; each owns 16 query rows
#define TC_KEYS 64            // keys per shared-memory tile
#define TC_PAD 8              // shared-memory row padding (bf16 elements) against bank conflicts

__device__ __forceinline__ bf16_bits f32_to_bf16(float x) {
    // Round to nearest even; NaN stays NaN.
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_bits)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_bits)(u >> 16);
}

__device__ __forceinline__ unsigned int pack2(bf16_bits lo, bf16_bits hi) {
    return (unsigned int)lo | ((unsigned int)hi << 16);
}

__device__ __forceinline__ void mma_bf16_16816(float c[4], const unsigned int a[4],
                                               const unsigned int b[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    // Tensor cores with bf16 need sm_80; the host only launches this kernel there.
    __trap();
#endif
}

template <typename In>
__device__ __forceinline__ bf16_bits load_bf16(const In* p, long long i);

template <>
__device__ __forceinline__ bf16_bits load_bf16<float>(const float* p, long long i) {
    return f32_to_bf16(p[i]);
}

template <>
__device__ __forceinline__ bf16_bits load_bf16<bf16_bits>(const bf16_bits* p, long long i) {
    return p[i];
}

__device__ __forceinline__ float bf16_to_f32(bf16_bits x) {
    return __uint_as_float(((unsigned int)x) << 16);
}

template <typename In, typename Out>
__device__ __forceinline__ void store_out(Out* p, long long i, float x);

template <>
__device__ __forceinline__ void store_out<float, float>(float* p, long long i, float x) { p[i] = x; }

template <>
__device__ __forceinline__ void store_out<bf16_bits, bf16_bits>(bf16_bits* p, long long i, float x) {
    p[i] = f32_to_bf16(x);
}

// Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, column-major): b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C (16x8, f32): c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
// S = Q K^T uses A = Q rows, B = K rows (K[key][dim] row-major is B column-major). The C
// fragments of two neighbouring 8-key tiles form exactly the A fragment of P for P V.
template <typename In, int D>
__device__ void attn_fwd_mma(
    const In* __restrict__ q, const In* __restrict__ k, const In* __restrict__ v,
    const float* __restrict__ keep, In* __restrict__ out, float* __restrict__ lse,
    int heads, int nq, int nk, float scale)
{
    __shared__ bf16_bits ks[TC_KEYS][D + TC_PAD];
    __shared__ bf16_bits vs[TC_KEYS][D + TC_PAD];
    __shared__ float kk[TC_KEYS];

    const int bh = blockIdx.y;
    const int b = bh / heads;
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x * TC_WARPS + warp) * 16;
    const long long base_q = (long long)bh * nq;

    // Q fragments for all of D, pre-scaled (in f32, then rounded) by `scale`.
    unsigned int qa[D / 16][4];
    #pragma unroll
    for (int c = 0; c < D / 16; ++c) {
        #pragma unroll
        for (int part = 0; part < 4; ++part) {
            const int r = row0 + g + ((part & 1) ? 8 : 0);
            const int col = c * 16 + 2 * t + ((part & 2) ? 8 : 0);
            bf16_bits lo = 0, hi = 0;
            if (r < nq) {
                lo = f32_to_bf16(bf16_to_f32(load_bf16<In>(q, (base_q + r) * D + col)) * scale);
                hi = f32_to_bf16(bf16_to_f32(load_bf16<In>(q, (base_q + r) * D + col + 1)) * scale);
            }
            qa[c][part] = pack2(lo, hi);
        }
    }

    float o[D / 8][4];
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};

    const long long base_k = (long long)bh * nk;
    for (int j0 = 0; j0 < nk; j0 += TC_KEYS) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < TC_KEYS * D; idx += blockDim.x) {
            const int j = idx / D, dd = idx % D;
            const bool in = j0 + j < nk;
            ks[j][dd] = in ? load_bf16<In>(k, (base_k + j0 + j) * D + dd) : (bf16_bits)0;
            vs[j][dd] = in ? load_bf16<In>(v, (base_k + j0 + j) * D + dd) : (bf16_bits)0;
        }
        for (int j = threadIdx.x; j < TC_KEYS; j += blockDim.x)
            kk[j] = (j0 + j < nk && kept(keep, b, nk, j0 + j)) ? 1.0f : 0.0f;
        __syncthreads();

        // S for this warp's 16 rows x 64 keys: 8 tiles of 8 keys.
        float s[TC_KEYS / 8][4];
        #pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            #pragma unroll
            for (int c = 0; c < D / 16; ++c) {
                const bf16_bits* kr = &ks[n * 8 + g][c * 16 + 2 * t];
                unsigned int bfrag[2] = {pack2(kr[0], kr[1]), pack2(kr[8], kr[9])};
                mma_bf16_16816(s[n], qa[c], bfrag);
            }
        }
        // Mask, then the online softmax per row (rows g and g+8; four lanes share a row).
        float tile_max[2] = {NEG_INF, NEG_INF};
        #pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int key = n * 8 + 2 * t + (e & 1);
                if (kk[key] == 0.0f) s[n][e] = NEG_INF;
                tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[n][e]);
            }
        }
        float correction[2];
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
            tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
            tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
            const float m_new = fmaxf(m[h], tile_max[h]);
            correction[h] = (m_new == NEG_INF) ? 1.0f : __expf(m[h] - m_new);
            m[h] = m_new;
            l[h] *= correction[h];
        }
        #pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            o[n][0] *= correction[0]; o[n][1] *= correction[0];
            o[n][2] *= correction[1]; o[n][3] *= correction[1];
        }
        #pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int h = e >> 1;
                const float p = (s[n][e] == NEG_INF) ? 0.0f : __expf(s[n][e] - m[h]);
                s[n][e] = p;
                l[h] += p;  // partial: this lane's columns; reduced across the 4 lanes at the end
            }
        }
        // O += P V: k-chunks of 16 keys (two S tiles), n-tiles of 8 dims.
        #pragma unroll
        for (int c = 0; c < TC_KEYS / 16; ++c) {
            unsigned int pa[4] = {
                pack2(f32_to_bf16(s[2 * c][0]), f32_to_bf16(s[2 * c][1])),
                pack2(f32_to_bf16(s[2 * c][2]), f32_to_bf16(s[2 * c][3])),
                pack2(f32_to_bf16(s[2 * c + 1][0]), f32_to_bf16(s[2 * c + 1][1])),
                pack2(f32_to_bf16(s[2 * c + 1][2]), f32_to_bf16(s[2 * c + 1][3])),
            };
            #pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                const int dim = n * 8 + g;
                const int key = c * 16 + 2 * t;
                unsigned int bfrag[2] = {
                    pack2(vs[key][dim], vs[key + 1][dim]),
                    pack2(vs[key + 8][dim], vs[key + 9][dim]),
                };
                mma_bf16_16816(o[n], pa, bfrag);
            }
        }
    }
    // Row sums live spread over the four lanes of a group.
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = row0 + g + 8 * h;
        if (r >= nq) continue;
        const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
        #pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            const int col = n * 8 + 2 * t;
            store_out<In, In>(out, (base_q + r) * D + col, o[n][2 * h] * inv);
            store_out<In, In>(out, (base_q + r) * D + col + 1, o[n][2 * h + 1] * inv);
        }
        if (t == 0) lse[base_q + r] = l[h] > 0.0f ? m[h] + __logf(l[h]) : 0.0f;
    }
}

#define TC_ENTRY(NAME, IN, D)                                                                   \
    extern "C" __global__ void __launch_bounds__(TC_WARPS * WARP) NAME(                       \
        const IN* q, const IN* k, const IN* v, const float* keep, IN* out, float* lse,          \
        int heads, int nq, int nk, float scale) {                                               \
        attn_fwd_mma<IN, D>(q, k, v, keep, out, lse, heads, nq, nk, scale);                     \
    }

TC_ENTRY(attn_fwd_mma_f32in_d16, float, 16)
TC_ENTRY(attn_fwd_mma_f32in_d32, float, 32)
TC_ENTRY(attn_fwd_mma_f32in_d64, float, 64)
TC_ENTRY(attn_fwd_mma_f32in_d128, float, 128)
TC_ENTRY(attn_fwd_mma_bf16in_d16, bf16_bits, 16)
TC_ENTRY(attn_fwd_mma_bf16in_d32, bf16_bits, 32)
TC_ENTRY(attn_fwd_mma_bf16in_d64, bf16_bits, 64)
TC_ENTRY(attn_fwd_mma_bf16in_d128, bf16_bits, 128)
