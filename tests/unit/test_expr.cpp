// Unit tests for the expression compiler and vector VM (core/expr.c,
// docs/driver.md#expression-language).
#include "pgp/expr.h"
#include "isa_levels.h"

#include <gtest/gtest.h>
#include <sleef.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();
const double kPi = 3.141592653589793;
const double kE = 2.718281828459045;

using ExprPtr = std::unique_ptr<pgp_expr, decltype(&pgp_expr_free)>;

// Same bits, or both NaN (the VM does not promise a NaN payload).
bool same_value(double x, double y)
{
    if (std::isnan(x) && std::isnan(y))
        return true;
    return std::memcmp(&x, &y, sizeof x) == 0;
}

std::string bits_text(double x)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return buf;
}

#define EXPECT_SAME(expected, actual)                                                     \
    EXPECT_PRED2(same_value, expected, actual)

pgp_nodata no_nodata() { return pgp_nodata{0, 0, 0.0}; }

// Variables a, b, c, d, f (f, since e is a constant) without nodata.
std::vector<pgp_expr_var> plain_vars()
{
    std::vector<pgp_expr_var> vars;
    for (const char *name : {"a", "b", "c", "d", "f"})
        vars.push_back(pgp_expr_var{name, no_nodata()});
    return vars;
}

ExprPtr compile(const std::string &text, const std::vector<pgp_expr_var> &vars)
{
    char err[512];
    pgp_expr *expr = pgp_expr_compile(text.c_str(), vars.data(), (int)vars.size(), err, sizeof err);
    EXPECT_NE(expr, nullptr) << err;
    return ExprPtr(expr, pgp_expr_free);
}

std::vector<double> eval(const pgp_expr *expr, const std::vector<std::vector<double>> &inputs,
                         size_t n)
{
    std::vector<const double *> ptrs;
    for (const auto &column : inputs)
        ptrs.push_back(column.empty() ? nullptr : column.data());
    std::vector<double> out(n, -12345.0);
    EXPECT_EQ(pgp_expr_eval(expr, ptrs.data(), n, out.data()), 0);
    return out;
}

// One pixel of text where a, b, c, d, f take values (missing ones are 0).
double eval1(const std::string &text, std::vector<double> values = {},
             std::vector<pgp_expr_var> vars = plain_vars())
{
    ExprPtr expr = compile(text, vars);
    if (!expr)
        return -999.0;
    values.resize(vars.size(), 0.0);
    std::vector<std::vector<double>> inputs;
    for (double v : values)
        inputs.push_back({v});
    return eval(expr.get(), inputs, 1)[0];
}

// The message of a compile that must fail.
std::string compile_error(const std::string &text, std::vector<pgp_expr_var> vars = plain_vars())
{
    char err[512];
    std::memset(err, 'X', sizeof err);
    pgp_expr *expr = pgp_expr_compile(text.c_str(), vars.data(), (int)vars.size(), err, sizeof err);
    EXPECT_EQ(expr, nullptr) << text;
    pgp_expr_free(expr);
    return std::string(err, strnlen(err, sizeof err));
}

struct Case {
    const char *text;
    double expected;
};

void expect_cases(const std::vector<Case> &cases, std::vector<double> values = {})
{
    for (const Case &c : cases)
        EXPECT_PRED2(same_value, c.expected, eval1(c.text, values))
            << c.text << " expected " << bits_text(c.expected);
}

TEST(ExprLiterals, NumbersAndConstants)
{
    expect_cases({{"1", 1.0},       {"2.5", 2.5},     {".5", 0.5},   {"1e-3", 1e-3},
                  {"2E+4", 2e4},    {"1.", 1.0},      {"007", 7.0},  {"1e400", kInf},
                  {"pi", kPi},      {"e", kE},        {"inf", kInf}, {"nan", kNaN},
                  {"  \t1\n+\r2 ", 3.0}});
}

TEST(ExprPrecedence, HandComputed)
{
    expect_cases({
        {"-2**2", -4.0},       {"-2^2", -4.0},        {"2**3**2", 512.0},  {"2^3^2", 512.0},
        {"2**-1", 0.5},        {"(-2)**2", 4.0},      {"-2**-2", -0.25},   {"2*3**2", 18.0},
        {"1+2*3", 7.0},        {"(1+2)*3", 9.0},      {"10-4-3", 3.0},     {"100/10/5", 2.0},
        {"2*3%4", 2.0},        {"7 % 3", 1.0},        {"-7 % 3", 2.0},     {"7 % -3", -2.0},
        {"-7 % -3", -1.0},     {"7.5 % 2", 1.5},      {"1 < 2 == 1", 1.0}, {"3 > 2 > 1", 0.0},
        {"1 + 1 == 2", 1.0},   {"--3", 3.0},          {"+-+3", -3.0},      {"2 - -3", 5.0},
        {"1 ? 2 : 3 ? 4 : 5", 2.0},                   {"0 ? 2 : 0 ? 4 : 5", 5.0},
        {"0 ? 2 : 1 ? 4 : 5", 4.0},                   {"1 ? 0 ? 6 : 7 : 8", 7.0},
        {"0 || 1 ? 10 : 20", 10.0},                   {"1 + 2 < 4 && 5 > 4", 1.0},
        {"1 || 0 && 0", 1.0},  {"(1 || 0) && 0", 0.0}, {"!0 + 1", 2.0},    {"-3 ** 0.5 == -3 ** 0.5", 1.0},
    });
}

