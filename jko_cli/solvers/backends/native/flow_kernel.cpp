// Fused CPU kernel for the OT-Flow augmented ODE (DESIGN.md §2): the whole RK integration of a block of
// samples, and for training its exact discrete adjoint, in one pass that stays in cache.
//
// Why: on narrow networks (the 2-D problems: d=2, m=16) a tensor library spends its time launching
// hundreds of tiny kernels per RK stage. Here B samples are processed together, one per SIMD lane
// (every array is [feature][lane]), so each formula is a short loop the compiler vectorises; the stage
// caches of a block (a few hundred kB) stay in L2 between the forward and the backward sweep.
//
// Formulas (per sample, s = (x, t), a_i = tanh p_i, δ_i = 1 − a_i², σ(p) = log(2 cosh p)):
//   p_0 = K_0 s + b_0, u_0 = σ(p_0);  p_i = K_i u_{i−1} + b_i, u_i = u_{i−1} + h σ(p_i)   (i = 1..nl)
//   z_{nl+1} = w,  z_i = z_{i+1} + h K_iᵀ(a_i ⊙ z_{i+1});   ∇_s Φ = K_0ᵀ(a_0 ⊙ z_1) + AᵀA s + c
//   J_0 = diag(a_0) K_0x,  KJ_i = K_i J_{i−1},  J_i = J_{i−1} + h diag(a_i) KJ_i
//   Δ_x Φ = Σ_j δ_0j z_1j ‖K_0x[j]‖² + h Σ_i Σ_j δ_ij z_{i+1,j} ‖KJ_i[j]‖² + Σ_{k<d} (AᵀA)_kk
// Augmented state: ẋ = −∇_xΦ, ℓ̇ = −Δ_xΦ, L̇ = ½‖∇_xΦ‖², Ṙ = |∂_tΦ − ½‖∇_xΦ‖²| (explicit RK tableau a, b, c).
// Training loss per sample: L + α C + α_R R with C = d/2 log 2π + ½‖z‖² − ℓ; its gradient is the reverse
// sweep of the same scheme (checked against autograd in tests/unit/solvers/test_native.py).
//
// Plain C ABI, called through ctypes. Threads: OpenMP when built with -fopenmp; the library then links
// libgomp.so.1, which inside a PyTorch process resolves to PyTorch's own, so the kernel runs on PyTorch's
// intra-op threads (a second runtime's threads would compete with PyTorch's idle-spinning ones).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <new>
#include <vector>

#include "simd_math.hpp"

namespace {

using jko::exp_neg;
using jko::log1p_series;
using jko::Num;

// a = tanh p and (if sg) sg = σ(p) = |p| + log(1 + exp(−2|p|)), for one lane vector; one division per lane.
template <typename T, int B>
inline void act(const T* __restrict p, T* __restrict a, T* __restrict sg) {
    if (sg) {
#pragma omp simd
        for (int b = 0; b < B; ++b) {
            const T ap = p[b] < T(0) ? -p[b] : p[b];
            const T e = exp_neg(T(-2) * ap);
            const T inv = T(1) / ((T(1) + e) * (T(2) + e));
            const T th = (T(1) - e) * (T(2) + e) * inv;  // (1 − e) / (1 + e)
            a[b] = p[b] < T(0) ? -th : th;
            const T w = e * (T(1) + e) * inv;  // e / (2 + e)
            sg[b] = ap + log1p_series(w);
        }
    } else {
#pragma omp simd
        for (int b = 0; b < B; ++b) {
            const T ap = p[b] < T(0) ? -p[b] : p[b];
            const T e = exp_neg(T(-2) * ap);
            const T th = (T(1) - e) / (T(1) + e);
            a[b] = p[b] < T(0) ? -th : th;
        }
    }
}

template <typename T, int B>
inline T lanes_sum(const T* __restrict x) {
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int b = 0; b < B; ++b) s += x[b];
    return s;
}

template <typename T>
struct Net {
    int64_t d, m, nl;
    T h;
    const T *K0, *b0, *Ks, *bs, *w, *AtA, *c;  // K0 (m, d+1), Ks (nl, m, m), bs (nl, m), AtA (d+1, d+1)
    std::vector<T> q;  // ‖K0x[j]‖²
    T tr;              // Σ_{k<d} AtA[k][k]

    const T* K(int64_t i) const { return Ks + (i - 1) * m * m; }  // K_i, i = 1..nl
    const T* bias(int64_t i) const { return bs + (i - 1) * m; }
};

enum Mode { TRAIN = 0, EVAL = 1, VELOCITY = 2 };

// Offsets (in lane vectors) of one stage's cache.
struct Layout {
    int64_t s, a0, u, a, z, KJ, J, gx, sg, size;
    Layout(int64_t d, int64_t m, int64_t nl) {
        s = 0;
        a0 = s + d + 1;
        u = a0 + m;           // u_0 .. u_{nl−1}
        a = u + nl * m;       // a_1 .. a_nl
        z = a + nl * m;       // z_1 .. z_nl (z_{nl+1} = w)
        KJ = z + nl * m;      // KJ_1 .. KJ_nl, each [j][k]
        J = KJ + nl * m * d;  // J_1 .. J_{nl−1}, each [j][k] (J_0 is cheap to recompute: not kept)
        gx = J + (nl - 1) * m * d;
        sg = gx + d;
        size = sg + 1;
    }
};

