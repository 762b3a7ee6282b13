// Unit tests for the instruction-set levels (pgp/simd.h): every level this CPU
// runs gives the same bits as the reference, for the vector math (against
// SLEEF's scalar build of the same algorithm) and for the convolution taps
// (against the baseline level), over random data and edge cases: NaN, infinities,
// subnormals, signed zeros, lengths that are not a multiple of any vector width.
// The VM's arithmetic is compared at every level with a naive evaluator in
// test_expr.cpp (ExprRandom); the accuracy against numpy is measured in
// tests/gdal/test_calc_accuracy.py.
#include <gtest/gtest.h>
#include <sleef.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "isa_levels.h"
#include "pgp/convolve.h"
#include "pgp/expr.h"
#include "pgp/simd.h"

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();
const double kDenormMin = std::numeric_limits<double>::denorm_min();
const double kMin = std::numeric_limits<double>::min();
const double kMax = std::numeric_limits<double>::max();

// SLEEF's NaN signs differ between widths (and NaN payloads follow operand
// order): the vector math promises no NaN bits, the VM and the convolution,
// which write the output, make every NaN the one quiet NaN.
bool same_value(double x, double y)
{
    if (std::isnan(x) && std::isnan(y))
        return true;
    return std::memcmp(&x, &y, sizeof x) == 0;
}

bool same_bits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }

std::string level_name(const testing::TestParamInfo<pgp_isa> &info)
{
    return pgp_isa_name(info.param);
}

// Edge cases, then doubles of every magnitude (random bit patterns, NaNs with
// payloads included), then values near the functions' interesting range.
std::vector<double> test_arguments(unsigned seed)
{
    std::vector<double> x = {kNaN, -kNaN, kInf, -kInf, 0.0, -0.0, kDenormMin, -kDenormMin,
                             kMin, -kMin, kMin / 3, kMax, -kMax, 1.0, -1.0, 0.5, -0.5, 2.0,
                             10.0, 1e-300, 1e300, -1e300, 1e22, 6381956970095103.0 * 0x1p797,
                             709.78, 709.79, -745.1, -745.2, 710.5, -710.5, 3.141592653589793,
                             1.5707963267948966, 0.7853981633974483, 1e-8, 20.0, 40.0};
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> near(-10.0, 10.0);
    for (int k = 0; k < 3000; k++) {
        uint64_t bits = rng();
        double v;
        std::memcpy(&v, &bits, sizeof v);
        x.push_back(v);
        x.push_back(near(rng));
    }
    return x;
}

#define UNARY_REFERENCE(name) {#name, &pgp_vec_math::name, Sleef_cinz_##name##d1_u10purec},
#define BINARY_REFERENCE(name) {#name, &pgp_vec_math::name, Sleef_cinz_##name##d1_u10purec},
const struct {
    const char *name;
    pgp_vec_unary pgp_vec_math::*member;
    decltype(&Sleef_cinz_expd1_u10purec) reference; // sleef.h's declarations, as they are
} kUnary[] = {PGP_VEC_UNARY_FUNCTIONS(UNARY_REFERENCE)};
const struct {
    const char *name;
    pgp_vec_binary pgp_vec_math::*member;
    decltype(&Sleef_cinz_powd1_u10purec) reference;
} kBinary[] = {PGP_VEC_BINARY_FUNCTIONS(BINARY_REFERENCE)};

class VecMath : public testing::TestWithParam<pgp_isa> {};

TEST_P(VecMath, UnaryFunctionsMatchScalarSleefBitForBit)
{
    const pgp_vec_math *math = pgp_vec_math_for(GetParam());
    const std::vector<double> x = test_arguments(1);
    for (const auto &f : kUnary) {
        std::vector<double> y(x.size(), -12345.0);
        (math->*f.member)(x.data(), y.data(), x.size()); // x.size() is odd
        for (size_t i = 0; i < x.size(); i++)
            ASSERT_PRED2(same_value, f.reference(x[i]), y[i])
                << f.name << "(" << x[i] << ") at " << i;
    }
}

TEST_P(VecMath, BinaryFunctionsMatchScalarSleefBitForBit)
{
    const pgp_vec_math *math = pgp_vec_math_for(GetParam());
    const std::vector<double> x = test_arguments(2);
    std::vector<double> z = test_arguments(3);
    std::reverse(z.begin(), z.end()); // every edge case meets random values
    for (const auto &f : kBinary) {
        std::vector<double> y(x.size(), -12345.0);
        (math->*f.member)(x.data(), z.data(), y.data(), x.size());
        for (size_t i = 0; i < x.size(); i++)
            ASSERT_PRED2(same_value, f.reference(x[i], z[i]), y[i])
                << f.name << "(" << x[i] << ", " << z[i] << ") at " << i;
        // Every edge case against every other, in both orders.
        for (size_t i = 0; i < 36; i++) {
            std::vector<double> column(36, x[i]), row(x.begin(), x.begin() + 36), out(36);
            (math->*f.member)(column.data(), row.data(), out.data(), out.size());
            for (size_t j = 0; j < 36; j++)
                ASSERT_PRED2(same_value, f.reference(x[i], x[j]), out[j])
                    << f.name << "(" << x[i] << ", " << x[j] << ")";
        }
    }
}