TEST(ExprPrecedence, TernaryNestsToTheRight)
{
    const char *text = "a ? b : c ? d : f";
    EXPECT_EQ(eval1(text, {1, 2, 0, 4, 5}), 2.0);
    EXPECT_EQ(eval1(text, {0, 2, 1, 4, 5}), 4.0);
    EXPECT_EQ(eval1(text, {0, 2, 0, 4, 5}), 5.0);
    EXPECT_EQ(eval1(text, {kNaN, 2, 0, 4, 5}), 2.0); // NaN is true
}

TEST(ExprLogic, WordsSymbolsAndNaNTruthiness)
{
    expect_cases({
        {"not 0", 1.0},     {"not 2", 0.0},      {"!0", 1.0},         {"!-0.5", 0.0},
        {"not nan", 0.0},   {"!!nan", 1.0},      {"1 and 2", 1.0},    {"1 && 0", 0.0},
        {"0 or 0", 0.0},    {"0 || -1", 1.0},    {"nan and 1", 1.0},  {"nan or 0", 1.0},
        {"0 and nan", 0.0}, {"not 1 or 1", 1.0}, {"not (1 or 1)", 0.0},
        {"nan == nan", 0.0}, {"nan != nan", 1.0}, {"nan < 1", 0.0},   {"nan >= 1", 0.0},
        {"1 <= 1", 1.0},    {"1 < 1", 0.0},      {"2 >= 3", 0.0},     {"2 > -inf", 1.0},
        {"-0 == 0", 1.0},   {"3 != 3", 0.0},     {"nan ? 1 : 2", 1.0}, {"0 ? 1 : 2", 2.0},
    });
}

TEST(ExprModulo, FollowsNumpyFloorModulo)
{
    expect_cases({{"5 % 0", kNaN},     {"-6 % 3", 0.0},  {"6 % -3", -0.0},  {"inf % 3", kNaN},
                  {"3 % inf", 3.0},    {"-3 % inf", kInf}, {"nan % 2", kNaN}, {"2 % nan", kNaN},
                  {"fmod(-7, 3)", -1.0}, {"fmod(7, -3)", 1.0}, {"fmod(5, 0)", kNaN}});
}

TEST(ExprFunctions, HandComputed)
{
    expect_cases({
        {"abs(-2.5)", 2.5},        {"abs(-inf)", kInf},       {"sqrt(16)", 4.0},
        {"sqrt(-1)", kNaN},        {"exp(0)", 1.0},
        {"log(1)", 0.0},           {"log(0)", -kInf},         {"log(-1)", kNaN},
        {"log10(1000)", 3.0},      {"log2(8)", 3.0},          {"sin(0)", 0.0},
        {"cos(0)", 1.0},           {"tan(0)", 0.0},           {"asin(1)", kPi / 2},
        {"acos(1)", 0.0},          {"acos(2)", kNaN},         {"atan(1)", kPi / 4},
        {"atan2(1, -1)", 3 * kPi / 4}, {"atan2(0, -1)", kPi}, {"sinh(0)", 0.0},
        {"cosh(0)", 1.0},          {"tanh(inf)", 1.0},        {"floor(-2.5)", -3.0},
        {"ceil(-2.5)", -2.0},      {"round(2.5)", 3.0},       {"round(-2.5)", -3.0},
        {"round(0.49999999999999994)", 0.0},                  {"round(1.5)", 2.0},
        {"trunc(-2.7)", -2.0},     {"trunc(2.7)", 2.0},       {"pow(2, 10)", 1024.0},
        {"pow(-8, 1/3)", kNaN},    {"pow(0, -1)", kInf},      {"min(3, 1)", 1.0},
        {"min(3, 1, 2)", 1.0},     {"max(3, 1, 2, 5, 4)", 5.0}, {"min(1, nan, 0)", kNaN},
        {"min(nan, 1)", kNaN},     {"max(1, 2, nan)", kNaN},  {"max(nan, 1)", kNaN},
        {"min(-inf, 0)", -kInf},   {"clamp(5, 0, 3)", 3.0},   {"clamp(-1, 0, 3)", 0.0},
        {"clamp(2, 0, 3)", 2.0},   {"clamp(nan, 0, 3)", kNaN}, {"clamp(1, nan, 3)", kNaN},
        {"where(1, 2, 3)", 2.0},   {"where(0, 2, 3)", 3.0},   {"where(nan, 2, 3)", 2.0},
        {"isnan(nan)", 1.0},       {"isnan(inf)", 0.0},       {"isnan(0)", 0.0},
        {"isinf(-inf)", 1.0},      {"isinf(nan)", 0.0},       {"isinf(1e308)", 0.0},
    });
    // Transcendental values within a few ulps (the vector math's bound is 1 ulp,
    // docs/driver.md#expression-language; tests/gdal/test_calc_accuracy.py measures it).
    EXPECT_DOUBLE_EQ(eval1("exp(1)"), kE);
    EXPECT_DOUBLE_EQ(eval1("sin(a)", {0.5}), std::sin(0.5));
    EXPECT_DOUBLE_EQ(eval1("cos(a)", {0.5}), std::cos(0.5));
    EXPECT_DOUBLE_EQ(eval1("tan(pi / 4)"), 1.0);
    EXPECT_DOUBLE_EQ(eval1("sinh(1)"), (kE - 1 / kE) / 2);
    EXPECT_DOUBLE_EQ(eval1("cosh(1)"), (kE + 1 / kE) / 2);
    EXPECT_DOUBLE_EQ(eval1("tanh(1)"), (kE * kE - 1) / (kE * kE + 1));
    EXPECT_DOUBLE_EQ(eval1("log(e)"), 1.0);
}

TEST(ExprFunctions, MinMaxKeepSignedZeroOrderOfNumpy)
{
    // numpy.minimum(0.0, -0.0) is -0.0 and numpy.minimum(-0.0, 0.0) is 0.0.
    EXPECT_SAME(-0.0, eval1("min(a, b)", {0.0, -0.0}));
    EXPECT_SAME(0.0, eval1("min(a, b)", {-0.0, 0.0}));
    EXPECT_SAME(-0.0, eval1("max(a, b)", {0.0, -0.0}));
}