// Offsets of the gradient's parts, in scalars: the caller's buffer [K0, b0, Ks, bs, w, AtA, c] (size main),
// then q and tr, the gradients of ‖K0x[j]‖² and of the trace, which fold() adds into K0 and AtA.
struct GradLayout {
    int64_t K0, b0, Ks, bs, w, AtA, c, q, tr, main, size;
    GradLayout(int64_t d, int64_t m, int64_t nl) {
        K0 = 0;
        b0 = K0 + m * (d + 1);
        Ks = b0 + m;
        bs = Ks + nl * m * m;
        w = bs + nl * m;
        AtA = w + m;
        c = AtA + (d + 1) * (d + 1);
        main = q = c + d + 1;
        tr = q + m;
        size = tr + 1;
    }
    // totals (size) → the caller's gradient (main), q and tr folded in
    template <typename T>
    void fold(const Net<T>& net, const double* totals, double* out) const {
        const int64_t d = net.d, dp = d + 1;
        for (int64_t i = 0; i < main; ++i) out[i] += totals[i];
        for (int64_t j = 0; j < net.m; ++j)
            for (int64_t k = 0; k < d; ++k) out[K0 + j * dp + k] += 2.0 * totals[q + j] * double(net.K0[j * dp + k]);
        for (int64_t k = 0; k < d; ++k) out[AtA + k * dp + k] += totals[tr];
    }
};

// Storage for lane vectors, aligned to 64 bytes: malloc's 16-byte alignment made most 64-byte loads
// straddle two cache lines.
template <typename T>
struct Aligned64 {
    using value_type = T;
    Aligned64() = default;
    template <typename U>
    Aligned64(const Aligned64<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <typename U>
    bool operator==(const Aligned64<U>&) const { return true; }
};
template <typename T>
using LaneBuf = std::vector<T, Aligned64<T>>;

// A 64-byte vector of T (GCC/Clang vector extension), for values that must live in registers
template <typename T>
struct Vec64;
template <>
struct Vec64<float> {
    typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vec64<double> {
    typedef double type __attribute__((vector_size(64)));
};

// D, M, NL: the sizes d, m, nl fixed at compile time (0: taken from the Net at run time). The paper's 2-D
// setting (d = 2, m = 16, nl = 1) gets its own instance (see run_range): the feature loops then have
// constant trip counts, which the compiler unrolls (measured: a training step ~8% faster than generic).
template <typename T, int B, int D = 0, int M = 0, int NL = 0>
class Block {
   public:
    int64_t dim() const { return D ? D : net.d; }
    int64_t width() const { return M ? M : net.m; }
    int64_t layers() const { return NL ? NL : net.nl; }
    static constexpr int W = 64 / int(sizeof(T));  // lanes of one 64-byte vector
    static constexpr int LANES = B;
    static_assert(B % W == 0, "a block is whole vectors");

    // The operands of K_i's gradient in one stage: Σ_lanes (y z̄ᵀ + p̄ uᵀ + Σ_k KJ̄_k J_kᵀ), rows m, B lanes each
    struct Rank {
        const T *y, *pbar, *zbar, *u, *KJbar, *J;  // KJbar, J: [row][k] lane vectors, or null (no Laplacian)
        int64_t d;
    };

    // gK (m × m, W lanes each) += the block's rank update, folded onto W lanes: a small GEMM over the
    // (2 + d)·B lanes, done in register tiles of 4 × 4 (j, l) pairs so that each operand vector is loaded
    // once per tile rather than once per pair (the pairwise loop was a quarter of a training step at m = 16)
    static void rank_update(const Rank& q, int64_t m, T* __restrict gK) {
        constexpr int64_t TT = 4;
        const int64_t mt = m - m % TT;
        for (int64_t j = 0; j < mt; j += TT)
            for (int64_t l = 0; l < mt; l += TT) rank_tile(q, j, l, m, gK);
        for (int64_t j = 0; j < m; ++j)
            for (int64_t l = 0; l < m; ++l)
                if (j >= mt || l >= mt) rank_pair(q, j, l, gK + (j * m + l) * W);
    }

    // one 4 × 4 tile: acc[jj][ll] += Σ_terms Σ_chunks a_term[j0+jj] ⊙ b_term[l0+ll], the 16 accumulators
    // as 64-byte vector values so that they stay in registers
    using V = typename Vec64<T>::type;
    static V load(const T* p) {
        V v;
        std::memcpy(&v, p, sizeof(V));
        return v;
    }
    static void store(T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }

    // The small matrix products of a stage, over all B lanes:
    //   out[j·so] = (init ? init[j·si] : 0) + (bias ? bias[j] : 0) + Σ_{l<cols} A[j·ja + l·la] · in[l·sx]
    // for j < rows (each a lane vector; (ja, la) = (cols, 1) for A, (1, rows) for Aᵀ). Four rows and one
    // 64-byte chunk of lanes at a time, the accumulators as vector values: written as B-lane arrays
    // (acc[B] += k · x[b] over l) GCC kept them on the stack, a store and a reload per multiply-add.
    // (Two chunks at a time, 8 accumulators, measured slower.)
    static inline __attribute__((always_inline)) void matvec(const T* __restrict A, int64_t ja, int64_t la,
                                                             const T* __restrict in, int64_t sx, int64_t cols,
                                                             const T* init, int64_t si, const T* bias,
                                                             T* out, int64_t so, int64_t rows) {
        constexpr int RT = 4;
        for (int r = 0; r < B; r += W) {
            int64_t j = 0;
            for (; j + RT <= rows; j += RT) {
                V acc[RT];
#pragma GCC unroll 4
                for (int q = 0; q < RT; ++q) {
                    acc[q] = init ? load(init + (j + q) * si + r) : V{};
                    if (bias) acc[q] += bias[j + q];
                }
                for (int64_t l = 0; l < cols; ++l) {
                    const V x = load(in + l * sx + r);
#pragma GCC unroll 4
                    for (int q = 0; q < RT; ++q) acc[q] += A[(j + q) * ja + l * la] * x;
                }
#pragma GCC unroll 4
                for (int q = 0; q < RT; ++q) store(out + (j + q) * so + r, acc[q]);
            }
            for (; j < rows; ++j) {
                V acc = init ? load(init + j * si + r) : V{};
                if (bias) acc += bias[j];
                for (int64_t l = 0; l < cols; ++l) acc += A[j * ja + l * la] * load(in + l * sx + r);
                store(out + j * so + r, acc);
            }
        }
    }
    static void rank_tile(const Rank& q, int64_t j0, int64_t l0, int64_t m, T* __restrict gK) {
        V acc[4][4];
        for (int jj = 0; jj < 4; ++jj)
            for (int ll = 0; ll < 4; ++ll) acc[jj][ll] = load(gK + ((j0 + jj) * m + l0 + ll) * W);
        const int64_t qd = D ? D : q.d, dB = qd * B;
        for (int r = 0; r < B; r += W) {
            tile_term(acc, q.y + j0 * B + r, B, q.zbar + l0 * B + r, B);
            tile_term(acc, q.pbar + j0 * B + r, B, q.u + l0 * B + r, B);
            if (q.KJbar)
                for (int64_t k = 0; k < qd; ++k)
                    tile_term(acc, q.KJbar + (j0 * qd + k) * B + r, dB, q.J + (l0 * qd + k) * B + r, dB);
        }
        for (int jj = 0; jj < 4; ++jj)
            for (int ll = 0; ll < 4; ++ll) std::memcpy(gK + ((j0 + jj) * m + l0 + ll) * W, &acc[jj][ll], sizeof(V));
    }

