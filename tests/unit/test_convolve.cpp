// Unit tests for core/convolve.c (pgp/convolve.h). Every result is checked
// against a naive whole-raster double loop written here from
// docs/semantics.md#convolve (pgp's rules, deliberate differences included),
// after cutting the raster into tiles the way the renderer does (windows
// padded with zeros / valid = 0 outside the raster).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pgp/convolve.h"

namespace {

const double kOutNodata = -3.4028234663852886e38; // float32 lowest, the default
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

struct KernelDeleter {
    void operator()(pgp_kernel *kernel) const { pgp_kernel_free(kernel); }
};
using KernelPtr = std::unique_ptr<pgp_kernel, KernelDeleter>;

struct KernelSpec {
    std::string name;
    int rows, cols;
    std::vector<double> weights;
    std::vector<unsigned char> valid; // empty: every weight valid
};

KernelPtr MakeKernel(const KernelSpec &spec)
{
    char err[256] = "";
    pgp_kernel *kernel = pgp_kernel_new(spec.weights.data(),
                                        spec.valid.empty() ? nullptr : spec.valid.data(),
                                        spec.rows, spec.cols, err, sizeof err);
    EXPECT_NE(kernel, nullptr) << err;
    return KernelPtr(kernel);
}

KernelSpec RandomKernel(const std::string &name, int rows, int cols, unsigned seed, double lo,
                        double hi)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> weight(lo, hi);
    KernelSpec spec{name, rows, cols, std::vector<double>((size_t)rows * cols), {}};
    for (double &w : spec.weights)
        w = weight(rng);
    return spec;
}

KernelSpec Gaussian(int size, double sigma)
{
    KernelSpec spec{"gaussian" + std::to_string(size), size, size,
                    std::vector<double>((size_t)size * size), {}};
    const int c = size / 2;
    for (int m = 0; m < size; m++)
        for (int n = 0; n < size; n++)
            spec.weights[(size_t)m * size + n] =
                std::exp(-((m - c) * (m - c) + (n - c) * (n - c)) / (2 * sigma * sigma));
    return spec;
}

KernelSpec Ones(int rows, int cols)
{
    return KernelSpec{"ones", rows, cols, std::vector<double>((size_t)rows * cols, 1.0), {}};
}

// A 5x5 asymmetric kernel with a negative weight, a zero weight and a nodata
// pixel whose raw value is NaN.
KernelSpec Asymmetric5x5()
{
    KernelSpec spec = RandomKernel("asym5x5", 5, 5, 7, 0.1, 1.0);
    spec.weights[0 * 5 + 4] = -0.4;
    spec.weights[3 * 5 + 1] = 0.0;
    spec.valid.assign(25, 1);
    spec.valid[2 * 5 + 3] = 0;
    spec.weights[2 * 5 + 3] = kNaN;
    return spec;
}

KernelSpec Ramp4x6() // K[m][n] = 10m + n + 1, SEMANTICS' impulse kernel
{
    KernelSpec spec{"ramp4x6", 4, 6, std::vector<double>(24), {}};
    for (int m = 0; m < 4; m++)
        for (int n = 0; n < 6; n++)
            spec.weights[(size_t)m * 6 + n] = 10 * m + n + 1;
    return spec;
}

struct Raster {
    int w, h;
    std::vector<double> values;
    std::vector<unsigned char> valid; // 0: nodata
};

Raster Constant(int w, int h, double value)
{
    return Raster{w, h, std::vector<double>((size_t)w * h, value),
                  std::vector<unsigned char>((size_t)w * h, 1)};
}

// Random values with nodata holes (a rectangle and scattered pixels) whose
// raw values are garbage the module must ignore; optionally a few NaN / ±inf
// that are NOT nodata, two of them adjacent with opposite signs.
Raster RandomRaster(int w, int h, unsigned seed, bool nonfinite)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> value(-2.0, 3.0), unit(0.0, 1.0);
    Raster r = Constant(w, h, 0);
    for (size_t p = 0; p < r.values.size(); p++) {
        r.values[p] = value(rng);
        if (unit(rng) < 0.05)
            r.valid[p] = 0;
    }
    for (int y = h / 3; y < h / 3 + 12 && y < h; y++)
        for (int x = w / 2; x < w / 2 + 15 && x < w; x++)
            r.valid[(size_t)y * w + x] = 0;
    for (size_t p = 0; p < r.values.size(); p++)
        if (!r.valid[p])
            r.values[p] = (p % 2) ? kNaN : 1e300;
    if (nonfinite) {
        const int spots[][3] = {{5, 7, 0}, {40, 60, 1}, {40, 61, 2}, {100, 20, 1}, {70, 140, 2}};
        for (const auto &s : spots) {
            if (s[0] >= h || s[1] >= w)
                continue;
            const size_t p = (size_t)s[0] * w + s[1];
            r.values[p] = s[2] == 0 ? kNaN : s[2] == 1 ? kInf : -kInf;
            r.valid[p] = 1;
        }
    }
    return r;
}

