// Vectorisable elementary functions shared by the native kernels (flow_kernel.cpp, kernel_sum.cpp):
// exp of a non-positive argument and log(1 + e) on [0, 1], as plain arithmetic the compiler can put in
// SIMD lanes (libm's calls cannot be). Accuracy: a few ulp (tests/unit/solvers/test_native.py checks both kernels
// against torch to 1e-10 relative in double).
#pragma once

#include <cstdint>

namespace jko {

template <typename T>
struct Num;

template <>
struct Num<float> {
    using U = uint32_t;
    static constexpr int B = 64;  // lanes per block
    static constexpr float LO = -80.0f;  // exp(−80) ≈ 1.8e−35: below, e is 0 to float precision
    static constexpr float SHIFT = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
    static constexpr int MANT = 23, BIAS = 127, EXP_DEG = 7, LOG_TERMS = 8;
};

template <>
struct Num<double> {
    using U = uint64_t;
    static constexpr int B = 32;
    static constexpr double LO = -700.0;
    static constexpr double SHIFT = 6755399441055744.0;  // 1.5·2^52
    static constexpr int MANT = 52, BIAS = 1023, EXP_DEG = 13, LOG_TERMS = 18;
};

// c[i] = 1 / i!, i = 0..D (the Taylor coefficients of exp), computed at compile time
template <typename T, int D>
struct InvFactorials {
    T c[D + 1];
    constexpr InvFactorials() : c() {
        double f = 1.0;
        for (int i = 0; i <= D; ++i) {
            f *= i > 0 ? double(i) : 1.0;
            c[i] = T(1.0 / f);
        }
    }
};

// exp(x) for x ≤ 0: x = n ln 2 + r, |r| ≤ ln2/2, exp(r) by its Taylor polynomial, 2^n from the bits.
template <typename T>
inline T exp_neg(T x) {
    using N = Num<T>;
    using U = typename N::U;
    x = x < N::LO ? N::LO : x;
    const T kf = x * T(1.4426950408889634) + N::SHIFT;
    const U kbits = __builtin_bit_cast(U, kf);
    const T k = kf - N::SHIFT;
    const T r = (x - k * T(0.693145751953125)) - k * T(1.4286068203094172321e-6);
    constexpr InvFactorials<T, N::EXP_DEG> inv;
    T p = inv.c[N::EXP_DEG];
    for (int i = N::EXP_DEG - 1; i >= 0; --i) p = p * r + inv.c[i];  // Horner on the Taylor series: one FMA a term
    const U scale = (kbits - __builtin_bit_cast(U, N::SHIFT) + U(N::BIAS)) << N::MANT;
    return p * __builtin_bit_cast(T, scale);
}

// log(1 + e) = 2 atanh(w) for w = e / (2 + e) ∈ [0, 1/3] (e ∈ [0, 1]), by its series.
template <typename T>
inline T log1p_series(T w) {
    const T w2 = w * w;
    T s = T(0);
    for (int k = Num<T>::LOG_TERMS - 1; k >= 0; --k) s = T(1) / T(2 * k + 1) + w2 * s;
    return T(2) * w * s;
}

}  // namespace jko