    static inline __attribute__((always_inline)) void tile_term(V (&acc)[4][4], const T* a, int64_t sa,
                                                                const T* b, int64_t sb) {
        const V a0 = load(a), a1 = load(a + sa), a2 = load(a + 2 * sa), a3 = load(a + 3 * sa);
        const V b0 = load(b), b1 = load(b + sb), b2 = load(b + 2 * sb), b3 = load(b + 3 * sb);
        const V av[4] = {a0, a1, a2, a3}, bv[4] = {b0, b1, b2, b3};
#pragma GCC unroll 4
        for (int jj = 0; jj < 4; ++jj)
#pragma GCC unroll 4
            for (int ll = 0; ll < 4; ++ll) acc[jj][ll] += av[jj] * bv[ll];
    }

    // one (j, l) pair (the rows and columns outside whole tiles)
    static void rank_pair(const Rank& q, int64_t j, int64_t l, T* __restrict gK) {
        T acc[W];
        std::memcpy(acc, gK, sizeof(T) * W);
        const T *y = q.y + j * B, *p = q.pbar + j * B, *z = q.zbar + l * B, *u = q.u + l * B;
        for (int r = 0; r < B; r += W) {
            T v[W];
            for (int b = 0; b < W; ++b) v[b] = y[r + b] * z[r + b] + p[r + b] * u[r + b];
            if (q.KJbar)
                for (int64_t k = 0; k < q.d; ++k) {
                    const T* x1 = q.KJbar + (j * q.d + k) * B + r;
                    const T* x2 = q.J + (l * q.d + k) * B + r;
                    for (int b = 0; b < W; ++b) v[b] += x1[b] * x2[b];
                }
            for (int b = 0; b < W; ++b) acc[b] += v[b];
        }
        std::memcpy(gK, acc, sizeof(T) * W);
    }

    // The gradient is accumulated per scalar in W lanes (vertical adds only) through all stages of a block,
    // and reduced across lanes into the double totals once per block: a horizontal sum per scalar and
    // stage cost as much as the stage's matrix products at m = 16.
    T* gacc(int64_t offset) { return glanes.data() + offset * W; }
    static void add_sum(T* __restrict acc, const T* __restrict x) {
        for (int r = 0; r < B; r += W)
            for (int b = 0; b < W; ++b) acc[b] += x[r + b];
    }
    static void add_dot(T* __restrict acc, const T* __restrict x, const T* __restrict y) {
        for (int r = 0; r < B; r += W)
            for (int b = 0; b < W; ++b) acc[b] += x[r + b] * y[r + b];
    }
    void flush(double* totals) {
        for (int64_t i = 0; i < gl.size; ++i) totals[i] += double(lanes_sum<T, W>(gacc(i)));
        std::fill(glanes.begin(), glanes.end(), T(0));
    }

    Block(const Net<T>& net, Mode mode, int64_t n_stages_total)
        : net(net), mode(mode), lay(net.d, net.m, net.nl), gl(net.d, net.m, net.nl),
          cache((mode == TRAIN ? n_stages_total : 1) * lay.size * B), gxs(n_stages_total * net.d * B),
          xbar(16 * net.d * B) {
        const int64_t m = net.m, d = net.d, nl = net.nl;
        wl.resize(m * B);
        for (int64_t j = 0; j < m; ++j)
            for (int b = 0; b < B; ++b) wl[j * B + b] = net.w[j];
        lanes.resize((8 * m + 2 * (d + 1) + 4) * B);
        mdbuf.resize(2 * m * d * B);
        J0buf.resize(m * d * B);
        zbar.resize((nl + 1) * m * B);
        abar.resize((nl + 1) * m * B);
        KJbar.resize(nl * m * d * B);
        pbar.resize(nl * m * B);
        if (mode == TRAIN) glanes.assign(gl.size * W, T(0));
    }

    // J_0 = diag(a_0) K_0x of a stage, into out (m·d lanes)
    void J0_into(const T* C, T* out) const {
        const int64_t d = dim(), dp = d + 1;
        const T* a0 = C + lay.a0 * B;
        for (int64_t j = 0; j < width(); ++j)
            for (int64_t k = 0; k < d; ++k)
                for (int b = 0; b < B; ++b) out[(j * d + k) * B + b] = a0[j * B + b] * net.K0[j * dp + k];
    }
    // J_{i−1}, the input of layer i: J_0 from the scratch J0_into filled, the others from the cache
    const T* J_prev(const T* C, int64_t i) const {
        return i == 1 ? J0buf.data() : C + (lay.J + (i - 2) * width() * dim()) * B;
    }