pgp_convolve_options Options(bool normalize, bool ignore, bool mask, bool has_tol,
                             pgp_convolve_method method, double tol = 1e-8)
{
    pgp_convolve_options o;
    o.normalize_kernel = normalize;
    o.ignore_nodata_and_edges = ignore;
    o.mask_nodata = mask;
    o.has_tol = has_tol;
    o.tol = tol;
    o.method = method;
    return o;
}

std::string Describe(const pgp_convolve_options &o)
{
    return std::string("normalize=") + std::to_string(o.normalize_kernel) +
           " ignore=" + std::to_string(o.ignore_nodata_and_edges) +
           " mask=" + std::to_string(o.mask_nodata) + " tol=" +
           (o.has_tol ? std::to_string(o.tol) : "none") + " method=" +
           (o.method == PGP_CONVOLVE_FFT ? "FFT" : o.method == PGP_CONVOLVE_DIRECT ? "DIRECT"
                                                                                   : "AUTO");
}

// docs/semantics.md#convolve as a gather over the whole raster, pgp's rules:
// kernel nodata weighs 0 in the sum too, zero weights are left out (so a
// non-finite signal value meets only nonzero weights), |v| <= tol -> 0, and
// ignore mode divides where M > 1e-12 * sum|K'| (K' as used).
std::vector<double> Reference(const Raster &s, const KernelSpec &k, const pgp_convolve_options &o)
{
    const int kh = k.rows, kw = k.cols;
    std::vector<double> weights(k.weights);
    double ksum = 0;
    for (size_t t = 0; t < weights.size(); t++) {
        if (!k.valid.empty() && !k.valid[t])
            weights[t] = 0;
        ksum += weights[t];
    }
    double abs_sum = 0;
    for (double &w : weights) {
        if (o.normalize_kernel)
            w /= ksum;
        abs_sum += std::fabs(w);
    }
    std::vector<double> out((size_t)s.w * s.h);
    for (int i = 0; i < s.h; i++) {
        for (int j = 0; j < s.w; j++) {
            double c = 0, m = 0;
            for (int mm = 0; mm < kh; mm++) {
                for (int nn = 0; nn < kw; nn++) {
                    const double w = weights[(size_t)mm * kw + nn];
                    const int r = i + kh / 2 - mm, q = j + kw / 2 - nn;
                    if (w == 0 || r < 0 || r >= s.h || q < 0 || q >= s.w ||
                        !s.valid[(size_t)r * s.w + q])
                        continue;
                    c += w * s.values[(size_t)r * s.w + q];
                    m += w;
                }
            }
            if (o.ignore_nodata_and_edges && m > 1e-12 * abs_sum)
                c = c / m * (o.normalize_kernel ? 1.0 : ksum);
            if (o.has_tol && std::fabs(c) <= o.tol)
                c = 0;
            if (o.mask_nodata && !s.valid[(size_t)i * s.w + j])
                c = kOutNodata;
            out[(size_t)i * s.w + j] = c;
        }
    }
    return out;
}

struct Tiling {
    int tile_w, tile_h;
    int nx(const Raster &s) const { return (s.w + tile_w - 1) / tile_w; }
    int ny(const Raster &s) const { return (s.h + tile_h - 1) / tile_h; }
};

// Output tile (tx, ty) computed from its window, as the renderer would (with
// a worker's scratch, or none).
std::vector<double> ConvolveTile(const pgp_kernel *kernel, const Raster &s,
                                 const pgp_convolve_options &o, Tiling t, int tx, int ty,
                                 pgp_convolve_scratch *scratch = nullptr)
{
    const int kh = pgp_kernel_rows(kernel), kw = pgp_kernel_cols(kernel);
    const int up = kh - 1 - kh / 2, left = kw - 1 - kw / 2;
    const int x0 = tx * t.tile_w, y0 = ty * t.tile_h;
    const int w = std::min(t.tile_w, s.w - x0), h = std::min(t.tile_h, s.h - y0);
    const int ww = w + kw - 1, wh = h + kh - 1;
    std::vector<double> window((size_t)ww * wh, 0.0);
    std::vector<unsigned char> valid((size_t)ww * wh, 0);
    for (int r = 0; r < wh; r++) {
        for (int c = 0; c < ww; c++) {
            const int y = y0 - up + r, x = x0 - left + c;
            if (y < 0 || y >= s.h || x < 0 || x >= s.w)
                continue;
            window[(size_t)r * ww + c] = s.values[(size_t)y * s.w + x];
            valid[(size_t)r * ww + c] = s.valid[(size_t)y * s.w + x];
        }
    }
    std::vector<double> out((size_t)w * h, -12345.0);
    EXPECT_EQ(pgp_convolve_tile(kernel, &o, window.data(), valid.data(), w, h, t.tile_w,
                                t.tile_h, kOutNodata, out.data(), scratch),
              0);
    return out;
}

