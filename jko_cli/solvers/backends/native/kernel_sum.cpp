// Gaussian kernel sums for the MMD statistics (DESIGN.md §3, jko_cli/metrics.py):
//   S = Σ_i Σ_j Σ_g exp(−γ_g ‖x_i − y_j‖²)   (i = j left out when x is y),
// in double, without forming the kernel matrix: the torch version computes cdist, its square and one exp
// per bandwidth as separate passes over memory, and at 6000 × 6000 spends most of a run's final
// evaluation there. Here one pass over y per row of x: y is held coordinate-major so the j loop is SIMD.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd_math.hpp"

namespace {

constexpr int64_t MAX_GAMMAS = 8;

double row_sum(const double* __restrict xi, const double* __restrict yt, int64_t ny, int64_t d,
               const double* __restrict gammas, int64_t ng, int64_t skip) {
    double total = 0.0;
    constexpr int64_t CHUNK = 256;  // distances of one chunk stay in L1 between the bandwidths
    double d2[CHUNK];
    for (int64_t j0 = 0; j0 < ny; j0 += CHUNK) {
        const int64_t len = std::min(CHUNK, ny - j0);
        for (int64_t j = 0; j < len; ++j) d2[j] = 0.0;
        for (int64_t k = 0; k < d; ++k) {
            const double xk = xi[k];
            const double* yk = yt + k * ny + j0;
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) {
                const double diff = xk - yk[j];
                d2[j] += diff * diff;
            }
        }
        for (int64_t g = 0; g < ng; ++g) {
            const double gam = gammas[g];
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < len; ++j) s += jko::exp_neg(-gam * d2[j]);
            total += s;
        }
        if (skip >= j0 && skip < j0 + len)
            for (int64_t g = 0; g < ng; ++g) total -= jko::exp_neg(-gammas[g] * d2[skip - j0]);
    }
    return total;
}

}  // namespace

extern "C" {

// x (nx, d), y (ny, d) row-major doubles; gammas (ng ≤ 8) > 0. same ≠ 0: x is y and the diagonal is left out.
// Returns the sum, or NaN for unsupported arguments.
double jko_gauss_kernel_sum(int64_t nx, int64_t ny, int64_t d, const double* x, const double* y,
                            const double* gammas, int64_t ng, int same, int threads) {
    if (ng < 1 || ng > MAX_GAMMAS || d < 1) return __builtin_nan("");
    std::vector<double> yt(ny * d);
    for (int64_t j = 0; j < ny; ++j)
        for (int64_t k = 0; k < d; ++k) yt[k * ny + j] = y[j * d + k];
    const int nt = int(std::max<int64_t>(1, std::min<int64_t>(threads, nx)));
    std::vector<double> part(nt, 0.0);
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
        double s = 0.0;
        for (int64_t i = nx * t / nt; i < nx * (t + 1) / nt; ++i)
            s += row_sum(x + i * d, yt.data(), ny, d, gammas, ng, same ? i : -1);
        part[t] = s;
    }
    double total = 0.0;
    for (double p : part) total += p;
    return total;
}
}