    T* stage(int64_t g) { return cache.data() + (mode == TRAIN ? g : 0) * lay.size * B; }
    const T* stage(int64_t g) const { return cache.data() + (mode == TRAIN ? g : 0) * lay.size * B; }
    // z_i for i = 1..nl+1 (z_{nl+1} = w, broadcast across lanes)
    const T* zeta(const T* C, int64_t i) const { return i == layers() + 1 ? wl.data() : C + (lay.z + (i - 1) * width()) * B; }
    const T* act_of(const T* C, int64_t i) const { return C + (lay.a + (i - 1) * width()) * B; }  // a_i

    // One evaluation of ∇_sΦ (and Δ_xΦ unless VELOCITY) at stage inputs xs (d lanes) and time t.
    void stage_forward(T* C, const T* xs, T t, T* gt, T* lap) {
        const int64_t d = dim(), m = width(), nl = layers(), dp = d + 1;
        const T h = net.h;
        T* s = C + lay.s * B;
        std::memcpy(s, xs, sizeof(T) * d * B);
        for (int b = 0; b < B; ++b) s[d * B + b] = t;
        T* p = lanes.data();  // p_i of one layer (m lanes), then y_i (m lanes)
        // opening layer: p_0 = K_0 s + b_0 (s's last row is t)
        matvec(net.K0, dp, 1, s, B, dp, nullptr, 0, net.b0, p, B, m);
        for (int64_t j = 0; j < m; ++j) act<T, B>(p + j * B, C + (lay.a0 + j) * B, C + (lay.u + j) * B);
        // residual layers: p_i = K_i u_{i−1} + b_i
        for (int64_t i = 1; i <= nl; ++i) {
            const T* uin = C + (lay.u + (i - 1) * m) * B;
            T* ai = C + (lay.a + (i - 1) * m) * B;
            matvec(net.K(i), m, 1, uin, B, m, nullptr, 0, net.bias(i), p, B, m);
            for (int64_t j = 0; j < m; ++j) {
                if (i < nl) {
                    T sg[B];
                    act<T, B>(p + j * B, ai + j * B, sg);
                    T* uo = C + (lay.u + i * m + j) * B;
                    const T* ui = uin + j * B;
                    for (int b = 0; b < B; ++b) uo[b] = ui[b] + h * sg[b];
                } else {
                    act<T, B>(p + j * B, ai + j * B, nullptr);
                }
            }
        }
        // z recursion, top down: z_i = z_{i+1} + h K_iᵀ(a_i ⊙ z_{i+1})
        T* y = p;
        for (int64_t i = nl; i >= 1; --i) {
            const T* ai = act_of(C, i);
            const T* zup = zeta(C, i + 1);
            for (int64_t j = 0; j < m * B; ++j) y[j] = h * ai[j] * zup[j];
            matvec(net.K(i), 1, m, y, B, m, zup, B, nullptr, C + (lay.z + (i - 1) * m) * B, B, m);
        }
        // ∇_sΦ = K_0ᵀ(a_0 ⊙ z_1) + AᵀA s + c
        const T* a0 = C + lay.a0 * B;
        const T* z1 = zeta(C, 1);
        for (int64_t j = 0; j < m * B; ++j) y[j] = a0[j] * z1[j];
        T* g1 = y + m * B;  // AᵀA s + c, then ∇_sΦ (d+1 lanes each)
        T* g2 = g1 + dp * B;
        matvec(net.AtA, dp, 1, s, B, dp, nullptr, 0, net.c, g1, B, dp);
        matvec(net.K0, 1, dp, y, B, m, g1, B, nullptr, g2, B, dp);
        std::memcpy(C + lay.gx * B, g2, sizeof(T) * d * B);
        std::memcpy(gt, g2 + d * B, sizeof(T) * B);
        if (mode != VELOCITY) laplacian_forward(C, lap);
    }

    void laplacian_forward(T* C, T* lap) {
        const int64_t d = dim(), m = width(), nl = layers();
        const T h = net.h;
        const T* a0 = C + lay.a0 * B;
        const T* z1 = zeta(C, 1);
        for (int b = 0; b < B; ++b) lap[b] = net.tr;
        for (int64_t j = 0; j < m; ++j)
            for (int b = 0; b < B; ++b) {
                const T a = a0[j * B + b];
                lap[b] += (T(1) - a * a) * z1[j * B + b] * net.q[j];
            }
        J0_into(C, J0buf.data());
        for (int64_t i = 1; i <= nl; ++i) {
            const T* Jp = J_prev(C, i);
            T* KJ = C + (lay.KJ + (i - 1) * m * d) * B;
            const T* ai = act_of(C, i);
            const T* zup = zeta(C, i + 1);
            for (int64_t k = 0; k < d; ++k)
                matvec(net.K(i), m, 1, Jp + k * B, d * B, m, nullptr, 0, nullptr, KJ + k * B, d * B, m);
            for (int64_t j = 0; j < m; ++j) {
                T S[B] = {};
                for (int64_t k = 0; k < d; ++k)
                    for (int b = 0; b < B; ++b) S[b] += KJ[(j * d + k) * B + b] * KJ[(j * d + k) * B + b];
                for (int b = 0; b < B; ++b) {
                    const T a = ai[j * B + b];
                    lap[b] += h * (T(1) - a * a) * zup[j * B + b] * S[b];
                }
            }
            if (i < nl) {
                T* Jn = C + (lay.J + (i - 1) * m * d) * B;
                for (int64_t j = 0; j < m; ++j)
                    for (int64_t k = 0; k < d; ++k)
                        for (int b = 0; b < B; ++b)
                            Jn[(j * d + k) * B + b] =
                                Jp[(j * d + k) * B + b] + h * ai[j * B + b] * KJ[(j * d + k) * B + b];
            }
        }
    }