void Stitch(const Raster &s, Tiling t, int tx, int ty, const std::vector<double> &tile,
            std::vector<double> *whole)
{
    const int x0 = tx * t.tile_w, y0 = ty * t.tile_h;
    const int w = std::min(t.tile_w, s.w - x0);
    for (size_t p = 0; p < tile.size(); p++)
        (*whole)[(size_t)(y0 + p / w) * s.w + x0 + p % w] = tile[p];
}

std::vector<double> ConvolveTiled(const pgp_kernel *kernel, const Raster &s,
                                  const pgp_convolve_options &o, Tiling t)
{
    // One scratch for every tile, edge tiles included, as a worker reuses it.
    pgp_convolve_scratch scratch = {nullptr, 0};
    std::vector<double> whole((size_t)s.w * s.h, -12345.0);
    for (int ty = 0; ty < t.ny(s); ty++)
        for (int tx = 0; tx < t.nx(s); tx++)
            Stitch(s, t, tx, ty, ConvolveTile(kernel, s, o, t, tx, ty, &scratch), &whole);
    pgp_convolve_scratch_free(&scratch);
    return whole;
}

// Within rel * max|ref| (over finite non-nodata values); NaN, ±inf and
// out-nodata positions must match exactly.
::testing::AssertionResult Matches(const std::vector<double> &got, const std::vector<double> &ref,
                                   int w, double rel = 1e-9)
{
    double max_abs = 0;
    for (double v : ref)
        if (std::isfinite(v) && v != kOutNodata)
            max_abs = std::max(max_abs, std::fabs(v));
    size_t bad = 0, first = 0;
    for (size_t p = 0; p < ref.size(); p++) {
        const double g = got[p], r = ref[p];
        const bool ok = std::isnan(r)                             ? std::isnan(g)
                        : (std::isinf(r) || r == kOutNodata)      ? g == r
                                                                  : std::fabs(g - r) <= rel * max_abs;
        if (!ok && bad++ == 0)
            first = p;
    }
    if (bad == 0)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << bad << " of " << ref.size() << " pixels differ; first at row " << first / w
           << ", column " << first % w << ": got " << got[first] << ", expected " << ref[first]
           << " (max |ref| " << max_abs << ")";
}

const pgp_convolve_method kMethods[] = {PGP_CONVOLVE_DIRECT, PGP_CONVOLVE_FFT};

// ------------------------------------------------------------ every shape × every flag

class ConvolveShapes : public ::testing::TestWithParam<KernelSpec> {};

