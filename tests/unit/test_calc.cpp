// test_calc.cpp — the Calc rules (core/calc.c): evaluate, then the noDataPolicy,
// then NaN -> noData; expected values are written out per pixel.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

extern "C" {
#include "pgp/calc.h"
}

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// x (nodata -1), y (no nodata), z (nodata 0, never read by the expressions).
struct Program {
    pgp_nodata nodata[3] = {{1, 1, -1}, {0, 1, 0}, {1, 1, 0}};
    pgp_expr *expr = nullptr;

    explicit Program(const char *text)
    {
        const pgp_expr_var vars[3] = {{"x", nodata[0]}, {"y", nodata[1]}, {"z", nodata[2]}};
        char err[256] = "";
        expr = pgp_expr_compile(text, vars, 3, err, sizeof err);
        EXPECT_NE(expr, nullptr) << err;
    }
    ~Program() { pgp_expr_free(expr); }

    pgp_calc_rules Rules(pgp_nodata_policy policy, bool has_out, double out) const
    {
        pgp_calc_rules rules;
        rules.program = expr;
        rules.n_vars = 3;
        rules.var_nodata = nodata;
        rules.policy = policy;
        rules.out_nodata = {has_out ? 1 : 0, 0, out};
        return rules;
    }
};

std::vector<double> Eval(const pgp_calc_rules &rules, const std::vector<double> &x,
                         const std::vector<double> &y)
{
    const double *inputs[3] = {x.data(), y.data(), nullptr}; // z is not read
    std::vector<double> out(x.size(), 12345);
    EXPECT_EQ(pgp_calc_eval(&rules, inputs, x.size(), out.data()), 0);
    return out;
}

void ExpectSame(const std::vector<double> &got, const std::vector<double> &want)
{
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); i++)
        if (std::isnan(want[i]))
            EXPECT_TRUE(std::isnan(got[i])) << i;
        else
            EXPECT_EQ(got[i], want[i]) << i;
}

const std::vector<double> kX = {1, -1, 4, 9, -1, 0};
const std::vector<double> kY = {2, 3, -1, kNaN, 5, 0};

TEST(CalcRules, PropagateTurnsNodataInputsAndNaNIntoOutputNodata)
{
    Program p("x + y / 2");
    // pixel 1: x is nodata; 3: y is NaN -> NaN -> nodata; 4: x nodata.
    ExpectSame(Eval(p.Rules(PGP_NODATA_PROPAGATE, true, -9), kX, kY),
               {2, -9, 3.5, -9, -9, 0});
}

TEST(CalcRules, ExpressionPolicySeesRawValues)
{
    Program p("x + y / 2");
    ExpectSame(Eval(p.Rules(PGP_NODATA_EXPRESSION, true, -9), kX, kY),
               {2, 0.5, 3.5, -9, 1.5, 0});
}

TEST(CalcRules, WithoutOutputNodataNothingIsReplaced)
{
    Program p("sqrt(x)");
    // the expression policy needs no output nodata: NaN stays NaN.
    ExpectSame(Eval(p.Rules(PGP_NODATA_EXPRESSION, false, 0), kX, kY),
               {1, kNaN, 2, 3, kNaN, 0});
}

int Missing(const Program &p, pgp_nodata_policy policy, bool has_out)
{
    const pgp_calc_rules rules = p.Rules(policy, has_out, -9);
    return pgp_calc_missing_nodata(&rules);
}

TEST(CalcRules, MissingNodataNamesTheFirstReadVariableThatCanBeNodata)
{
    Program reads_x("x * 2"), reads_y("y * 2"), reads_both("y + x");
    EXPECT_EQ(Missing(reads_x, PGP_NODATA_PROPAGATE, false), 0);
    EXPECT_EQ(Missing(reads_both, PGP_NODATA_PROPAGATE, false), 0);
    // y has no nodata and z is never read: nothing is missing.
    EXPECT_EQ(Missing(reads_y, PGP_NODATA_PROPAGATE, false), -1);
    EXPECT_EQ(Missing(reads_x, PGP_NODATA_PROPAGATE, true), -1);
    EXPECT_EQ(Missing(reads_x, PGP_NODATA_EXPRESSION, false), -1);
}

} // namespace