    // Reverse one stage: cotangents G (d+1 lanes: ∇_xΦ then ∂_tΦ) and Gl (Δ_xΦ) → x̄ (d lanes); adds into g.
    void stage_backward(const T* C, const T* G, const T* Gl, T* xbar_out) {
        const int64_t d = dim(), m = width(), nl = layers(), dp = d + 1;
        const T h = net.h;
        const T* s = C + lay.s * B;
        const T* a0 = C + lay.a0 * B;
        const T* z1 = zeta(C, 1);
        T* zb = zbar.data();  // zb + i·m·B ↔ z̄_{i+1}, i = 0..nl
        T* ab = abar.data();  // ab + i·m·B ↔ ā_i, i = 0..nl
        T* tmp = lanes.data();            // B lanes of scratch
        T* sbar = tmp + B;                // d+1
        T* v = sbar + dp * B;             // m
        T* ubar = v + m * B;              // m
        T* ubar2 = ubar + m * B;          // m
        T* p0bar = ubar2 + m * B;         // m
        // ∇_sΦ = K_0ᵀ y_0 + AᵀA s + c,  y_0 = a_0 ⊙ z_1
        matvec(net.K0, dp, 1, G, B, dp, nullptr, 0, nullptr, v, B, m);  // ȳ_0
        for (int64_t j = 0; j < m; ++j) {
            const T* a0j = a0 + j * B;
            const T* z1j = z1 + j * B;
            const T* yb = v + j * B;
            for (int r = 0; r < B; r += W) {  // vector values: the buffers may alias as far as GCC knows
                const V a = load(a0j + r), z = load(z1j + r), y = load(yb + r);
                store(zb + j * B + r, a * y);
                store(ab + j * B + r, z * y);
                store(tmp + r, a * z);
            }
            for (int64_t k = 0; k < dp; ++k) add_dot(gacc(gl.K0 + j * dp + k), tmp, G + k * B);
        }
        std::fill(zb + m * B, zb + (nl + 1) * m * B, T(0));
        std::fill(ab + m * B, ab + (nl + 1) * m * B, T(0));
        for (int64_t k = 0; k < dp; ++k) {
            add_sum(gacc(gl.c + k), G + k * B);
            for (int64_t l = 0; l < dp; ++l) add_dot(gacc(gl.AtA + k * dp + l), G + k * B, s + l * B);
        }
        matvec(net.AtA, 1, dp, G, B, dp, nullptr, 0, nullptr, sbar, B, dp);
        if (Gl) {
            J0_into(C, J0buf.data());
            laplacian_backward(C, Gl);
        }
        // z recursion, bottom up: z_i = z_{i+1} + K_iᵀ y_i with y_i = h a_i ⊙ z_{i+1}
        for (int64_t i = 1; i <= nl; ++i) {
            const T* ai = act_of(C, i);
            const T* zup = zeta(C, i + 1);
            const T* zbi = zb + (i - 1) * m * B;  // z̄_i
            T* zbn = zb + i * m * B;              // z̄_{i+1}
            T* abi = ab + i * m * B;
            matvec(net.K(i), m, 1, zbi, B, m, nullptr, 0, nullptr, v, B, m);  // K_i z̄_i
            for (int64_t j = 0; j < m; ++j) {
                const T* acc = v + j * B;
                for (int b = 0; b < B; ++b) {
                    const T yb = h * acc[b];  // ȳ_i
                    abi[j * B + b] += yb * zup[j * B + b];
                    zbn[j * B + b] += zbi[j * B + b] + yb * ai[j * B + b];
                }
            }
        }
        for (int64_t j = 0; j < m; ++j) add_sum(gacc(gl.w + j), zb + (nl * m + j) * B);
        // network, top down: p_i = K_i u_{i−1} + b_i, u_i = u_{i−1} + h σ(p_i)
        for (int64_t i = nl; i >= 1; --i) {
            const T* Ki = net.K(i);
            const T* ai = act_of(C, i);
            T* pb = pbar.data() + (i - 1) * m * B;
            for (int64_t j = 0; j < m * B; ++j) {
                const T a = ai[j];
                pb[j] = ab[i * m * B + j] * (T(1) - a * a) + (i < nl ? h * ubar[j] * a : T(0));
            }
            for (int64_t j = 0; j < m; ++j) add_sum(gacc(gl.bs + (i - 1) * m + j), pb + j * B);
            matvec(Ki, 1, m, pb, B, m, i < nl ? ubar : nullptr, B, nullptr, ubar2, B, m);
            std::swap(ubar, ubar2);
        }
        // K_i's gradient, all terms in one pass: KJ̄_i J_{i−1}ᵀ + y_i z̄_iᵀ + p̄_i u_{i−1}ᵀ
        for (int64_t i = 1; i <= nl; ++i) {
            const T* ai = act_of(C, i);
            const T* zup = zeta(C, i + 1);
            const T* zbi = zb + (i - 1) * m * B;
            const T* pb = pbar.data() + (i - 1) * m * B;
            const T* uin = C + (lay.u + (i - 1) * m) * B;
            const T* KJb = KJbar.data() + (i - 1) * m * d * B;
            const T* Jp = J_prev(C, i);
            T* gK = gacc(gl.Ks + (i - 1) * m * m);
            T* ys = p0bar + m * B;  // y_i = h a_i ⊙ z_{i+1} (m lanes, free scratch)
            for (int64_t j = 0; j < m * B; ++j) ys[j] = h * ai[j] * zup[j];
            const Rank rank{ys, pb, zbi, uin, Gl ? KJb : nullptr, Gl ? Jp : nullptr, d};
            rank_update(rank, m, gK);
        }
        // opening: p_0 = K_0 s + b_0, a_0 = tanh p_0, u_0 = σ(p_0)
        for (int64_t j = 0; j < m * B; ++j) {
            const T a = a0[j];
            p0bar[j] = ab[j] * (T(1) - a * a) + ubar[j] * a;
        }
        for (int64_t j = 0; j < m; ++j) {
            add_sum(gacc(gl.b0 + j), p0bar + j * B);
            for (int64_t k = 0; k < dp; ++k) add_dot(gacc(gl.K0 + j * dp + k), p0bar + j * B, s + k * B);
        }
        matvec(net.K0, 1, dp, p0bar, B, m, sbar, B, nullptr, xbar_out, B, d);
    }