TEST_P(ConvolveShapes, TiledMatchesNaiveReferenceForEveryFlagCombination)
{
    const KernelSpec &spec = GetParam();
    KernelPtr kernel = MakeKernel(spec);
    ASSERT_TRUE(kernel);
    const Tiling tiling{64, 48};
    for (bool nonfinite : {false, true}) {
        const Raster s = RandomRaster(150, 110, 42, nonfinite);
        for (int flags = 0; flags < 16; flags++) {
            // tol 0.25 zeroes a visible share of these outputs, so it is tested.
            pgp_convolve_options o = Options(flags & 1, flags & 2, flags & 4, flags & 8,
                                             PGP_CONVOLVE_AUTO, 0.25);
            const std::vector<double> ref = Reference(s, spec, o);
            for (pgp_convolve_method method : kMethods) {
                o.method = method;
                SCOPED_TRACE(Describe(o) + (nonfinite ? " with NaN/inf" : ""));
                EXPECT_TRUE(Matches(ConvolveTiled(kernel.get(), s, o, tiling), ref, s.w));
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, ConvolveShapes,
    ::testing::Values(KernelSpec{"binomial3x3", 3, 3, {1, 2, 1, 2, 4, 2, 1, 2, 1}, {}}, Ramp4x6(),
                      Asymmetric5x5(), RandomKernel("row1x7", 1, 7, 3, 0.1, 1.0),
                      RandomKernel("column6x1", 6, 1, 4, 0.1, 1.0),
                      RandomKernel("random31x31", 31, 31, 5, 0.0, 1.0), Gaussian(21, 3.0)),
    [](const ::testing::TestParamInfo<KernelSpec> &info) { return info.param.name; });

TEST(Convolve, TolTestsAreNotVacuous)
{
    // The tol = 0.25 runs above only test something if tol changes results.
    const Raster s = RandomRaster(150, 110, 42, false);
    const KernelSpec spec = Asymmetric5x5();
    const auto with = Reference(s, spec, Options(true, true, false, true, PGP_CONVOLVE_AUTO, 0.25));
    const auto without = Reference(s, spec, Options(true, true, false, false, PGP_CONVOLVE_AUTO));
    size_t zeroed = 0;
    for (size_t p = 0; p < with.size(); p++)
        zeroed += with[p] == 0 && without[p] != 0;
    EXPECT_GT(zeroed, 100u);
}

// ------------------------------------------------------------ kernel properties

TEST(Convolve, SeparabilityIsDetected)
{
    EXPECT_TRUE(pgp_kernel_is_separable(MakeKernel(Gaussian(21, 3.0)).get()));
    EXPECT_TRUE(pgp_kernel_is_separable(MakeKernel(Ones(3, 3)).get()));
    EXPECT_TRUE(pgp_kernel_is_separable(MakeKernel(RandomKernel("r", 1, 7, 3, 0.1, 1)).get()));
    EXPECT_FALSE(pgp_kernel_is_separable(MakeKernel(RandomKernel("r", 5, 5, 9, -1, 1)).get()));
    EXPECT_FALSE(pgp_kernel_is_separable(MakeKernel(Asymmetric5x5()).get()));
    // Rank 1 up to a zero where the product is not zero: not separable, or the
    // two passes would give a non-finite input a weight the kernel doesn't have.
    // [[1, 1], [1e-13, 0]] is within the 1e-12 tolerance of [1, 1e-13]^T [1, 1].
    const KernelSpec almost{"almost", 2, 2, {1, 1, 1e-13, 0}, {}};
    EXPECT_FALSE(pgp_kernel_is_separable(MakeKernel(almost).get()));
}

TEST(Convolve, ReachPutsTheCentreAtHalfTheSize)
{
    KernelPtr even = MakeKernel(Ramp4x6());
    int up, down, left, right;
    pgp_kernel_reach(even.get(), &up, &down, &left, &right);
    EXPECT_EQ(up, 1);
    EXPECT_EQ(down, 2);
    EXPECT_EQ(left, 2);
    EXPECT_EQ(right, 3);
    KernelPtr odd = MakeKernel(Asymmetric5x5());
    pgp_kernel_reach(odd.get(), &up, &down, &left, &right);
    EXPECT_EQ(up + down + left + right, 8);
    EXPECT_EQ(up, 2);
    EXPECT_EQ(left, 2);
}

TEST(Convolve, KernelNodataWeighsZeroAlsoInTheSum)
{
    // pygeoprocessing divides by 7 here (it sums the raw -1); pgp by 8.
    KernelSpec spec = Ones(3, 3);
    spec.weights[5] = -1;
    spec.valid.assign(9, 1);
    spec.valid[5] = 0;
    KernelPtr kernel = MakeKernel(spec);
    EXPECT_EQ(pgp_kernel_sum(kernel.get()), 8.0);
    EXPECT_EQ(pgp_kernel_rows(kernel.get()), 3);
    EXPECT_EQ(pgp_kernel_cols(kernel.get()), 3);
    const Raster s = Constant(9, 7, 1.0);
    for (pgp_convolve_method method : kMethods) {
        const pgp_convolve_options o = Options(true, false, true, true, method);
        const std::vector<double> out = ConvolveTiled(kernel.get(), s, o, Tiling{4, 4});
        EXPECT_NEAR(out[3 * 9 + 4], 1.0, 1e-12); // interior: 8 valid weights / 8
        EXPECT_TRUE(Matches(out, Reference(s, spec, o), s.w));
    }
}

// ------------------------------------------------------------ SEMANTICS' worked cases

TEST(Convolve, ImpulseReproducesTheKernelUnflippedAroundItsCentre)
{
    Raster s = Constant(40, 30, 0.0);
    s.values[20 * 40 + 18] = 1.0;
    KernelPtr kernel = MakeKernel(Ramp4x6());
    for (pgp_convolve_method method : kMethods) {
        SCOPED_TRACE(method == PGP_CONVOLVE_FFT ? "FFT" : "DIRECT");
        const std::vector<double> out = ConvolveTiled(
            kernel.get(), s, Options(false, false, false, false, method), Tiling{16, 16});
        EXPECT_NEAR(out[18 * 40 + 15], 1.0, 1e-12);
        EXPECT_NEAR(out[21 * 40 + 20], 36.0, 1e-12);
        for (int r = 0; r < 30; r++) {
            for (int c = 0; c < 40; c++) {
                const bool inside = r >= 18 && r <= 21 && c >= 15 && c <= 20;
                const double expected = inside ? 10 * (r - 18) + (c - 15) + 1 : 0.0;
                ASSERT_NEAR(out[(size_t)r * 40 + c], expected, 1e-12) << r << "," << c;
            }
        }
    }
}

// A downsampled kernel moves each tap to round(offset / scale) from the centre
// and keeps the total weight: seen through the impulse response.
TEST(Convolve, DownsampledKernelMovesTapsToRoundedCoarseOffsets)
{
    char err[256];
    KernelPtr kernel = MakeKernel(Ramp4x6());
    KernelPtr coarse(pgp_kernel_downsample(kernel.get(), 2.0, 3.0, err, sizeof err));
    ASSERT_NE(coarse, nullptr) << err;
    EXPECT_NEAR(pgp_kernel_sum(coarse.get()), pgp_kernel_sum(kernel.get()), 1e-12);
    EXPECT_EQ(pgp_kernel_rows(coarse.get()) % 2, 1);
    EXPECT_EQ(pgp_kernel_cols(coarse.get()) % 2, 1);

    Raster s = Constant(20, 20, 0.0);
    s.values[10 * 20 + 10] = 1.0;
    const std::vector<double> out = ConvolveTiled(
        coarse.get(), s, Options(false, false, false, false, PGP_CONVOLVE_DIRECT), Tiling{8, 8});
    std::vector<double> expected(400, 0.0);
    for (int r = 0; r < 4; r++)     // Ramp4x6: centre (2, 3), weight 10 r + c + 1
        for (int c = 0; c < 6; c++) {
            const int dy = static_cast<int>(std::floor((r - 2) / 2.0 + 0.5));
            const int dx = static_cast<int>(std::floor((c - 3) / 3.0 + 0.5));
            expected[(10 + dy) * 20 + 10 + dx] += 10 * r + c + 1;
        }
    for (int i = 0; i < 400; i++)
        ASSERT_NEAR(out[i], expected[i], 1e-12) << i;

    KernelPtr same(pgp_kernel_downsample(kernel.get(), 1.0, 1.0, err, sizeof err));
    ASSERT_NE(same, nullptr) << err;
    const std::vector<double> fine = ConvolveTiled(
        kernel.get(), s, Options(false, false, false, false, PGP_CONVOLVE_DIRECT), Tiling{8, 8});
    EXPECT_EQ(ConvolveTiled(same.get(), s, Options(false, false, false, false,
                                                   PGP_CONVOLVE_DIRECT),
                            Tiling{8, 8}),
              fine); // scale 1 is the identity (padded to odd, zero taps)
}

TEST(Convolve, ConstantSignalSumsToTheEdgeFormula)
{
    KernelPtr kernel = MakeKernel(Ones(3, 3));
    for (int n : {10, 37}) {
        const Raster s = Constant(n, n, 0.5);
        for (pgp_convolve_method method : kMethods) {
            const std::vector<double> out = ConvolveTiled(
                kernel.get(), s, Options(false, false, true, true, method), Tiling{16, 16});
            double sum = 0;
            for (double v : out)
                sum += v;
            const double expected = 0.5 * (9.0 * n * n - 12.0 * n + 4);
            EXPECT_NEAR(sum, expected, 1e-9 * expected) << "n=" << n;
            EXPECT_NEAR(out[0], 2.0, 1e-12);                  // corner: 4 neighbours
            EXPECT_NEAR(out[(size_t)n + 1], 4.5, 1e-12);      // interior: 9
        }
    }
}

TEST(Convolve, IgnoreNormalizeMaskOverAConstantGivesTheConstant)
{
    Raster s = Constant(30, 20, 0.5);
    for (int p : {0, 31, 32, 33, 250, 599})
        s.valid[p] = 0;
    KernelPtr kernel = MakeKernel(Gaussian(7, 1.5));
    for (pgp_convolve_method method : kMethods) {
        const std::vector<double> out = ConvolveTiled(
            kernel.get(), s, Options(true, true, true, true, method), Tiling{16, 16});
        for (size_t p = 0; p < out.size(); p++) {
            if (s.valid[p])
                EXPECT_NEAR(out[p], 0.5, 1e-12) << p;
            else
                EXPECT_EQ(out[p], kOutNodata) << p;
        }
    }
}

TEST(Convolve, IgnoreWithoutMaskFillsAHole)
{
    Raster s = Constant(10, 10, 1.0);
    s.valid[4 * 10 + 6] = 0;
    s.values[4 * 10 + 6] = -9999;
    KernelPtr kernel = MakeKernel(Ones(2, 2));
    for (pgp_convolve_method method : kMethods) {
        const std::vector<double> out = ConvolveTiled(
            kernel.get(), s, Options(true, true, false, true, method), Tiling{4, 4});
        for (size_t p = 0; p < out.size(); p++)
            EXPECT_NEAR(out[p], 1.0, 1e-12) << p;
    }
}

TEST(Convolve, FootprintWithoutValidPixelsIsExactlyZeroInIgnoreMode)
{
    Raster s = Constant(40, 30, 2.0);
    for (int y = 5; y < 25; y++)
        for (int x = 5; x < 35; x++)
            s.valid[(size_t)y * 40 + x] = 0;
    KernelPtr kernel = MakeKernel(RandomKernel("r", 5, 5, 11, 0.1, 1.0));
    for (pgp_convolve_method method : kMethods) {
        const std::vector<double> out = ConvolveTiled(
            kernel.get(), s, Options(true, true, false, false, method), Tiling{16, 16});
        EXPECT_EQ(out[15 * 40 + 20], 0.0); // deep in the hole, no tol to hide round-off
        EXPECT_NEAR(out[5 * 40 + 5], 2.0, 1e-12); // hole corner: mean of valid neighbours
    }
}

TEST(Convolve, MaskCancelledToRoundOffCountsAsZero)
{
    // At the bottom-left pixel only 0.1, 0.2 and -0.3 fall inside the raster:
    // M is ~3e-17 of round-off, not a weight to divide by (C/M * ksum = 15).
    const KernelSpec spec{"cancel", 2, 4, {1, 2, 3, 4, 0.1, 0.2, -0.3, 5}, {}};
    KernelPtr kernel = MakeKernel(spec);
    const Raster s = Constant(12, 9, 1.0);
    for (pgp_convolve_method method : kMethods) {
        const pgp_convolve_options o = Options(false, true, true, false, method);
        const std::vector<double> out = ConvolveTiled(kernel.get(), s, o, Tiling{8, 8});
        EXPECT_LT(std::fabs(out[8 * 12 + 0]), 1e-12);
        EXPECT_NEAR(out[4 * 12 + 5], 15.0, 1e-12);
        EXPECT_TRUE(Matches(out, Reference(s, spec, o), s.w));
    }
}

// ------------------------------------------------------------ sizes and methods

TEST(Convolve, KernelLargerThanTheRaster)
{
    const Raster s = RandomRaster(20, 15, 8, false);
    const KernelSpec spec = RandomKernel("big", 41, 41, 12, 0.0, 1.0);
    KernelPtr kernel = MakeKernel(spec);
    for (int flags : {0, 1, 3, 6, 15}) {
        pgp_convolve_options o =
            Options(flags & 1, flags & 2, flags & 4, flags & 8, PGP_CONVOLVE_AUTO);
        const std::vector<double> ref = Reference(s, spec, o);
        for (pgp_convolve_method method : kMethods) {
            o.method = method;
            SCOPED_TRACE(Describe(o));
            EXPECT_TRUE(Matches(ConvolveTiled(kernel.get(), s, o, Tiling{8, 8}), ref, s.w));
        }
    }
}

TEST(Convolve, FaintKernelTailInIgnoreModeStaysExactInFft)
{
    // Pixels whose only valid neighbours sit under the gaussian's 1e-11 tail:
    // C/M there would magnify FFT round-off; the result must still be exact.
    Raster s = RandomRaster(60, 60, 13, false);
    for (int y = 0; y < 60; y++)
        for (int x = 0; x < 60; x++)
            s.valid[(size_t)y * 60 + x] = (x % 10 == 0 && y % 10 == 0);
    const KernelSpec spec = Gaussian(21, 2.0);
    KernelPtr kernel = MakeKernel(spec);
    pgp_convolve_options o = Options(true, true, false, false, PGP_CONVOLVE_FFT);
    EXPECT_TRUE(Matches(ConvolveTiled(kernel.get(), s, o, Tiling{32, 32}), Reference(s, spec, o),
                        s.w));
}

TEST(Convolve, DirectAndFftAgree)
{
    const Raster s = RandomRaster(150, 110, 21, true);
    const KernelSpec spec = RandomKernel("r", 17, 13, 14, -0.2, 1.0);
    KernelPtr kernel = MakeKernel(spec);
    for (bool ignore : {false, true}) {
        pgp_convolve_options direct = Options(true, ignore, true, false, PGP_CONVOLVE_DIRECT);
        pgp_convolve_options fft = direct;
        fft.method = PGP_CONVOLVE_FFT;
        EXPECT_TRUE(Matches(ConvolveTiled(kernel.get(), s, fft, Tiling{64, 48}),
                            ConvolveTiled(kernel.get(), s, direct, Tiling{64, 48}), s.w));
    }
}

TEST(Convolve, PickChoosesEachMethodBySize)
{
    KernelPtr small = MakeKernel(Ones(3, 3));
    KernelPtr large = MakeKernel(RandomKernel("r", 101, 101, 15, 0.0, 1.0));
    EXPECT_EQ(pgp_convolve_pick(small.get(), 256, 256, PGP_CONVOLVE_AUTO), PGP_CONVOLVE_DIRECT);
    EXPECT_EQ(pgp_convolve_pick(large.get(), 256, 256, PGP_CONVOLVE_AUTO), PGP_CONVOLVE_FFT);
    EXPECT_EQ(pgp_convolve_pick(small.get(), 256, 256, PGP_CONVOLVE_FFT), PGP_CONVOLVE_FFT);
    EXPECT_EQ(pgp_convolve_pick(large.get(), 256, 256, PGP_CONVOLVE_DIRECT), PGP_CONVOLVE_DIRECT);
    // A separable kernel stays direct longer than a full one of the same size.
    KernelPtr gauss = MakeKernel(Gaussian(21, 3.0));
    KernelPtr full = MakeKernel(RandomKernel("r", 21, 21, 16, 0.0, 1.0));
    EXPECT_EQ(pgp_convolve_pick(gauss.get(), 256, 256, PGP_CONVOLVE_AUTO), PGP_CONVOLVE_DIRECT);
    EXPECT_EQ(pgp_convolve_pick(full.get(), 256, 256, PGP_CONVOLVE_AUTO), PGP_CONVOLVE_FFT);
}

TEST(Convolve, AutoComputesWhatThePickedMethodComputes)
{
    const Raster s = RandomRaster(150, 110, 22, false);
    for (int size : {3, 41}) {
        KernelPtr kernel = MakeKernel(RandomKernel("r", size, size, 17, 0.0, 1.0));
        pgp_convolve_options o = Options(false, true, true, true, PGP_CONVOLVE_AUTO);
        const Tiling tiling{64, 48};
        const std::vector<double> automatic = ConvolveTiled(kernel.get(), s, o, tiling);
        o.method = pgp_convolve_pick(kernel.get(), tiling.tile_w, tiling.tile_h, PGP_CONVOLVE_AUTO);
        const std::vector<double> picked = ConvolveTiled(kernel.get(), s, o, tiling);
        EXPECT_EQ(0, std::memcmp(automatic.data(), picked.data(), picked.size() * sizeof(double)));
    }
}

TEST(Convolve, ATileDoesNotDependOnWhichOtherTilesExist)
{
    const Raster s = RandomRaster(150, 110, 23, true);
    const KernelSpec spec = RandomKernel("r", 9, 12, 18, -0.3, 1.0);
    const Tiling tiling{64, 48};
    for (pgp_convolve_method method : kMethods) {
        const pgp_convolve_options o = Options(true, true, false, true, method);
        for (auto tile : {std::make_pair(1, 1), std::make_pair(2, 2)}) { // inner, edge
            KernelPtr fresh = MakeKernel(spec);
            const std::vector<double> alone =
                ConvolveTile(fresh.get(), s, o, tiling, tile.first, tile.second);
            // First a transform of the same width and a smaller height: the
            // cached spectra must be told apart by both dimensions.
            KernelPtr used = MakeKernel(spec);
            EXPECT_TRUE(Matches(ConvolveTiled(used.get(), s, o, Tiling{64, 32}),
                                Reference(s, spec, o), s.w));
            ConvolveTiled(used.get(), s, o, tiling);
            const std::vector<double> after =
                ConvolveTile(used.get(), s, o, tiling, tile.first, tile.second);
            EXPECT_EQ(0, std::memcmp(alone.data(), after.data(), alone.size() * sizeof(double)));
        }
    }
}

TEST(Convolve, EightThreadsGiveTheSerialResultBitForBit)
{
    const Raster s = RandomRaster(150, 110, 24, true);
    const KernelSpec spec = RandomKernel("r", 23, 19, 19, 0.0, 1.0);
    const pgp_convolve_options o = Options(true, true, true, true, PGP_CONVOLVE_FFT);
    const Tiling tilings[] = {{32, 32}, {40, 24}};
    KernelPtr serial_kernel = MakeKernel(spec);
    std::vector<std::vector<double>> serial;
    for (Tiling t : tilings)
        serial.push_back(ConvolveTiled(serial_kernel.get(), s, o, t));
    for (int round = 0; round < 3; round++) {
        KernelPtr kernel = MakeKernel(spec); // fresh: the threads race to make its spectra
        for (size_t ti = 0; ti < 2; ti++) {
            const Tiling t = tilings[ti];
            std::vector<std::vector<double>> tiles((size_t)t.nx(s) * t.ny(s));
            std::atomic<int> next{0}, ready{0};
            std::vector<std::thread> threads;
            for (int n = 0; n < 8; n++) {
                threads.emplace_back([&] {
                    ready++;
                    while (ready.load() < 8) {
                    }
                    for (int i; (i = next++) < (int)tiles.size();)
                        tiles[i] = ConvolveTile(kernel.get(), s, o, t, i % t.nx(s), i / t.nx(s));
                });
            }
            for (std::thread &thread : threads)
                thread.join();
            std::vector<double> whole((size_t)s.w * s.h);
            for (size_t i = 0; i < tiles.size(); i++)
                Stitch(s, t, (int)i % t.nx(s), (int)i / t.nx(s), tiles[i], &whole);
            EXPECT_EQ(0, std::memcmp(whole.data(), serial[ti].data(), whole.size() * sizeof(double)))
                << "round " << round << ", tiling " << ti;
        }
    }
}

TEST(Convolve, ADeclaredTileSizeBelowTheTileIsRaised)
{
    // Contract breach (tile_w, tile_h < w, h): the transform still holds the window.
    const Raster s = RandomRaster(40, 30, 25, false);
    const KernelSpec spec = RandomKernel("r", 7, 7, 20, 0.0, 1.0);
    KernelPtr kernel = MakeKernel(spec);
    const pgp_convolve_options o = Options(false, true, true, true, PGP_CONVOLVE_FFT);
    const Tiling whole{40, 30};
    const std::vector<double> window_tile = ConvolveTile(kernel.get(), s, o, whole, 0, 0);
    std::vector<double> window(46 * 36, 0.0);
    std::vector<unsigned char> valid(46 * 36, 0);
    for (int y = 0; y < 30; y++) {
        for (int x = 0; x < 40; x++) {
            window[(size_t)(y + 3) * 46 + x + 3] = s.values[(size_t)y * 40 + x];
            valid[(size_t)(y + 3) * 46 + x + 3] = s.valid[(size_t)y * 40 + x];
        }
    }
    std::vector<double> out(40 * 30);
    ASSERT_EQ(pgp_convolve_tile(kernel.get(), &o, window.data(), valid.data(), 40, 30, 8, 8,
                                kOutNodata, out.data(), nullptr),
              0);
    EXPECT_TRUE(Matches(out, Reference(s, spec, o), s.w));
    EXPECT_EQ(0, std::memcmp(out.data(), window_tile.data(), out.size() * sizeof(double)));
}

// ------------------------------------------------------------ errors

std::string KernelError(const std::vector<double> &weights, const unsigned char *valid, int rows,
                        int cols)
{
    char err[256] = "untouched";
    pgp_kernel *kernel = pgp_kernel_new(weights.data(), valid, rows, cols, err, sizeof err);
    EXPECT_EQ(kernel, nullptr);
    pgp_kernel_free(kernel);
    return err;
}

TEST(Convolve, KernelErrorsSayWhatIsWrong)
{
    const std::vector<double> nine(9, 1.0);
    EXPECT_EQ(KernelError(nine, nullptr, 0, 3), "kernel of 0x3 is empty");
    EXPECT_EQ(KernelError(nine, nullptr, 3, 0), "kernel of 3x0 is empty");
    EXPECT_EQ(KernelError(nine, nullptr, -2, 3), "kernel of -2x3 is empty");
    EXPECT_EQ(KernelError(nine, nullptr, 2050, 3), "kernel of 2050x3 exceeds the 2049x2049 limit");
    EXPECT_EQ(KernelError(nine, nullptr, 3, 2050), "kernel of 3x2050 exceeds the 2049x2049 limit");
    std::vector<double> bad(nine);
    bad[2 * 3 + 1] = kNaN;
    EXPECT_EQ(KernelError(bad, nullptr, 3, 3), "kernel weight at row 2, column 1 is not finite");
    bad[2 * 3 + 1] = -kInf;
    EXPECT_EQ(KernelError(bad, nullptr, 3, 3), "kernel weight at row 2, column 1 is not finite");
    const std::vector<unsigned char> none(9, 0);
    EXPECT_EQ(KernelError(nine, none.data(), 3, 3), "every kernel pixel is nodata");

    // A non-finite weight that is nodata is fine; so is the largest size.
    std::vector<unsigned char> valid(9, 1);
    valid[2 * 3 + 1] = 0;
    char err[64] = "";
    KernelPtr ok(pgp_kernel_new(bad.data(), valid.data(), 3, 3, err, sizeof err));
    EXPECT_TRUE(ok) << err;
    const std::vector<double> line(PGP_KERNEL_MAX_SIZE, 1.0);
    EXPECT_TRUE(KernelPtr(pgp_kernel_new(line.data(), nullptr, 1, PGP_KERNEL_MAX_SIZE, err, 64)));

    // A short buffer is truncated, a missing one tolerated.
    char shortbuf[8];
    EXPECT_EQ(pgp_kernel_new(nine.data(), nullptr, 0, 3, shortbuf, sizeof shortbuf), nullptr);
    EXPECT_STREQ(shortbuf, "kernel ");
    EXPECT_EQ(pgp_kernel_new(nine.data(), nullptr, 0, 3, nullptr, 0), nullptr);
}

} // namespace

// The plugin calls this when it loads; so does the test binary.
class ConvolveEnvironment : public ::testing::Environment {
  public:
    void SetUp() override { pgp_convolve_init(); }
};
static ::testing::Environment *const convolve_environment =
    ::testing::AddGlobalTestEnvironment(new ConvolveEnvironment);