TEST(ExprIsNodata, IntegerExactFloatIscloseAndNaN)
{
    std::vector<pgp_expr_var> vars = {
        {"fl", pgp_nodata{1, 0, -1.0}},   // float, isclose
        {"in", pgp_nodata{1, 1, 255.0}},  // integer, exact
        {"nn", pgp_nodata{1, 0, kNaN}},   // NaN nodata
        {"none", no_nodata()},            // no nodata
        {"fi", pgp_nodata{1, 0, kInf}},   // infinite nodata
    };
    auto isnodata = [&](const char *name, double value) {
        std::vector<double> values(vars.size(), 0.0);
        for (size_t v = 0; v < vars.size(); v++)
            if (std::strcmp(vars[v].name, name) == 0)
                values[v] = value;
        return eval1(std::string("isnodata(") + name + ")", values, vars);
    };
    EXPECT_EQ(isnodata("fl", -1.0), 1.0);
    EXPECT_EQ(isnodata("fl", -1.000005), 1.0);
    EXPECT_EQ(isnodata("fl", -0.999995), 1.0);
    EXPECT_EQ(isnodata("fl", -1.0001), 0.0);
    EXPECT_EQ(isnodata("fl", kNaN), 0.0);
    EXPECT_EQ(isnodata("in", 255.0), 1.0);
    EXPECT_EQ(isnodata("in", 255.000001), 0.0);
    EXPECT_EQ(isnodata("in", 254.0), 0.0);
    EXPECT_EQ(isnodata("nn", kNaN), 1.0);
    EXPECT_EQ(isnodata("nn", 0.0), 0.0);
    EXPECT_EQ(isnodata("none", kNaN), 0.0);
    EXPECT_EQ(isnodata("none", 0.0), 0.0);
    EXPECT_EQ(isnodata("fi", kInf), 1.0);
    // Used inside a larger expression, as noDataPolicy="expression" would.
    EXPECT_EQ(eval1("isnodata(fl) ? 0 : fl * 2", {-1.000001, 0, 0, 0, 0}, vars), 0.0);
    EXPECT_EQ(eval1("isnodata(fl) ? 0 : fl * 2", {3, 0, 0, 0, 0}, vars), 6.0);
}

TEST(ExprNames, ResolutionRules)
{
    // A variable shadows a constant of the same name.
    std::vector<pgp_expr_var> vars = {{"e", no_nodata()}, {"sqrt", no_nodata()},
                                      {"pi", no_nodata()}};
    EXPECT_EQ(eval1("e + pi", {10, 0, 1}, vars), 11.0);
    // A function name is a function only when '(' follows it.
    EXPECT_EQ(eval1("sqrt(sqrt) + sqrt (sqrt)", {0, 16, 0}, vars), 8.0);
    // Names are case-sensitive; the constants are lower case.
    EXPECT_EQ(compile_error("A"), "expression 'A' at column 1: unknown name 'A'");
    EXPECT_EQ(compile_error("Pi"), "expression 'Pi' at column 1: unknown name 'Pi'");
    EXPECT_EQ(compile_error("sqrt + 1"), "expression 'sqrt + 1' at column 1: unknown name 'sqrt'");
    // Keywords are always operators, never names.
    EXPECT_EQ(compile_error("and"), "expression 'and' at column 1: expected an operand");
    // Longer names that start like a keyword or constant are names.
    std::vector<pgp_expr_var> words = {{"android", no_nodata()}, {"pie", no_nodata()},
                                       {"not_", no_nodata()}, {"_x9", no_nodata()}};
    EXPECT_EQ(eval1("android + pie + not_ + _x9", {1, 2, 4, 8}, words), 15.0);
    EXPECT_EQ(eval1("not not_", {1, 2, 0, 8}, words), 1.0);
}

TEST(ExprReadsVar, ReportsEveryReferencedVariable)
{
    std::vector<pgp_expr_var> vars = {{"a", no_nodata()}, {"b", no_nodata()},
                                      {"c", no_nodata()}, {"d", pgp_nodata{1, 0, 0.0}}};
    ExprPtr expr = compile("a * 0 + sin(c) + isnodata(d)", vars);
    ASSERT_TRUE(expr);
    EXPECT_TRUE(pgp_expr_reads_var(expr.get(), 0));
    EXPECT_FALSE(pgp_expr_reads_var(expr.get(), 1));
    EXPECT_TRUE(pgp_expr_reads_var(expr.get(), 2));
    EXPECT_TRUE(pgp_expr_reads_var(expr.get(), 3));
    EXPECT_FALSE(pgp_expr_reads_var(expr.get(), 4));
    EXPECT_FALSE(pgp_expr_reads_var(expr.get(), -1));
    // An unread variable may be passed as NULL.
    std::vector<double> out = eval(expr.get(), {{1, 2}, {}, {0, 0}, {0, 5}}, 2);
    EXPECT_EQ(out, (std::vector<double>{1.0, 0.0}));

    ExprPtr constant = compile("2 * pi", vars);
    ASSERT_TRUE(constant);
    for (int v = 0; v < 4; v++)
        EXPECT_FALSE(pgp_expr_reads_var(constant.get(), v));
}