    // The Laplacian's reverse: adds into ā_i, z̄_{i+1} (abar, zbar) and g; leaves KJ̄_i in KJbar.
    void laplacian_backward(const T* C, const T* Gl) {
        const int64_t d = dim(), m = width(), nl = layers(), dp = d + 1;
        const T h = net.h;
        const T* a0 = C + lay.a0 * B;
        const T* z1 = zeta(C, 1);
        T* zb = zbar.data();
        T* ab = abar.data();
        T* tmp = lanes.data();
        add_sum(gacc(gl.tr), Gl);
        for (int64_t j = 0; j < m; ++j) {
            const T qj = net.q[j];
#pragma omp simd
            for (int b = 0; b < B; ++b) {
                const T a = a0[j * B + b], dl = T(1) - a * a, z = z1[j * B + b];
                ab[j * B + b] -= T(2) * a * Gl[b] * z * qj;
                zb[j * B + b] += Gl[b] * dl * qj;
                tmp[b] = Gl[b] * dl * z;
            }
            add_sum(gacc(gl.q + j), tmp);
        }
        T* Jbar = mdbuf.data();         // J̄_i, m·d lanes
        T* Jbar2 = Jbar + m * d * B;
        bool have_Jbar = false;           // J̄_nl = 0: J_nl is not used
        for (int64_t i = nl; i >= 1; --i) {
            const T* KJ = C + (lay.KJ + (i - 1) * m * d) * B;
            const T* ai = act_of(C, i);
            const T* zup = zeta(C, i + 1);
            T* abi = ab + i * m * B;
            T* zbi = zb + i * m * B;  // z̄_{i+1}
            T* KJb = KJbar.data() + (i - 1) * m * d * B;
            for (int64_t j = 0; j < m; ++j) {
                T S[B] = {}, JK[B] = {};
                for (int64_t k = 0; k < d; ++k)
                    for (int b = 0; b < B; ++b) {
                        const T v = KJ[(j * d + k) * B + b];
                        S[b] += v * v;
                        JK[b] += (have_Jbar ? Jbar[(j * d + k) * B + b] : T(0)) * v;
                    }
                T coef[B];
                for (int b = 0; b < B; ++b) {
                    const T a = ai[j * B + b], dl = T(1) - a * a, z = zup[j * B + b];
                    abi[j * B + b] += T(-2) * a * h * Gl[b] * z * S[b] + h * JK[b];
                    zbi[j * B + b] += h * Gl[b] * dl * S[b];
                    coef[b] = T(2) * h * Gl[b] * dl * z;
                }
                for (int64_t k = 0; k < d; ++k)
                    for (int b = 0; b < B; ++b)
                        KJb[(j * d + k) * B + b] = coef[b] * KJ[(j * d + k) * B + b] +
                                                   (have_Jbar ? h * ai[j * B + b] * Jbar[(j * d + k) * B + b] : T(0));
            }
            // KJ_i = K_i J_{i−1}: J̄_{i−1} = J̄_i + K_iᵀ KJ̄_i (K_i's part is added with its other terms)
            const T* Ki = net.K(i);
            for (int64_t k = 0; k < d; ++k)
                matvec(Ki, 1, m, KJb + k * B, d * B, m, have_Jbar ? Jbar + k * B : nullptr, d * B, nullptr,
                       Jbar2 + k * B, d * B, m);
            std::swap(Jbar, Jbar2);
            have_Jbar = true;
        }
        // J_0 = diag(a_0) K_0x
        for (int64_t j = 0; j < m; ++j)
            for (int64_t k = 0; k < d; ++k) {
                const T kv = net.K0[j * dp + k];
                const T* jb = Jbar + (j * d + k) * B;
                for (int b = 0; b < B; ++b) ab[j * B + b] += jb[b] * kv;
                add_dot(gacc(gl.K0 + j * dp + k), a0 + j * B, jb);
            }
    }