// Every length from 0 to 19 (whole vectors, tails, both), in place too: the
// elements past n are left alone.
TEST_P(VecMath, EveryLengthAndInPlace)
{
    const pgp_vec_math *math = pgp_vec_math_for(GetParam());
    const std::vector<double> x = test_arguments(4);
    for (size_t n = 0; n < 20; n++) {
        std::vector<double> y(x.begin(), x.begin() + 24);
        math->log(y.data(), y.data(), n);
        std::vector<double> z(x.begin() + 24, x.begin() + 48);
        math->pow(x.data(), z.data(), z.data(), n);
        for (size_t i = 0; i < 24; i++) {
            EXPECT_PRED2(same_value, i < n ? Sleef_cinz_logd1_u10purec(x[i]) : x[i], y[i])
                << "n " << n << ", i " << i;
            EXPECT_PRED2(same_value,
                         i < n ? Sleef_cinz_powd1_u10purec(x[i], x[24 + i]) : x[24 + i], z[i])
                << "n " << n << ", i " << i;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, VecMath, testing::ValuesIn(runnable_isas()), level_name);

// ---- convolution taps ---------------------------------------------------------

struct KernelDeleter {
    void operator()(pgp_kernel *kernel) const { pgp_kernel_free(kernel); }
};
using KernelPtr = std::unique_ptr<pgp_kernel, KernelDeleter>;

KernelPtr make_kernel(const std::vector<double> &weights, int rows, int cols)
{
    char err[256];
    pgp_kernel *k = pgp_kernel_new(weights.data(), nullptr, rows, cols, err, sizeof err);
    EXPECT_NE(k, nullptr) << err;
    return KernelPtr(k);
}

// A w x h tile of kernel over a random window with NaN, infinities, subnormals,
// huge values and nodata, at the given level.
std::vector<double> convolve_at(pgp_isa isa, const pgp_kernel *k, const pgp_convolve_options &o,
                                int w, int h, unsigned seed)
{
    int up, down, left, right;
    pgp_kernel_reach(k, &up, &down, &left, &right);
    const size_t window_w = (size_t)w + left + right, window_h = (size_t)h + up + down;
    std::vector<double> window(window_w * window_h);
    std::vector<unsigned char> valid(window.size());
    std::mt19937 rng(seed);
    const double specials[] = {kNaN, kInf, -kInf, kDenormMin, -kMin / 7, 1e300, -0.0};
    for (size_t p = 0; p < window.size(); p++) {
        window[p] = std::uniform_real_distribution<double>(-100.0, 100.0)(rng);
        if (rng() % 97 == 0)
            window[p] = specials[rng() % std::size(specials)];
        valid[p] = rng() % 13 != 0;
    }
    std::vector<double> out((size_t)w * h, -12345.0);
    ScopedIsa level(isa);
    EXPECT_EQ(pgp_convolve_tile(k, &o, window.data(), valid.data(), w, h, w, h, -9999.0,
                                out.data(), nullptr),
              0);
    return out;
}

class ConvolveLevels : public testing::TestWithParam<pgp_isa> {};

TEST_P(ConvolveLevels, SameBitsAsBaseline)
{
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> weight(-1.0, 2.0);
    std::vector<double> full(25), u(7), v(3), sparse(9 * 9, 0.0), tiny(25);
    for (double &x : full)
        x = weight(rng);
    for (double &x : u)
        x = weight(rng);
    for (double &x : v)
        x = weight(rng);
    std::vector<double> outer;
    for (double a : u)
        for (double b : v)
            outer.push_back(a * b);
    for (size_t t = 0; t < sparse.size(); t += 4)
        sparse[t] = weight(rng);
    for (double &x : tiny)
        x = kDenormMin * (double)(rng() % 5); // products and sums of subnormals
    const struct {
        const char *name;
        KernelPtr kernel;
    } kernels[] = {{"5x5", make_kernel(full, 5, 5)},
                   {"7x3 separable", make_kernel(outer, 7, 3)},
                   {"9x9 sparse", make_kernel(sparse, 9, 9)},
                   {"1x7", make_kernel(u, 1, 7)},
                   {"5x5 subnormal", make_kernel(tiny, 5, 5)}};
    ASSERT_TRUE(pgp_kernel_is_separable(kernels[1].kernel.get()));
    const int sizes[][2] = {{1, 1}, {3, 2}, {17, 5}, {37, 23}, {64, 64}, {131, 7}};
    for (const auto &k : kernels) {
        for (int ignore = 0; ignore < 2; ++ignore) {
            pgp_convolve_options o = {};
            o.method = PGP_CONVOLVE_DIRECT;
            o.ignore_nodata_and_edges = ignore;
            o.normalize_kernel = ignore;
            o.mask_nodata = ignore;
            for (const auto &size : sizes) {
                const unsigned seed = (unsigned)(size[0] * 1000 + size[1]);
                const std::vector<double> expected =
                    convolve_at(PGP_ISA_BASELINE, k.kernel.get(), o, size[0], size[1], seed);
                const std::vector<double> got =
                    convolve_at(GetParam(), k.kernel.get(), o, size[0], size[1], seed);
                for (size_t p = 0; p < got.size(); p++)
                    ASSERT_PRED2(same_bits, expected[p], got[p])
                        << k.name << ", ignore " << ignore << ", " << size[0] << "x" << size[1]
                        << " at " << p;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, ConvolveLevels, testing::ValuesIn(runnable_isas()), level_name);

// ---- the VM, NaN bits included --------------------------------------------------

std::vector<double> eval_at(pgp_isa isa, const char *text, const std::vector<double> &a,
                            const std::vector<double> &b)
{
    const pgp_expr_var vars[] = {{"A", pgp_nodata{0, 0, 0.0}}, {"B", pgp_nodata{0, 0, 0.0}}};
    char err[256];
    ScopedIsa level(isa); // constants fold at this level too
    pgp_expr *expr = pgp_expr_compile(text, vars, 2, err, sizeof err);
    EXPECT_NE(expr, nullptr) << err;
    std::vector<double> out(a.size(), -12345.0);
    const double *inputs[] = {a.data(), b.data()};
    if (expr != nullptr) {
        EXPECT_EQ(pgp_expr_eval(expr, inputs, a.size(), out.data()), 0);
    }
    pgp_expr_free(expr);
    return out;
}

class VmLevels : public testing::TestWithParam<pgp_isa> {};

// Every operator and function, NaNs of both signs and with payloads, on an odd
// number of pixels (several chunks and a tail): the baseline's bits exactly.
TEST_P(VmLevels, SameBitsAsBaselineNaNsIncluded)
{
    std::vector<double> a = test_arguments(5), b = test_arguments(6);
    std::reverse(b.begin(), b.end());
    const char *const expressions[] = {
        "A", "-A", "A + B", "B + A", "A - B", "A * B", "A / B", "A % B", "fmod(A, B)",
        "A ** B", "pow(B, 0.5)", "atan2(A, B)", "min(A, B, -A)", "max(B, A)", "clamp(A, B, 3)",
        "A == B", "A < B", "A && B", "!A", "A ? B : A * B", "isnan(A) + isinf(B)",
        "abs(A) + sqrt(A) + floor(A) + ceil(B) + round(A) + trunc(B)",
        "exp(A) + log(B) + log10(A) + log2(B)", "sin(A) * cos(B) - tan(A)",
        "asin(A) + acos(B) + atan(A)", "sinh(A) + cosh(B) * tanh(A)",
        "A * 0 + B * 0 + log(-1) + sqrt(-1) + log(nan)", "(A + B) * (A - B) / 2 + 1e-310 * A",
    };
    for (const char *text : expressions) {
        const std::vector<double> expected = eval_at(PGP_ISA_BASELINE, text, a, b);
        const std::vector<double> got = eval_at(GetParam(), text, a, b);
        for (size_t i = 0; i < got.size(); i++)
            ASSERT_PRED2(same_bits, expected[i], got[i])
                << text << " with A = " << a[i] << ", B = " << b[i];
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, VmLevels, testing::ValuesIn(runnable_isas()), level_name);

// The active level is one this CPU runs; forcing one it does not run fails
// and changes nothing.
TEST(IsaLevels, ForceRefusesWhatTheCpuLacks)
{
    const pgp_isa active = pgp_isa_active();
    EXPECT_TRUE(pgp_isa_supported(active));
    EXPECT_TRUE(pgp_isa_supported(PGP_ISA_BASELINE));
    EXPECT_EQ(pgp_isa_force(PGP_ISA_COUNT), -1);
    EXPECT_EQ(pgp_isa_active(), active);
    for (pgp_isa isa : runnable_isas()) {
        ScopedIsa level(isa);
        EXPECT_EQ(pgp_isa_active(), isa);
    }
    EXPECT_EQ(pgp_isa_active(), active);
}

} // namespace