TEST(ExprEval, TrivialProgramsAndEmptyInput)
{
    auto vars = plain_vars();
    ExprPtr constant = compile("2 * 3", vars);
    ExprPtr copy = compile("(b)", vars);
    ASSERT_TRUE(constant && copy);
    EXPECT_EQ(eval(constant.get(), {{}, {}, {}, {}, {}}, 5), std::vector<double>(5, 6.0));
    EXPECT_EQ(eval(copy.get(), {{}, {1, -2, 3}, {}, {}, {}}, 3), (std::vector<double>{1, -2, 3}));
    double untouched = 7.0;
    const double *none[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
    EXPECT_EQ(pgp_expr_eval(constant.get(), none, 0, &untouched), 0);
    EXPECT_EQ(untouched, 7.0);
}

TEST(ExprEval, LongLeftDeepChainAtTheLengthLimit)
{
    // 'a+a+...' of length 65535 plus one space: 32768 terms, at the limit.
    std::string text = "a";
    while (text.size() + 2 <= PGP_EXPR_MAX_LENGTH)
        text += "+a";
    text += std::string(PGP_EXPR_MAX_LENGTH - text.size(), ' ');
    ASSERT_EQ(text.size(), (size_t)PGP_EXPR_MAX_LENGTH);
    EXPECT_EQ(eval1(text, {1.0}), 32768.0);
}

TEST(ExprEval, ThousandsOfDistinctConstants)
{
    // a*1 + a*2 + ... : every constant needs its own register.
    std::string text = "0";
    for (int k = 1; k <= 5000; k++)
        text += "+a*" + std::to_string(k);
    ExprPtr expr = compile(text, plain_vars());
    ASSERT_TRUE(expr);
    std::vector<double> a(1000);
    for (size_t i = 0; i < a.size(); i++)
        a[i] = 0.001 * (double)i - 0.3;
    std::vector<double> out = eval(expr.get(), {a, {}, {}, {}, {}}, a.size());
    for (size_t i = 0; i < a.size(); i++) {
        double expected = 0;
        for (int k = 1; k <= 5000; k++)
            expected = expected + a[i] * k;
        ASSERT_PRED2(same_value, expected, out[i]) << "pixel " << i;
    }
}

TEST(ExprFolding, FoldedEqualsEvaluated)
{
    // a*0 must not fold (a may be inf or NaN); 2*pi folds.
    EXPECT_SAME(2 * kPi, eval1("a*0+2*pi", {1.0}));
    EXPECT_SAME(kNaN, eval1("a*0+2*pi", {kInf}));
    // Each constant expression against the same computation over variables
    // a=1, b=2, c=3, d=0.3, f=7, which cannot fold.
    const std::vector<double> values = {1.0, 2.0, 3.0, 0.3, 7.0};
    const char *pairs[][2] = {
        {"sin(1) + exp(2) / 3", "sin(a) + exp(b) / c"},
        {"2 ** 0.3 * 3 % 7 - fmod(7, 0.3)", "b ** d * c % f - fmod(f, d)"},
        {"atan2(1, 3) - log(7) * cosh(0.3)", "atan2(a, c) - log(f) * cosh(d)"},
        {"max(tanh(0.3), asin(0.3), 1/3) - pi", "max(tanh(d), asin(d), a/c) - pi"},
        {"-2 ** -0.3 + round(-3.5) + log10(7) + log2(7)",
         "-b ** -d + round(-f / b) + log10(f) + log2(f)"},
        {"clamp(sinh(0.3), 0, 1) * sqrt(7) + acos(0.3) / tan(3) - atan(7) + floor(pi) - ceil(e)",
         "clamp(sinh(d), 0, a) * sqrt(f) + acos(d) / tan(c) - atan(f) + floor(pi) - ceil(e)"},
        {"where(0.3 > 1, exp(7), trunc(-7 / 3)) + abs(-0.3) + (1 < 2 ? 1 : 0)",
         "where(d > a, exp(f), trunc(-f / c)) + abs(-d) + (a < b ? a : 0)"},
    };
    for (auto &pair : pairs) {
        ExprPtr folded = compile(pair[0], plain_vars());
        ASSERT_TRUE(folded);
        for (int v = 0; v < 5; v++)
            EXPECT_FALSE(pgp_expr_reads_var(folded.get(), v)) << pair[0];
        EXPECT_PRED2(same_value, eval1(pair[1], values), eval1(pair[0])) << pair[0];
    }
}

// ---- random expressions against a naive reference evaluator ---------------

// A tree that prints itself as text and evaluates itself one pixel at a time,
// written independently of the compiler (no bytecode, no folding, no chunks).
struct Node {
    enum Kind { Constant, Variable, Unary, Binary, Call, Ternary } kind;
    int op = 0;         // index into the table of its kind
    double value = 0;   // Constant
    std::string text;   // Constant: its spelling
    int var = 0;        // Variable, and Call of isnodata
    std::vector<Node> kids;
};

// Precedence levels as the printer sees them; higher binds tighter.
enum Level { TernaryLevel = 0, UnaryLevel = 7, PowerLevel = 8, PrimaryLevel = 10 };

double truth(bool b) { return b ? 1.0 : 0.0; }

double reference_mod(double a, double b) // CPython's float_rem
{
    double mod = std::fmod(a, b);
    if (mod != 0) {
        if ((b < 0) != (mod < 0))
            mod += b;
    } else {
        mod = std::copysign(0.0, b);
    }
    return mod;
}

double reference_min(double a, double b)
{
    if (std::isnan(a) || std::isnan(b))
        return std::isnan(a) ? a : b;
    return a < b ? a : b;
}

double reference_max(double a, double b)
{
    if (std::isnan(a) || std::isnan(b))
        return std::isnan(a) ? a : b;
    return a > b ? a : b;
}

struct BinaryOp {
    const char *spelling[2];
    int level;
    double (*apply)(double, double);
};

const BinaryOp kBinaryOps[] = {
    {{"||", "or"}, 1, [](double a, double b) { return truth(a != 0 || b != 0); }},
    {{"&&", "and"}, 2, [](double a, double b) { return truth(a != 0 && b != 0); }},
    {{"==", "=="}, 3, [](double a, double b) { return truth(a == b); }},
    {{"!=", "!="}, 3, [](double a, double b) { return truth(a != b); }},
    {{"<", "<"}, 4, [](double a, double b) { return truth(a < b); }},
    {{"<=", "<="}, 4, [](double a, double b) { return truth(a <= b); }},
    {{">", ">"}, 4, [](double a, double b) { return truth(a > b); }},
    {{">=", ">="}, 4, [](double a, double b) { return truth(a >= b); }},
    {{"+", "+"}, 5, [](double a, double b) { return a + b; }},
    {{"-", "-"}, 5, [](double a, double b) { return a - b; }},
    {{"*", "*"}, 6, [](double a, double b) { return a * b; }},
    {{"/", "/"}, 6, [](double a, double b) { return a / b; }},
    {{"%", "%"}, 6, reference_mod},
    {{"**", "^"}, PowerLevel, [](double a, double b) { return Sleef_cinz_powd1_u10purec(a, b); }},
};

struct UnaryOp {
    const char *spelling[2];
    double (*apply)(double);
};

const UnaryOp kUnaryOps[] = {
    {{"-", "-"}, [](double x) { return -x; }},
    {{"+", "+"}, [](double x) { return x; }},
    {{"!", "not "}, [](double x) { return truth(x == 0); }},
};

struct Function {
    const char *name;
    int arity; // 0: two to four arguments
    std::function<double(const std::vector<double> &)> apply;
};

double fold_args(const std::vector<double> &x, double (*f)(double, double))
{
    double r = x[0];
    for (size_t k = 1; k < x.size(); k++)
        r = f(r, x[k]);
    return r;
}

const std::vector<Function> &functions()
{
    using V = const std::vector<double> &;
    static const std::vector<Function> table = {
        {"abs", 1, [](V x) { return std::fabs(x[0]); }},
        {"sqrt", 1, [](V x) { return std::sqrt(x[0]); }},
        // The transcendental functions: SLEEF's scalar build of the algorithm the
        // VM runs in vectors (its accuracy against numpy: test_calc_accuracy.py).
        {"exp", 1, [](V x) { return Sleef_cinz_expd1_u10purec(x[0]); }},
        {"log", 1, [](V x) { return Sleef_cinz_logd1_u10purec(x[0]); }},
        {"log10", 1, [](V x) { return Sleef_cinz_log10d1_u10purec(x[0]); }},
        {"log2", 1, [](V x) { return Sleef_cinz_log2d1_u10purec(x[0]); }},
        {"sin", 1, [](V x) { return Sleef_cinz_sind1_u10purec(x[0]); }},
        {"cos", 1, [](V x) { return Sleef_cinz_cosd1_u10purec(x[0]); }},
        {"tan", 1, [](V x) { return Sleef_cinz_tand1_u10purec(x[0]); }},
        {"asin", 1, [](V x) { return Sleef_cinz_asind1_u10purec(x[0]); }},
        {"acos", 1, [](V x) { return Sleef_cinz_acosd1_u10purec(x[0]); }},
        {"atan", 1, [](V x) { return Sleef_cinz_atand1_u10purec(x[0]); }},
        {"atan2", 2, [](V x) { return Sleef_cinz_atan2d1_u10purec(x[0], x[1]); }},
        {"sinh", 1, [](V x) { return Sleef_cinz_sinhd1_u10purec(x[0]); }},
        {"cosh", 1, [](V x) { return Sleef_cinz_coshd1_u10purec(x[0]); }},
        {"tanh", 1, [](V x) { return Sleef_cinz_tanhd1_u10purec(x[0]); }},
        {"floor", 1, [](V x) { return std::floor(x[0]); }},
        {"ceil", 1, [](V x) { return std::ceil(x[0]); }},
        {"round", 1, [](V x) { return std::round(x[0]); }},
        {"trunc", 1, [](V x) { return std::trunc(x[0]); }},
        {"pow", 2, [](V x) { return Sleef_cinz_powd1_u10purec(x[0], x[1]); }},
        {"fmod", 2, [](V x) { return std::fmod(x[0], x[1]); }},
        {"min", 0, [](V x) { return fold_args(x, reference_min); }},
        {"max", 0, [](V x) { return fold_args(x, reference_max); }},
        {"clamp", 3, [](V x) { return reference_min(reference_max(x[0], x[1]), x[2]); }},
        {"where", 3, [](V x) { return x[0] != 0 ? x[1] : x[2]; }},
        {"isnan", 1, [](V x) { return truth(std::isnan(x[0])); }},
        {"isinf", 1, [](V x) { return truth(std::isinf(x[0])); }},
        {"isnodata", 1, nullptr}, // evaluated from the variable's nodata
    };
    return table;
}

// Variables of the random test: every kind of nodata.
const std::vector<pgp_expr_var> &random_vars()
{
    static const std::vector<pgp_expr_var> vars = {
        {"A", pgp_nodata{1, 0, -1.0}},
        {"B", pgp_nodata{1, 1, 3.0}},
        {"C", pgp_nodata{1, 0, kNaN}},
        {"D", pgp_nodata{0, 0, 0.0}},
    };
    return vars;
}

bool reference_is_nodata(const pgp_nodata &nd, double v)
{
    if (!nd.present)
        return false;
    if (nd.exact)
        return v == nd.value;
    if (std::isnan(nd.value))
        return std::isnan(v);
    return v == nd.value || std::fabs(v - nd.value) <= 1e-8 + 1e-5 * std::fabs(nd.value);
}

double evaluate(const Node &node, const double *pixel)
{
    std::vector<double> x;
    for (const Node &kid : node.kids)
        x.push_back(evaluate(kid, pixel));
    switch (node.kind) {
    case Node::Constant:
        return node.value;
    case Node::Variable:
        return pixel[node.var];
    case Node::Unary:
        return kUnaryOps[node.op].apply(x[0]);
    case Node::Binary:
        return kBinaryOps[node.op].apply(x[0], x[1]);
    case Node::Ternary:
        return x[0] != 0 ? x[1] : x[2];
    case Node::Call:
        if (!functions()[node.op].apply)
            return truth(reference_is_nodata(random_vars()[node.var].nodata, pixel[node.var]));
        return functions()[node.op].apply(x);
    }
    return 0;
}

class Generator {
  public:
    explicit Generator(unsigned seed) : rng_(seed) {}

    Node expression(int depth)
    {
        Node node;
        int choice = depth <= 0 ? (int)pick(2) : (int)pick(10);
        if (choice == 0) {
            node.kind = Node::Constant;
            constant(node);
        } else if (choice == 1) {
            node.kind = Node::Variable;
            node.var = (int)pick(random_vars().size());
        } else if (choice == 2) {
            node.kind = Node::Unary;
            node.op = (int)pick(std::size(kUnaryOps));
            node.kids.push_back(expression(depth - 1));
        } else if (choice <= 6) {
            node.kind = Node::Binary;
            node.op = (int)pick(std::size(kBinaryOps));
            node.kids.push_back(expression(depth - 1));
            node.kids.push_back(expression(depth - 1));
        } else if (choice <= 8) {
            node.kind = Node::Call;
            node.op = (int)pick(functions().size());
            const Function &f = functions()[node.op];
            if (!f.apply) {
                node.var = (int)pick(random_vars().size());
                return node;
            }
            int arity = f.arity ? f.arity : 2 + (int)pick(3);
            for (int k = 0; k < arity; k++)
                node.kids.push_back(expression(depth - 1));
        } else {
            node.kind = Node::Ternary;
            for (int k = 0; k < 3; k++)
                node.kids.push_back(expression(depth - 1));
        }
        return node;
    }

    // Prints with only the parentheses precedence requires (plus some spare
    // ones), so the parser's precedence is checked as well as the VM.
    std::string print(const Node &node, int *level)
    {
        std::string out;
        switch (node.kind) {
        case Node::Constant:
            *level = node.text[0] == '-' ? UnaryLevel : PrimaryLevel;
            return node.text;
        case Node::Variable:
            *level = PrimaryLevel;
            return random_vars()[node.var].name;
        case Node::Unary:
            *level = UnaryLevel;
            return kUnaryOps[node.op].spelling[pick(2)] + operand(node.kids[0], UnaryLevel);
        case Node::Binary: {
            const BinaryOp &op = kBinaryOps[node.op];
            *level = op.level;
            bool power = op.level == PowerLevel;
            // left-associative: the right operand needs parentheses at the
            // same level; '**' is the reverse, and its base must be a primary.
            std::string left = operand(node.kids[0], power ? PrimaryLevel : op.level);
            std::string right = operand(node.kids[1], power ? UnaryLevel : op.level + 1);
            return left + " " + op.spelling[pick(2)] + " " + right;
        }
        case Node::Call: {
            const Function &f = functions()[node.op];
            *level = PrimaryLevel;
            if (!f.apply)
                return std::string(f.name) + "(" + random_vars()[node.var].name + ")";
            out = std::string(f.name) + "(";
            for (size_t k = 0; k < node.kids.size(); k++)
                out += (k ? ", " : "") + operand(node.kids[k], TernaryLevel);
            return out + ")";
        }
        case Node::Ternary:
            *level = TernaryLevel;
            return operand(node.kids[0], TernaryLevel + 1) + " ? " +
                   operand(node.kids[1], TernaryLevel) + " : " + operand(node.kids[2], TernaryLevel);
        }
        return out;
    }

    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

    // Input values: nodata and near-nodata values, specials, small integers, noise.
    double input()
    {
        static const double specials[] = {-1.0, -1.000005, -1.0001, 3.0, 0.0, -0.0, 1.0, 2.0,
                                          0.5, kNaN, kInf, -kInf, 1e300, -1e-300};
        switch (pick(3)) {
        case 0:
            return specials[pick(std::size(specials))];
        case 1:
            return (double)pick(11) - 5.0;
        default:
            return std::uniform_real_distribution<double>(-10.0, 10.0)(rng_);
        }
    }

  private:
    std::string operand(const Node &kid, int min_level)
    {
        int level;
        std::string text = print(kid, &level);
        return level < min_level || pick(8) == 0 ? "(" + text + ")" : text;
    }

    void constant(Node &node)
    {
        static const Case named[] = {{"pi", kPi}, {"e", kE}, {"inf", kInf}, {"nan", kNaN}};
        static const double plain[] = {0, 1, 2, 3, 0.5, 2.5, 10, 1e-3, 1e300, 0.1};
        if (pick(4) == 0) {
            const Case &c = named[pick(std::size(named))];
            node.text = c.text;
            node.value = c.expected;
            return;
        }
        node.value = pick(2) ? plain[pick(std::size(plain))]
                             : std::uniform_real_distribution<double>(0.0, 5.0)(rng_);
        if (pick(4) == 0)
            node.value = -node.value;
        node.text = bits_text(node.value);
    }

    std::mt19937 rng_;
};

// At every instruction-set level, on 300 pixels: whole vectors and a tail.
class ExprRandom : public testing::TestWithParam<pgp_isa> {};

TEST_P(ExprRandom, MatchesNaiveReferenceEvaluator)
{
    ScopedIsa level(GetParam());
    Generator gen(20240601);
    const size_t n = 300;
    const size_t n_vars = random_vars().size();
    int compared = 0;
    for (int trial = 0; trial < 400; trial++) {
        Node tree = gen.expression(1 + (int)gen.pick(6));
        int level;
        std::string text = gen.print(tree, &level);
        ExprPtr expr = compile(text, random_vars());
        ASSERT_TRUE(expr) << text;
        std::vector<std::vector<double>> inputs(n_vars, std::vector<double>(n));
        for (auto &column : inputs)
            for (double &v : column)
                v = gen.input();
        std::vector<double> out = eval(expr.get(), inputs, n);
        for (size_t i = 0; i < n; i++) {
            std::vector<double> pixel;
            for (size_t v = 0; v < n_vars; v++)
                pixel.push_back(inputs[v][i]);
            double expected = evaluate(tree, pixel.data());
            ASSERT_PRED2(same_value, expected, out[i]) << text << " at pixel " << i;
            compared++;
        }
    }
    EXPECT_EQ(compared, 400 * 300);
}

INSTANTIATE_TEST_SUITE_P(Levels, ExprRandom, testing::ValuesIn(runnable_isas()),
                         [](const testing::TestParamInfo<pgp_isa> &info) {
                             return std::string(pgp_isa_name(info.param));
                         });

// ---- chunking and threads -------------------------------------------------

const char *kBusyExpression =
    "where(A > B, sqrt(abs(A)) * C, B % 3 - C ** 2) + min(A, B, C, D) * (A ? B : 1)"
    " - isnodata(A) * log(abs(D) + 1) + clamp(A * 10, -2, 2) / (round(B) != 0 or not D)";

std::vector<std::vector<double>> random_columns(size_t n, unsigned seed)
{
    Generator gen(seed);
    std::vector<std::vector<double>> inputs(random_vars().size(), std::vector<double>(n));
    for (auto &column : inputs)
        for (double &v : column)
            v = gen.input();
    return inputs;
}

TEST(ExprEval, ChunkBoundariesDoNotChangeResults)
{
    const size_t n = 100003;
    ExprPtr expr = compile(kBusyExpression, random_vars());
    ASSERT_TRUE(expr);
    auto inputs = random_columns(n, 7);
    std::vector<double> whole = eval(expr.get(), inputs, n);
    for (size_t piece : {(size_t)1, (size_t)7, (size_t)1000}) {
        const size_t stride = piece == 1 ? 97 : piece; // every 97th pixel alone
        for (size_t start = 0; start < n; start += stride) {
            size_t len = std::min(piece, n - start);
            std::vector<const double *> ptrs;
            for (auto &column : inputs)
                ptrs.push_back(column.data() + start);
            std::vector<double> part(len);
            ASSERT_EQ(pgp_expr_eval(expr.get(), ptrs.data(), len, part.data()), 0);
            for (size_t i = 0; i < len; i++)
                ASSERT_PRED2(same_value, whole[start + i], part[i])
                    << "n=" << piece << " pixel " << start + i;
        }
    }
}

TEST(ExprEval, ConcurrentEvaluationOfOneProgram)
{
    const size_t n = 20000;
    ExprPtr expr = compile(kBusyExpression, random_vars());
    ASSERT_TRUE(expr);
    auto inputs = random_columns(n, 11);
    std::vector<double> serial = eval(expr.get(), inputs, n);
    std::vector<std::vector<double>> results(8, std::vector<double>(n));
    std::vector<const double *> ptrs;
    for (auto &column : inputs)
        ptrs.push_back(column.data());
    std::vector<std::thread> threads;
    std::vector<int> status(results.size(), -1);
    for (size_t t = 0; t < results.size(); t++)
        threads.emplace_back([&, t] {
            status[t] = pgp_expr_eval(expr.get(), ptrs.data(), n, results[t].data());
        });
    for (auto &thread : threads)
        thread.join();
    for (size_t t = 0; t < results.size(); t++) {
        EXPECT_EQ(status[t], 0);
        for (size_t i = 0; i < n; i++)
            ASSERT_PRED2(same_value, serial[i], results[t][i]) << "thread " << t;
    }
}

// ---- compile errors --------------------------------------------------------

TEST(ExprErrors, ExactMessagesAndColumns)
{
    const std::pair<const char *, const char *> cases[] = {
        {"", "expression '' at column 1: empty expression"},
        {"   ", "expression '   ' at column 1: empty expression"},
        {"a + * b", "expression 'a + * b' at column 5: expected an operand"},
        {"a +", "expression 'a +' at column 4: expected an operand"},
        {"(a", "expression '(a' at column 3: expected ')' to close the '(' at column 1"},
        {"((a) + (b)", "expression '((a) + (b)' at column 11: expected ')' to close the '(' at column 1"},
        {"a)", "expression 'a)' at column 2: unexpected ')'"},
        {"()", "expression '()' at column 2: expected an operand"},
        {"x + 1", "expression 'x + 1' at column 1: unknown name 'x'"},
        {"a + xy", "expression 'a + xy' at column 5: unknown name 'xy'"},
        {"foo(a)", "expression 'foo(a)' at column 1: unknown function 'foo'"},
        {"a + a(1)", "expression 'a + a(1)' at column 5: unknown function 'a'"},
        {"atan2(a)", "expression 'atan2(a)' at column 1: function 'atan2' takes 2 arguments, got 1"},
        {"1 + sqrt(a, b)", "expression '1 + sqrt(a, b)' at column 5: function 'sqrt' takes 1 argument, got 2"},
        {"abs()", "expression 'abs()' at column 1: function 'abs' takes 1 argument, got 0"},
        {"clamp(a, b, c, d)", "expression 'clamp(a, b, c, d)' at column 1: function 'clamp' takes 3 arguments, got 4"},
        {"where(a, b)", "expression 'where(a, b)' at column 1: function 'where' takes 3 arguments, got 2"},
        {"pow(a, b, c, d, f)", "expression 'pow(a, b, c, d, f)' at column 1: function 'pow' takes 2 arguments, got 5"},
        {"min(a)", "expression 'min(a)' at column 1: function 'min' takes at least 2 arguments, got 1"},
        {"max()", "expression 'max()' at column 1: function 'max' takes at least 2 arguments, got 0"},
        {"min(a b)", "expression 'min(a b)' at column 7: expected ',' or ')'"},
        {"min(a,)", "expression 'min(a,)' at column 7: expected an operand"},
        {"isnodata(1)", "expression 'isnodata(1)' at column 10: isnodata() takes a variable name"},
        {"isnodata(a + 1)", "expression 'isnodata(a + 1)' at column 10: isnodata() takes a variable name"},
        {"isnodata((a))", "expression 'isnodata((a))' at column 10: isnodata() takes a variable name"},
        {"isnodata(pi)", "expression 'isnodata(pi)' at column 10: isnodata() takes a variable name"},
        {"isnodata(a, b)", "expression 'isnodata(a, b)' at column 1: function 'isnodata' takes 1 argument, got 2"},
        {"1e", "expression '1e' at column 1: malformed number '1e'"},
        {"a + 1e+", "expression 'a + 1e+' at column 5: malformed number '1e+'"},
        {"a + 1.2.3", "expression 'a + 1.2.3' at column 5: malformed number '1.2.3'"},
        {"2x", "expression '2x' at column 1: malformed number '2x'"},
        {"a b", "expression 'a b' at column 3: unexpected 'b'"},
        {"a + 1 2", "expression 'a + 1 2' at column 7: unexpected '2'"},
        {"a $ b", "expression 'a $ b' at column 3: unexpected character '$'"},
        {"a & b", "expression 'a & b' at column 3: unexpected character '&'"},
        {"a = b", "expression 'a = b' at column 3: unexpected '=' (use '==' to compare)"},
        {"a ? b", "expression 'a ? b' at column 6: expected ':'"},
        {"a ? b : ", "expression 'a ? b : ' at column 9: expected an operand"},
        {"a \xc3\xa9", "expression 'a \xc3\xa9' at column 3: unexpected character '\xc3\xa9'"},
    };
    for (auto &c : cases)
        EXPECT_EQ(compile_error(c.first), c.second);
}

TEST(ExprErrors, TooLongQuotesAShortPrefix)
{
    std::string text(PGP_EXPR_MAX_LENGTH + 1, ' ');
    text[0] = 'a';
    EXPECT_EQ(compile_error(text), "expression 'a" + std::string(59, ' ') +
                                       "...' at column 65537: expression is 65537 characters "
                                       "long, the limit is 65536");
    // A long but legal expression with an error late in it quotes only a prefix.
    std::string late = std::string(100, ' ') + "a +";
    EXPECT_EQ(compile_error(late),
              "expression '" + std::string(60, ' ') + "...' at column 104: expected an operand");
}

TEST(ExprErrors, NestingLimitWithoutStackOverflow)
{
    auto nested = [](int depth) {
        return std::string(depth, '(') + "a" + std::string(depth, ')');
    };
    EXPECT_EQ(eval1(nested(PGP_EXPR_MAX_DEPTH), {5.0}), 5.0);
    std::string too_deep = compile_error(nested(PGP_EXPR_MAX_DEPTH + 1));
    EXPECT_NE(too_deep.find("at column 257: nesting deeper than 256"), std::string::npos)
        << too_deep;
    // Pathological inputs fail cleanly instead of overflowing the C stack.
    std::string too_long = compile_error(std::string(100000, '('));
    EXPECT_NE(too_long.find("at column 65537: expression is 100000 characters long"),
              std::string::npos) << too_long;
    for (const std::string &text :
         {std::string(PGP_EXPR_MAX_LENGTH, '('), std::string(60000, '-') + "a", std::string(60000, '!') + "a",
          [] { std::string s = "a"; for (int k = 0; k < 20000; k++) s += "**a"; return s; }(),
          [] { std::string s; for (int k = 0; k < 10000; k++) s += "a?a:"; return s + "a"; }(),
          [] { std::string s; for (int k = 0; k < 10000; k++) s += "min(a,"; return s; }()}) {
        std::string err = compile_error(text);
        EXPECT_NE(err.find("nesting deeper than 256"), std::string::npos) << err;
    }
}

TEST(ExprErrors, MessageBufferHandling)
{
    auto vars = plain_vars();
    char small[16];
    std::memset(small, 'X', sizeof small);
    EXPECT_EQ(pgp_expr_compile("a + * b", vars.data(), (int)vars.size(), small, 8), nullptr);
    EXPECT_STREQ(small, "express");
    EXPECT_EQ(small[8], 'X');
    // errlen 1 leaves only the terminator; no buffer at all is allowed.
    EXPECT_EQ(pgp_expr_compile("a +", vars.data(), (int)vars.size(), small, 1), nullptr);
    EXPECT_EQ(small[0], '\0');
    EXPECT_EQ(pgp_expr_compile("a +", vars.data(), (int)vars.size(), nullptr, 0), nullptr);
    // Success clears the buffer.
    char err[64] = "stale";
    pgp_expr *expr = pgp_expr_compile("a + 1", vars.data(), (int)vars.size(), err, sizeof err);
    EXPECT_NE(expr, nullptr);
    EXPECT_STREQ(err, "");
    pgp_expr_free(expr);
    pgp_expr_free(nullptr);
}

} // namespace