    const Net<T>& net;
    Mode mode;
    Layout lay;
    GradLayout gl;
    LaneBuf<T> cache, gxs, xbar, wl, lanes, mdbuf, J0buf, zbar, abar, KJbar, pbar, glanes;
};

struct Scheme {
    int64_t n_steps, S;
    const double *a, *b, *c;  // a (S, S) row-major, b (S), c (S)
    double t0, dt;            // stage time = t0 + (n + c_s) dt
};

// Integrate a block (and in TRAIN mode reverse it): x (d lanes) in place → z; ell, L, R lanes.
template <typename Blk, typename T, int B = Blk::LANES>
void run_block(Blk& blk, const Scheme& sc, T* x, T* ell, T* L, T* R, const T* weight, double alpha,
               double alpha_R) {
    const int64_t d = blk.dim(), S = sc.S;
    const bool lap = blk.mode != VELOCITY;
    alignas(64) T xs[64 * B];  // stage input (d ≤ 64 checked by the caller)
    alignas(64) T gt[B], lp[B];
    for (int b = 0; b < B; ++b) ell[b] = L[b] = R[b] = T(0);
    for (int64_t n = 0; n < sc.n_steps; ++n) {
        T* gx_step = blk.gxs.data() + n * S * d * B;
        alignas(64) T xn[64 * B];
        std::memcpy(xn, x, sizeof(T) * d * B);
        for (int64_t s = 0; s < S; ++s) {
            std::memcpy(xs, x, sizeof(T) * d * B);
            for (int64_t j = 0; j < s; ++j) {
                const T ah = T(-sc.a[s * S + j] * sc.dt);
                if (ah == T(0)) continue;
                for (int64_t k = 0; k < d * B; ++k) xs[k] += ah * gx_step[j * d * B + k];
            }
            T* C = blk.stage(n * S + s);
            const T t = T(sc.t0 + (double(n) + sc.c[s]) * sc.dt);
            blk.stage_forward(C, xs, t, gt, lp);
            const T* gx = C + blk.lay.gx * B;
            std::memcpy(gx_step + s * d * B, gx, sizeof(T) * d * B);
            const T hb = T(sc.b[s] * sc.dt);
            for (int64_t k = 0; k < d * B; ++k) xn[k] -= hb * gx[k];
            if (!lap) continue;
            T* sg = C + blk.lay.sg * B;
            T half[B] = {};
            for (int64_t k = 0; k < d; ++k)
                for (int b = 0; b < B; ++b) half[b] += gx[k * B + b] * gx[k * B + b];
            for (int b = 0; b < B; ++b) {
                const T hs = T(0.5) * half[b], r = gt[b] - hs;
                sg[b] = r > T(0) ? T(1) : (r < T(0) ? T(-1) : T(0));
                ell[b] -= hb * lp[b];
                L[b] += hb * hs;
                R[b] += hb * (r < T(0) ? -r : r);
            }
        }
        std::memcpy(x, xn, sizeof(T) * d * B);
    }
    if (blk.mode != TRAIN) return;
    // Reverse sweep. Per-sample loss L + α C + α_R R, C = const + ½‖z‖² − ℓ, weighted by lane weight.
    alignas(64) T lam[64 * B], G[65 * B], Gl[B];
    T* xbar_all = blk.xbar.data();  // X̄_s of the current step, s = 0..S−1
    alignas(64) T gL[B], gR[B], gl[B];
    for (int b = 0; b < B; ++b) {
        gL[b] = weight[b];
        gR[b] = T(alpha_R) * weight[b];
        gl[b] = -T(alpha) * weight[b];
    }
    for (int64_t k = 0; k < d; ++k)
        for (int b = 0; b < B; ++b) lam[k * B + b] = T(alpha) * weight[b] * x[k * B + b];
    for (int64_t n = sc.n_steps - 1; n >= 0; --n) {
        for (int64_t s = S - 1; s >= 0; --s) {
            const T* C = blk.stage(n * S + s);
            const T* gx = C + blk.lay.gx * B;
            const T* sg = C + blk.lay.sg * B;
            const T hb = T(sc.b[s] * sc.dt);
            T loc[B];
            for (int b = 0; b < B; ++b) {
                loc[b] = hb * (gL[b] - gR[b] * sg[b]);
                G[d * B + b] = hb * gR[b] * sg[b];
                Gl[b] = -hb * gl[b];
            }
            for (int64_t k = 0; k < d; ++k) {
                T* Gk = G + k * B;
                for (int b = 0; b < B; ++b) Gk[b] = -hb * lam[k * B + b] + loc[b] * gx[k * B + b];
                for (int64_t j = s + 1; j < S; ++j) {
                    const T ah = T(sc.a[j * S + s] * sc.dt);
                    if (ah == T(0)) continue;
                    const T* xb = xbar_all + (j * d + k) * B;
                    for (int b = 0; b < B; ++b) Gk[b] -= ah * xb[b];
                }
            }
            blk.stage_backward(C, G, Gl, xbar_all + s * d * B);
        }
        for (int64_t s = 0; s < S; ++s)
            for (int64_t k = 0; k < d * B; ++k) lam[k] += xbar_all[s * d * B + k];
    }
}

// Samples [start, end) of the batch on the calling thread; sums (3) and grads accumulate (doubles).
template <typename T, int B, int D, int M, int NL>
void run_range_as(const Net<T>& net, const Scheme& sc, Mode mode, int64_t start, int64_t end, double alpha,
                  double alpha_R, const T* x_in, T* z_out, T* ell_out, T* L_out, T* R_out, double* sums,
                  double* grads) {
    const int64_t d = net.d;
    Block<T, B, D, M, NL> blk(net, mode, sc.n_steps * sc.S);
    std::vector<double> totals(mode == TRAIN ? blk.gl.size : 0, 0.0);
    const double half_log_2pi = 0.5 * std::log(2.0 * M_PI) * double(d);
    LaneBuf<T> x(d * B);
    alignas(64) T ell[B], L[B], R[B], weight[B];
    for (; start < end; start += B) {
        const int64_t cnt = end - start < B ? end - start : B;
        for (int b = 0; b < B; ++b) {
            const int64_t src = start + (b < cnt ? b : cnt - 1);  // pad with the last sample, weight 0
            weight[b] = b < cnt ? T(1) : T(0);
            for (int64_t k = 0; k < d; ++k) x[k * B + b] = x_in[src * d + k];
        }
        run_block(blk, sc, x.data(), ell, L, R, weight, alpha, alpha_R);
        if (mode == TRAIN) blk.flush(totals.data());
        for (int64_t b = 0; b < cnt; ++b) {
            if (z_out)
                for (int64_t k = 0; k < d; ++k) z_out[(start + b) * d + k] = x[k * B + b];
            if (ell_out) ell_out[start + b] = ell[b];
            if (L_out) L_out[start + b] = L[b];
            if (R_out) R_out[start + b] = R[b];
            if (mode != VELOCITY) {
                double zz = 0;
                for (int64_t k = 0; k < d; ++k) zz += double(x[k * B + b]) * double(x[k * B + b]);
                sums[0] += L[b];
                sums[1] += half_log_2pi + 0.5 * zz - double(ell[b]);
                sums[2] += R[b];
            }
        }
    }
    if (mode == TRAIN) blk.gl.fold(net, totals.data(), grads);
}

// The sizes with a compile-time instance of Block (the paper's 2-D setting), else the generic one.
template <typename T>
void run_range(const Net<T>& net, const Scheme& sc, Mode mode, int64_t start, int64_t end, double alpha,
               double alpha_R, const T* x_in, T* z_out, T* ell_out, T* L_out, T* R_out, double* sums,
               double* grads) {
    constexpr int B = Num<T>::B;
    if (net.d == 2 && net.m == 16 && net.nl == 1)
        run_range_as<T, B, 2, 16, 1>(net, sc, mode, start, end, alpha, alpha_R, x_in, z_out, ell_out, L_out,
                                     R_out, sums, grads);
    else
        run_range_as<T, B, 0, 0, 0>(net, sc, mode, start, end, alpha, alpha_R, x_in, z_out, ell_out, L_out,
                                    R_out, sums, grads);
}

// The batch split into whole blocks over `threads` OpenMP threads (the process's OpenMP runtime: inside
// PyTorch, its own thread pool), each with its own accumulators, summed at the end in a fixed order.
template <typename T>
int run(int mode, int64_t n, int64_t d, int64_t m, int64_t nl, double h, const T* K0, const T* b0, const T* Ks,
        const T* bs, const T* w, const T* AtA, const T* c, int64_t n_steps, int64_t S, const double* ta,
        const double* tb, const double* tc, double t0, double t1, double alpha, double alpha_R, const T* x_in,
        T* z_out, T* ell_out, T* L_out, T* R_out, double* sums, double* grads, int threads) {
    constexpr int B = Num<T>::B;
    if (d < 1 || d > 64 || m < 1 || nl < 1 || S < 1 || S > 16 || n_steps < 1) return 1;
    Net<T> net{d, m, nl, T(h), K0, b0, Ks, bs, w, AtA, c, std::vector<T>(m), T(0)};
    for (int64_t j = 0; j < m; ++j) {
        T qj = T(0);
        for (int64_t k = 0; k < d; ++k) qj += K0[j * (d + 1) + k] * K0[j * (d + 1) + k];
        net.q[j] = qj;
    }
    for (int64_t k = 0; k < d; ++k) net.tr += AtA[k * (d + 1) + k];
    const Scheme sc{n_steps, S, ta, tb, tc, t0, (t1 - t0) / double(n_steps)};
    const int64_t blocks = (n + B - 1) / B;
    const int nt = int(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
    const int64_t grad_size = mode == TRAIN ? m * (d + 1) + m + nl * m * m + nl * m + m + (d + 1) * (d + 1) + d + 1 : 0;
    std::vector<double> part_sums(3 * nt, 0.0), part_grads(grad_size * nt, 0.0);
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
        const int64_t lo = std::min(n, B * (blocks * t / nt)), hi = std::min(n, B * (blocks * (t + 1) / nt));
        run_range<T>(net, sc, Mode(mode), lo, hi, alpha, alpha_R, x_in, z_out, ell_out, L_out, R_out,
                     part_sums.data() + 3 * t, part_grads.data() + grad_size * t);
    }
    for (int t = 0; t < nt; ++t) {
        for (int i = 0; i < 3; ++i) sums[i] += part_sums[3 * t + i];
        for (int64_t i = 0; i < grad_size; ++i) grads[i] += part_grads[grad_size * t + i];
    }
    return 0;
}

}  // namespace

extern "C" {

// mode 0 (TRAIN): loss sums (Σ L, Σ C, Σ R) and the gradient of Σ (L + α C + α_R R) w.r.t.
// [K0, b0, Ks, bs, w, AtA, c], accumulated into sums (3) and grads (doubles; caller zeroes them);
// mode 1 (EVAL): per-sample outputs z (n, d), ell, L, R (n) (any may be null) and sums;
// mode 2 (VELOCITY): z only, integrating ẋ = −∇_xΦ from t0 to t1 (either direction).
// Returns 0, or 1 for unsupported sizes (d > 64 or more than 16 stages).
#define JKO_ARGS(T)                                                                                          \
    int mode, int64_t n, int64_t d, int64_t m, int64_t nl, double h, const T *K0, const T *b0, const T *Ks,  \
        const T *bs, const T *w, const T *AtA, const T *c, int64_t n_steps, int64_t S, const double *ta,     \
        const double *tb, const double *tc, double t0, double t1, double alpha, double alpha_R, const T *x, \
        T *z, T *ell, T *L, T *R, double *sums, double *grads, int threads
#define JKO_PASS mode, n, d, m, nl, h, K0, b0, Ks, bs, w, AtA, c, n_steps, S, ta, tb, tc, t0, t1, alpha, alpha_R, \
                 x, z, ell, L, R, sums, grads, threads

int jko_flow_f32(JKO_ARGS(float)) { return run<float>(JKO_PASS); }
int jko_flow_f64(JKO_ARGS(double)) { return run<double>(JKO_PASS); }
int jko_abi_version(void) { return 2; }
}
