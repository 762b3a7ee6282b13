// The one parser of settings: integers, booleans, the executor spec.
#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpl_conv.h"
#include "cpl_multiproc.h"
#include "pgp/executor.h"
#include "pgp/settings.h"
#include "pgp/simd.h"

namespace {

int ExpectedAllCpus()
{
    int n = CPLGetNumCPUs();
    return n < 1 ? 1 : (n > PGP_EXECUTOR_MAX_THREADS ? PGP_EXECUTOR_MAX_THREADS : n);
}

class ScopedConfigOption {
  public:
    ScopedConfigOption(const char *key, const char *value)
        : key_(key), had_old_(CPLGetConfigOption(key, nullptr) != nullptr),
          old_(had_old_ ? CPLGetConfigOption(key, "") : "")
    {
        CPLSetConfigOption(key, value);
    }
    ~ScopedConfigOption() { CPLSetConfigOption(key_.c_str(), had_old_ ? old_.c_str() : nullptr); }

  private:
    std::string key_;
    bool had_old_;
    std::string old_;
};

TEST(SettingsInt, AcceptsDigitsOnlyWithinRange)
{
    const struct {
        const char *text;
        long min, max;
        int ok;
        long value;
    } cases[] = {
        {"0", 0, 10, 1, 0},          {"10", 0, 10, 1, 10},     {"007", 0, 10, 1, 7},
        {"11", 0, 10, 0, 0},         {"0", 1, 10, 0, 0},       {"-1", -5, 10, 0, 0},
        {"+1", 0, 10, 0, 0},         {" 1", 0, 10, 0, 0},      {"1 ", 0, 10, 0, 0},
        {"1.5", 0, 10, 0, 0},        {"12MB", 0, 100, 0, 0},   {"", 0, 10, 0, 0},
        {"junk", 0, 10, 0, 0},       {"99999999999999999999999", 0, LONG_MAX, 1, LONG_MAX},
        {"99999999999999999999999", 0, 1L << 24, 0, 0},
    };
    for (const auto &c : cases) {
        long v = -42;
        EXPECT_EQ(pgp_parse_int(c.text, c.min, c.max, &v) == 0, c.ok != 0) << "'" << c.text << "'";
        EXPECT_EQ(v, c.ok ? c.value : -42) << "'" << c.text << "'";
    }
    long v = -42;
    EXPECT_EQ(pgp_parse_int(nullptr, 0, 10, &v), -1);
}

TEST(SettingsBool, OneVocabularyAnyCase)
{
    const char *yes[] = {"YES", "yes", "True", "ON", "1"};
    const char *no[] = {"NO", "no", "false", "Off", "0"};
    const char *bad[] = {"maybe", "", "2", "y", "n", " yes", "-1"};
    for (const char *t : yes) {
        int v = -1;
        EXPECT_EQ(pgp_parse_bool(t, &v), 0) << t;
        EXPECT_EQ(v, 1) << t;
    }
    for (const char *t : no) {
        int v = -1;
        EXPECT_EQ(pgp_parse_bool(t, &v), 0) << t;
        EXPECT_EQ(v, 0) << t;
    }
    for (const char *t : bad) {
        int v = -1;
        EXPECT_EQ(pgp_parse_bool(t, &v), -1) << t;
        EXPECT_EQ(v, -1) << t;
    }
}

TEST(SettingsMessages, NameOriginValueAndRange)
{
    char err[256] = "";
    long n;
    int b;
    EXPECT_EQ(pgp_setting_count("-5", "open option CACHE_MB", 16, &n, err, sizeof err), -1);
    EXPECT_STREQ(err, "open option CACHE_MB='-5' is not valid: expected an integer from 0 to 16");
    EXPECT_EQ(pgp_setting_bool("maybe", "PGP_OVERVIEWS", &b, err, sizeof err), -1);
    EXPECT_STREQ(err, "PGP_OVERVIEWS='maybe' is not valid: expected YES or NO");
}

TEST(SettingsIsa, LevelsAutoAnyCaseAndMessage)
{
    const struct {
        const char *text;
        int ok, isa;
    } cases[] = {
        {"auto", 1, -1},           {"AUTO", 1, -1},          {"baseline", 1, PGP_ISA_BASELINE},
        {"AVX2", 1, PGP_ISA_AVX2}, {"avx512", 1, PGP_ISA_AVX512}, {"avx512f", 0, 0},
        {"sse2", 0, 0},            {"", 0, 0},               {" avx2", 0, 0},
    };
    for (const auto &c : cases) {
        int isa = -42;
        char err[256] = "";
        EXPECT_EQ(pgp_setting_isa(c.text, "PGP_ISA", &isa, err, sizeof err) == 0, c.ok != 0)
            << "'" << c.text << "'";
        EXPECT_EQ(isa, c.ok ? c.isa : -42) << "'" << c.text << "'";
        if (!c.ok) {
            EXPECT_EQ(std::string(err), std::string("PGP_ISA='") + c.text +
                                            "' is not valid: expected auto, baseline, avx2 or avx512");
        }
    }
    int isa = -42;
    EXPECT_EQ(pgp_setting_isa(nullptr, "PGP_ISA", &isa, nullptr, 0), -1);
}

// The cache reads PGP_CACHE_MB with the same parser: what the driver rejects
// means the default there.
TEST(SettingsCacheMb, InvalidMeansDefault)
{
    const struct {
        const char *value;
        long expected;
    } cases[] = {
        {"3", 3}, {"0", 0}, {"16777216", 1L << 24}, {"16777217", 256},
        {"junk", 256}, {"-5", 256}, {"12MB", 256}, {"", 256},
    };
    for (const auto &c : cases) {
        ScopedConfigOption option("PGP_CACHE_MB", c.value);
        EXPECT_EQ(pgp_settings_cache_mb(), c.expected) << c.value;
    }
}

TEST(SettingsExecutor, ValidForms)
{
    const struct {
        const char *spec;
        int expected;
    } cases[] = {
        {"serial", 0},
        {"SERIAL", 0},
        {"Serial", 0},
        {"threading", ExpectedAllCpus()},
        {"THREADING", ExpectedAllCpus()},
        {"multiprocessing", ExpectedAllCpus()},
        {"MultiProcessing", ExpectedAllCpus()},
        {"threading:1", 1},
        {"threading:8", 8},
        {"Threading:16", 16},
        {"multiprocessing:3", 3},
        {"MULTIPROCESSING:1024", 1024},
    };
    for (const auto &c : cases) {
        int n = -7;
        char err[256] = "untouched";
        EXPECT_EQ(pgp_setting_executor(c.spec, "PGP_EXECUTOR", &n, err, sizeof(err)), 0)
            << c.spec << ": " << err;
        EXPECT_EQ(n, c.expected) << c.spec;
    }
}

TEST(SettingsExecutor, InvalidFormsNameOriginValueAndAcceptedForms)
{
    const char *cases[] = {"",
                           "threading:0",
                           "threading:-1",
                           "threading:abc",
                           "threading:2x",
                           "threads:2",
                           "threading:99999999999",
                           "threading:1025",
                           "threading:",
                           "threading: 2",
                           "threading:+2",
                           "multiprocessing:0",
                           "serial:1",
                           " serial",
                           "serial ",
                           "thread",
                           ":4"};
    for (const char *spec : cases) {
        int n = -7;
        char err[512] = "";
        EXPECT_EQ(pgp_setting_executor(spec, "EXECUTOR", &n, err, sizeof(err)), -1) << spec;
        std::string msg = err;
        EXPECT_NE(msg.find(std::string("EXECUTOR='") + spec + "'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("serial"), std::string::npos) << msg;
        EXPECT_NE(msg.find("threading:N"), std::string::npos) << msg;
        EXPECT_NE(msg.find("1024"), std::string::npos) << msg;
    }
}

TEST(SettingsExecutor, ErrorIsTruncatedAndTerminated)
{
    char err[12];
    memset(err, 'x', sizeof(err));
    int n;
    EXPECT_EQ(pgp_setting_executor("bogus", "PGP_EXECUTOR", &n, err, sizeof(err)), -1);
    EXPECT_EQ(std::string(err), "PGP_EXECUTO");
}

TEST(SettingsExecutor, DefaultThreadsFollowsGdalNumThreads)
{
    const struct {
        const char *value;
        int expected;
    } cases[] = {
        {"ALL_CPUS", ExpectedAllCpus()},
        {"all_cpus", ExpectedAllCpus()},
        {"3", 3},
        {"1", 1},
        {"5000", PGP_EXECUTOR_MAX_THREADS},
        {"0", 0},
        {"-2", 0},
        {"abc", 0},
        {"4x", 0},
        {"", 0},
    };
    for (const auto &c : cases) {
        ScopedConfigOption option("GDAL_NUM_THREADS", c.value);
        EXPECT_EQ(pgp_settings_default_threads(), c.expected) << "'" << c.value << "'";
    }
    if (getenv("GDAL_NUM_THREADS") == nullptr) {
        ScopedConfigOption option("GDAL_NUM_THREADS", nullptr);
        EXPECT_EQ(pgp_settings_default_threads(), 0);
    }
}

}  // namespace
