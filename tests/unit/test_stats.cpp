// test_stats.cpp — tile summaries and their merge (core/stats.c) against a naive
// two-pass reference in long double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

extern "C" {
#include "pgp/stats.h"
}

namespace {

struct Reference {
    uint64_t valid = 0;
    double min = 0, max = 0, mean = 0, m2 = 0;
};

// Skips NaN and (when given) values equal to nodata.
Reference Naive(const std::vector<double> &v, const double *nodata)
{
    Reference r;
    long double sum = 0;
    for (double x : v)
        if (!std::isnan(x) && !(nodata && x == *nodata)) {
            if (r.valid == 0 || x < r.min)
                r.min = x;
            if (r.valid == 0 || x > r.max)
                r.max = x;
            sum += x;
            r.valid++;
        }
    if (r.valid == 0)
        return r;
    const long double mean = sum / r.valid;
    long double m2 = 0;
    for (double x : v)
        if (!std::isnan(x) && !(nodata && x == *nodata))
            m2 += (x - mean) * (x - mean);
    r.mean = static_cast<double>(mean);
    r.m2 = static_cast<double>(m2);
    return r;
}

std::vector<double> Values(size_t n)
{
    std::vector<double> v(n);
    unsigned seed = 99;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = 1000 + (seed >> 8) / double(1 << 16); // an offset that naive sums lose
        if (i % 11 == 3)
            v[i] = -5; // nodata
        if (i % 29 == 7)
            v[i] = std::numeric_limits<double>::quiet_NaN();
    }
    return v;
}

void ExpectClose(const pgp_stats &s, const Reference &r, size_t total)
{
    EXPECT_EQ(s.total, total);
    EXPECT_EQ(s.valid, r.valid);
    EXPECT_EQ(s.min, r.min);
    EXPECT_EQ(s.max, r.max);
    EXPECT_NEAR(s.mean, r.mean, 1e-12 * std::fabs(r.mean));
    EXPECT_NEAR(s.m2, r.m2, 1e-9 * r.m2);
}

TEST(Stats, PixelsSkipNaNAndNodata)
{
    const auto v = Values(1000);
    const double nodata = -5;
    pgp_stats s;
    ASSERT_EQ(pgp_stats_of_pixels(v.data(), GDT_Float64, v.size(), &nodata, &s), 0);
    ExpectClose(s, Naive(v, &nodata), v.size());
    ASSERT_EQ(pgp_stats_of_pixels(v.data(), GDT_Float64, v.size(), nullptr, &s), 0);
    ExpectClose(s, Naive(v, nullptr), v.size());
}

TEST(Stats, IntegerPixels)
{
    const std::vector<int16_t> raw = {7, -3, 7, 120, -32768, 0, 5};
    std::vector<double> as_double(raw.begin(), raw.end());
    const double nodata = -32768;
    pgp_stats s;
    ASSERT_EQ(pgp_stats_of_pixels(raw.data(), GDT_Int16, raw.size(), &nodata, &s), 0);
    ExpectClose(s, Naive(as_double, &nodata), raw.size());
}

TEST(Stats, MergedPartsEqualTheWhole)
{
    const auto v = Values(997);
    const double nodata = -5;
    for (size_t part : {1, 64, 100, 997}) {
        pgp_stats total = {};
        for (size_t at = 0; at < v.size(); at += part) {
            pgp_stats s;
            const size_t n = std::min(part, v.size() - at);
            ASSERT_EQ(pgp_stats_of_pixels(v.data() + at, GDT_Float64, n, &nodata, &s), 0);
            pgp_stats_merge(&total, &s);
        }
        ExpectClose(total, Naive(v, &nodata), v.size());
    }
}

TEST(Stats, AllNodataCountsNothing)
{
    const std::vector<double> v(10, -5);
    const double nodata = -5;
    pgp_stats s, total = {};
    ASSERT_EQ(pgp_stats_of_pixels(v.data(), GDT_Float64, v.size(), &nodata, &s), 0);
    EXPECT_EQ(s.valid, 0u);
    EXPECT_EQ(s.total, 10u);
    pgp_stats_merge(&total, &s);
    EXPECT_EQ(total.valid, 0u);
}

} // namespace
