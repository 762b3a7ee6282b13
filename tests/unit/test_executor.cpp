// Unit tests for core/executor.c (pgp/executor.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"
#include "pgp/cache.h"
#include "pgp/executor.h"

namespace {

// Joins the pools and frees the global cache so LeakSanitizer sees a clean
// exit. The one global environment of the unit tests (test_cache.cpp too).
class PgpShutdownEnvironment : public ::testing::Environment {
  public:
    void TearDown() override
    {
        pgp_executor_shutdown_all();
        pgp_tile_cache_shutdown_global();
    }
};
::testing::Environment *const shutdown_environment =
    ::testing::AddGlobalTestEnvironment(new PgpShutdownEnvironment);

void SleepMs(double ms)
{
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
}

pgp_executor *Executor(int n_threads)
{
    pgp_executor *ex = pgp_executor_get(n_threads);
    EXPECT_NE(ex, nullptr);
    return ex;
}

// Silences the errors a test provokes; CPLGetLastError* still records them.
class QuietErrors {
  public:
    QuietErrors() { CPLPushErrorHandler(CPLQuietErrorHandler); }
    ~QuietErrors() { CPLPopErrorHandler(); }
};

// Records every error reaching the calling thread's handler stack.
class CollectErrors {
  public:
    struct Entry {
        CPLErr cls;
        CPLErrorNum no;
        std::string msg;
        std::thread::id thread;
    };
    CollectErrors() { CPLPushErrorHandlerEx(Handle, this); }
    ~CollectErrors() { CPLPopErrorHandler(); }
    std::vector<Entry> entries;

  private:
    static void CPL_STDCALL Handle(CPLErr cls, CPLErrorNum no, const char *msg)
    {
        auto *self = static_cast<CollectErrors *>(CPLGetErrorHandlerUserData());
        self->entries.push_back({cls, no, msg, std::this_thread::get_id()});
    }
};

// Runs f on another thread and aborts the test binary if it does not return
// in time: a deadlock must fail rather than hang the suite.
template <class F> void RunWithDeadline(F f, int seconds)
{
    std::packaged_task<void()> task(f);
    auto done = task.get_future();
    std::thread runner(std::move(task));
    if (done.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
        std::fprintf(stderr, "deadline of %d s exceeded: deadlock\n", seconds);
        std::abort();
    }
    runner.join();
}

// ------------------------------------------------------------ spec parsing

TEST(ExecutorRegistry, GetReturnsOnePoolPerThreadCount)
{
    pgp_executor *serial = Executor(0);
    EXPECT_EQ(pgp_executor_threads(serial), 0);
    EXPECT_EQ(pgp_executor_threads(Executor(3)), 3);
    EXPECT_EQ(Executor(3), pgp_executor_get(3));
    EXPECT_NE(Executor(3), Executor(2));
    EXPECT_EQ(serial, pgp_executor_get(0));
}

TEST(ExecutorRegistry, RejectsOutOfRangeCounts)
{
    QuietErrors quiet;
    CPLErrorReset();
    EXPECT_EQ(pgp_executor_get(-1), nullptr);
    EXPECT_EQ(CPLGetLastErrorType(), CE_Failure);
    EXPECT_EQ(pgp_executor_get(PGP_EXECUTOR_MAX_THREADS + 1), nullptr);
}

// ------------------------------------------------------------------- runs

struct OrderRecorder {
    std::vector<size_t> order;
    std::vector<std::thread::id> threads;
};

int RecordOrder(void *arg, size_t index)
{
    auto *rec = static_cast<OrderRecorder *>(arg);
    rec->order.push_back(index);
    rec->threads.push_back(std::this_thread::get_id());
    return 0;
}

TEST(ExecutorRun, SerialRunsInIndexOrderOnCaller)
{
    OrderRecorder rec;
    ASSERT_EQ(pgp_executor_run(Executor(0), 100, RecordOrder, &rec, nullptr, nullptr), CE_None);
    ASSERT_EQ(rec.order.size(), 100u);
    for (size_t i = 0; i < rec.order.size(); i++) {
        EXPECT_EQ(rec.order[i], i);
        EXPECT_EQ(rec.threads[i], std::this_thread::get_id());
    }
}

struct CountRuns {
    explicit CountRuns(size_t n) : runs(n) {}
    std::vector<std::atomic<int>> runs;
};

int CountRun(void *arg, size_t index)
{
    static_cast<CountRuns *>(arg)->runs[index]++;
    return 0;
}

class ExecutorThreads : public ::testing::TestWithParam<int> {};

TEST_P(ExecutorThreads, EveryJobRunsExactlyOnce)
{
    const size_t n = 10000;
    CountRuns counts(n);
    ASSERT_EQ(pgp_executor_run(Executor(GetParam()), n, CountRun, &counts, nullptr, nullptr),
              CE_None);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(counts.runs[i].load(), 1) << "job " << i;
}

TEST_P(ExecutorThreads, ManyCallersShareThePool)
{
    const size_t n = 2000;
    std::vector<std::unique_ptr<CountRuns>> counts;
    std::vector<std::thread> callers;
    std::vector<CPLErr> results(6, CE_Failure);
    pgp_executor *ex = Executor(GetParam());
    for (size_t c = 0; c < results.size(); c++)
        counts.emplace_back(new CountRuns(n));
    for (size_t c = 0; c < results.size(); c++)
        callers.emplace_back([&, c] {
            results[c] = pgp_executor_run(ex, n, CountRun, counts[c].get(), nullptr, nullptr);
        });
    for (auto &t : callers)
        t.join();
    for (size_t c = 0; c < results.size(); c++) {
        EXPECT_EQ(results[c], CE_None);
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(counts[c]->runs[i].load(), 1) << "caller " << c << " job " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Pools, ExecutorThreads, ::testing::Values(1, 2, 4, 8));

struct Rendezvous {
    std::mutex mutex;
    std::condition_variable changed;
    int arrived = 0;
    int needed = 0;
};

int MeetTheOthers(void *arg, size_t index)
{
    auto *r = static_cast<Rendezvous *>(arg);
    std::unique_lock<std::mutex> lock(r->mutex);
    r->arrived++;
    r->changed.notify_all();
    if (!r->changed.wait_for(lock, std::chrono::seconds(20),
                             [r] { return r->arrived >= r->needed; })) {
        CPLError(CE_Failure, CPLE_AppDefined, "job %zu ran alone: the others never started",
                 index);
        return 1;
    }
    return 0;
}

// Each job waits for the other, so both must run at once on two threads.
struct ThreadLog {
    Rendezvous meet;
    std::mutex mutex;
    std::set<std::thread::id> threads;
    std::vector<std::thread::id> by_job;
};

int LogThreadTogether(void *arg, size_t index)
{
    auto *log = static_cast<ThreadLog *>(arg);
    if (MeetTheOthers(&log->meet, index) != 0)
        return 1;
    std::lock_guard<std::mutex> lock(log->mutex);
    log->threads.insert(std::this_thread::get_id());
    log->by_job[index] = std::this_thread::get_id();
    return 0;
}

TEST(ExecutorRun, CallerRunsJobsBesideTheWorkers)
{
    ThreadLog log;
    log.meet.needed = 2;
    log.by_job.resize(2);
    ASSERT_EQ(pgp_executor_run(Executor(1), 2, LogThreadTogether, &log, nullptr, nullptr), CE_None);
    EXPECT_EQ(log.threads.size(), 2u);
    EXPECT_TRUE(log.by_job[0] == std::this_thread::get_id() ||
                log.by_job[1] == std::this_thread::get_id());
}

// --------------------------------------------------------------- failures

struct FailureScenario {
    std::vector<size_t> failing;  // jobs that fail with "boom <i>"
    // With two failing jobs: the one that fails first, while the other runs.
    size_t first_to_fail = SIZE_MAX;
    bool silent = false;  // fail without CPLError
    std::atomic<bool> second_to_fail_started{false};
    std::atomic<bool> failure_returned{false};
    std::atomic<int> started{0};
    std::atomic<int> started_after_failure{0};
};

// Bounded, so that a serial run (where the other job never overlaps) goes on.
void WaitUntil(const std::atomic<bool> &flag)
{
    for (int i = 0; i < 200 && !flag; i++)
        SleepMs(1);
}

int FailSomeJobs(void *arg, size_t index)
{
    auto *s = static_cast<FailureScenario *>(arg);
    s->started++;
    if (s->failure_returned)
        s->started_after_failure++;
    if (std::find(s->failing.begin(), s->failing.end(), index) == s->failing.end()) {
        SleepMs(1);
        return 0;
    }
    if (index == s->first_to_fail) {
        WaitUntil(s->second_to_fail_started);
    } else if (s->first_to_fail != SIZE_MAX) {
        s->second_to_fail_started = true;
        WaitUntil(s->failure_returned);
        SleepMs(10);  // let the executor record the first failure
    }
    if (!s->silent) {
        CPLError(CE_Failure, CPLE_AppDefined, "inner %zu", index);
        CPLError(CE_Failure, CPLE_AppDefined, "boom %zu", index);
    }
    s->failure_returned = true;
    return 1;
}

class ExecutorFailure : public ::testing::TestWithParam<int> {};

TEST_P(ExecutorFailure, StopsClaimsAndReraisesOnCaller)
{
    QuietErrors quiet;
    FailureScenario s;
    s.failing = {7};
    const int n = 1000;
    CPLErrorReset();
    EXPECT_EQ(pgp_executor_run(Executor(GetParam()), n, FailSomeJobs, &s, nullptr, nullptr),
              CE_Failure);
    EXPECT_EQ(CPLGetLastErrorType(), CE_Failure);
    EXPECT_EQ(CPLGetLastErrorNo(), CPLE_AppDefined);
    EXPECT_STREQ(CPLGetLastErrorMsg(), "boom 7");  // the job's last error, not "inner 7"
    // Each thread may have claimed one job before the failure was recorded.
    EXPECT_LE(s.started_after_failure.load(), 2 * (GetParam() + 1));
    EXPECT_LT(s.started.load(), n / 4);
}

TEST_P(ExecutorFailure, LowestIndexFailureWins)
{
    QuietErrors quiet;
    for (size_t first_to_fail : {3, 5}) {
        FailureScenario s;
        s.failing = {3, 5};
        s.first_to_fail = first_to_fail;
        EXPECT_EQ(pgp_executor_run(Executor(GetParam()), 100, FailSomeJobs, &s, nullptr, nullptr),
                  CE_Failure);
        EXPECT_STREQ(CPLGetLastErrorMsg(), "boom 3") << "job " << first_to_fail << " failed first";
    }
}

TEST_P(ExecutorFailure, FailureWithoutMessageIsStillReported)
{
    QuietErrors quiet;
    FailureScenario s;
    s.failing = {3};
    s.silent = true;
    CPLErrorReset();
    EXPECT_EQ(pgp_executor_run(Executor(GetParam()), 50, FailSomeJobs, &s, nullptr, nullptr),
              CE_Failure);
    EXPECT_EQ(CPLGetLastErrorType(), CE_Failure);
    EXPECT_STREQ(CPLGetLastErrorMsg(), "job 3 failed without an error message");
}

int WarnEachJob(void *, size_t index)
{
    CPLError(CE_Warning, CPLE_NotSupported, "careful %zu", index);
    return 0;
}

TEST_P(ExecutorFailure, WarningsAreReemittedOnCaller)
{
    CollectErrors collected;
    ASSERT_EQ(pgp_executor_run(Executor(GetParam()), 8, WarnEachJob, nullptr, nullptr, nullptr),
              CE_None);
    std::set<std::string> messages;
    for (const auto &e : collected.entries) {
        EXPECT_EQ(e.cls, CE_Warning);
        EXPECT_EQ(e.no, CPLE_NotSupported);
        EXPECT_EQ(e.thread, std::this_thread::get_id());
        messages.insert(e.msg);
    }
    EXPECT_EQ(collected.entries.size(), 8u);
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(messages.count("careful " + std::to_string(i)), 1u) << i;
}

TEST_P(ExecutorFailure, ManyWarningsAreCappedAndCounted)
{
    CollectErrors collected;
    ASSERT_EQ(pgp_executor_run(Executor(GetParam()), 100, WarnEachJob, nullptr, nullptr, nullptr),
              CE_None);
    ASSERT_EQ(collected.entries.size(), 17u);
    EXPECT_EQ(collected.entries.back().msg, "84 more warnings of the same batch not shown");
}

int FailButRecover(void *, size_t)
{
    CPLError(CE_Failure, CPLE_AppDefined, "recovered from this");
    return 0;
}

TEST_P(ExecutorFailure, RecoveredErrorsDoNotLeakIntoCallerState)
{
    QuietErrors quiet;
    CPLErrorReset();
    EXPECT_EQ(pgp_executor_run(Executor(GetParam()), 20, FailButRecover, nullptr, nullptr, nullptr),
              CE_None);
    EXPECT_EQ(CPLGetLastErrorType(), CE_None);
    EXPECT_STREQ(CPLGetLastErrorMsg(), "");
}

INSTANTIATE_TEST_SUITE_P(Executors, ExecutorFailure, ::testing::Values(0, 1, 4));

// --------------------------------------------------------------- progress

struct ProgressLog {
    std::vector<double> fractions;
    std::vector<std::thread::id> threads;
    size_t stop_after_calls = SIZE_MAX;
    std::atomic<int> jobs_run{0};
};

int CPL_STDCALL LogProgress(double fraction, const char *, void *arg)
{
    auto *log = static_cast<ProgressLog *>(arg);
    log->fractions.push_back(fraction);
    log->threads.push_back(std::this_thread::get_id());
    return log->fractions.size() < log->stop_after_calls;
}

int CountJobSlowly(void *arg, size_t)
{
    static_cast<ProgressLog *>(arg)->jobs_run++;
    SleepMs(0.2);
    return 0;
}

class ExecutorProgress : public ::testing::TestWithParam<int> {};

TEST_P(ExecutorProgress, ReportedOnCallerAndEndsAtOne)
{
    ProgressLog log;
    ASSERT_EQ(pgp_executor_run(Executor(GetParam()), 200, CountJobSlowly, &log, LogProgress, &log),
              CE_None);
    ASSERT_FALSE(log.fractions.empty());
    EXPECT_EQ(log.fractions.back(), 1.0);
    for (size_t i = 0; i < log.fractions.size(); i++) {
        EXPECT_EQ(log.threads[i], std::this_thread::get_id());
        EXPECT_GT(log.fractions[i], 0.0);
        if (i > 0) {
            EXPECT_GT(log.fractions[i], log.fractions[i - 1]);
        }
    }
}

TEST_P(ExecutorProgress, FalseCancelsWithUserInterrupt)
{
    QuietErrors quiet;
    ProgressLog log;
    log.stop_after_calls = 5;
    const int n = 2000;
    EXPECT_EQ(pgp_executor_run(Executor(GetParam()), n, CountJobSlowly, &log, LogProgress, &log),
              CE_Failure);
    EXPECT_EQ(CPLGetLastErrorNo(), CPLE_UserInterrupt);
    EXPECT_STREQ(CPLGetLastErrorMsg(), "Interrupted by user");
    EXPECT_EQ(log.fractions.size(), 5u);
    EXPECT_LT(log.jobs_run.load(), n / 4);
}

INSTANTIATE_TEST_SUITE_P(Executors, ExecutorProgress, ::testing::Values(0, 1, 4));

TEST(ExecutorRun, NoJobsReportsCompletion)
{
    ProgressLog log;
    EXPECT_EQ(pgp_executor_run(Executor(2), 0, CountJobSlowly, &log, LogProgress, &log), CE_None);
    EXPECT_EQ(log.fractions, std::vector<double>{1.0});
    EXPECT_EQ(log.jobs_run.load(), 0);
}

// --------------------------------------------------------- config options

struct OptionsSeen {
    std::string expected_test_option;  // "" = must be unset
    std::atomic<int> wrong{0};
    std::atomic<int> on_other_threads{0};
    std::thread::id caller = std::this_thread::get_id();
};

int CheckOptions(void *arg, size_t)
{
    auto *seen = static_cast<OptionsSeen *>(arg);
    const char *test_option = CPLGetConfigOption("PGP_TEST_OPTION", "");
    if (seen->expected_test_option != test_option ||
        !EQUAL(CPLGetConfigOption("GDAL_NUM_THREADS", ""), "1") ||
        !EQUAL(CPLGetConfigOption("VRT_NUM_THREADS", ""), "1"))
        seen->wrong++;
    if (std::this_thread::get_id() != seen->caller)
        seen->on_other_threads++;
    SleepMs(1);
    return 0;
}

TEST(ExecutorRun, JobsInheritCallerThreadLocalOptions)
{
    char **before = CPLGetThreadLocalConfigOptions();
    CPLSetThreadLocalConfigOption("PGP_TEST_OPTION", "hello");
    CPLSetThreadLocalConfigOption("GDAL_NUM_THREADS", "ALL_CPUS");
    char **caller_options = CPLGetThreadLocalConfigOptions();

    OptionsSeen seen;
    seen.expected_test_option = "hello";
    EXPECT_EQ(pgp_executor_run(Executor(4), 64, CheckOptions, &seen, nullptr, nullptr), CE_None);
    EXPECT_EQ(seen.wrong.load(), 0);
    EXPECT_GT(seen.on_other_threads.load(), 0);

    char **after = CPLGetThreadLocalConfigOptions();
    EXPECT_EQ(CSLCount(after), CSLCount(caller_options));
    for (int i = 0; caller_options && caller_options[i]; i++)
        EXPECT_STREQ(after[i], caller_options[i]);
    CSLDestroy(after);
    CSLDestroy(caller_options);

    // Workers keep nothing from the previous batch.
    CPLSetThreadLocalConfigOptions(before);
    CSLDestroy(before);
    OptionsSeen unset;
    EXPECT_EQ(pgp_executor_run(Executor(4), 64, CheckOptions, &unset, nullptr, nullptr), CE_None);
    EXPECT_EQ(unset.wrong.load(), 0);
}

// ------------------------------------------------------------ nesting

struct Nested {
    pgp_executor *ex;
    size_t inner_jobs;
    size_t failing_outer = SIZE_MAX;
    std::atomic<int> inner_runs{0};
};

struct InnerBatch {
    Nested *nested;
    bool fails;
};

int InnerJob(void *arg, size_t index)
{
    auto *inner = static_cast<InnerBatch *>(arg);
    inner->nested->inner_runs++;
    if (inner->fails && index == inner->nested->inner_jobs - 1) {
        CPLError(CE_Failure, CPLE_FileIO, "inner failure");
        return 1;
    }
    return 0;
}

int OuterJob(void *arg, size_t index)
{
    auto *nested = static_cast<Nested *>(arg);
    InnerBatch inner{nested, index == nested->failing_outer};
    SleepMs(5);  // let every thread hold an outer job
    if (pgp_executor_run(nested->ex, nested->inner_jobs, InnerJob, &inner, nullptr, nullptr) ==
        CE_None)
        return 0;
    std::string cause = CPLGetLastErrorMsg();
    CPLError(CE_Failure, CPLGetLastErrorNo(), "outer %zu: %s", index, cause.c_str());
    return 1;
}

TEST(ExecutorRun, NestedRunsOnOneWorkerComplete)
{
    RunWithDeadline(
        [] {
            Nested nested;
            nested.ex = Executor(1);
            nested.inner_jobs = 16;
            EXPECT_EQ(pgp_executor_run(nested.ex, 4, OuterJob, &nested, nullptr, nullptr),
                      CE_None);
            EXPECT_EQ(nested.inner_runs.load(), 4 * 16);
        },
        60);
}

TEST(ExecutorRun, NestedFailureReachesOuterCaller)
{
    RunWithDeadline(
        [] {
            QuietErrors quiet;
            Nested nested;
            nested.ex = Executor(2);
            nested.inner_jobs = 8;
            nested.failing_outer = 2;
            EXPECT_EQ(pgp_executor_run(nested.ex, 4, OuterJob, &nested, nullptr, nullptr),
                      CE_Failure);
            EXPECT_EQ(CPLGetLastErrorNo(), CPLE_FileIO);
            EXPECT_STREQ(CPLGetLastErrorMsg(), "outer 2: inner failure");
        },
        60);
}

TEST(ExecutorRegistry, ShutdownThenGetAgain)
{
    const size_t n = 500;
    CountRuns first(n);
    ASSERT_EQ(pgp_executor_run(Executor(3), n, CountRun, &first, nullptr, nullptr), CE_None);
    pgp_executor_shutdown_all();
    pgp_executor *again = Executor(3);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(pgp_executor_threads(again), 3);
    CountRuns second(n);
    ASSERT_EQ(pgp_executor_run(again, n, CountRun, &second, nullptr, nullptr), CE_None);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(second.runs[i].load(), 1);
}

}  // namespace

// ------------------------------------------------------------- background

// Background jobs that block until the gate opens, counting how many started.
struct BlockedBackground {
    std::mutex mutex;
    std::condition_variable changed;
    int started = 0;
    bool open = false;
};

int WaitAtGate(void *arg, size_t)
{
    auto *g = static_cast<BlockedBackground *>(arg);
    std::unique_lock<std::mutex> lock(g->mutex);
    g->started++;
    g->changed.notify_all();
    g->changed.wait(lock, [g] { return g->open; });
    return 0;
}

// Foreground jobs that each wait (bounded) until all of them run at once: the
// batch only succeeds if enough threads are free to run it concurrently.

int CountSlowly(void *arg, size_t)
{
    std::this_thread::sleep_for(std::chrono::milliseconds(2)); // still queued when waited on
    ++*static_cast<std::atomic<int> *>(arg);
    return 0;
}

TEST(ExecutorBackground, WaitReturnsOnceEveryJobHasRun)
{
    std::atomic<int> ran{0};
    pgp_background *group = pgp_background_new(Executor(3));
    ASSERT_NE(group, nullptr);
    for (size_t i = 0; i < 40; i++)
        pgp_background_submit(group, CountSlowly, &ran, i);
    pgp_background_wait(group);
    EXPECT_EQ(ran.load(), 40);
    EXPECT_EQ(pgp_background_pending(group), 0u);
    pgp_background_free(group);
}

TEST(ExecutorBackground, PrefetchOccupiesAtMostHalfThePool)
{
    for (int threads : {1, 2, 4}) {
        SCOPED_TRACE(threads);
        const int limit = (threads + 1) / 2;
        pgp_executor *ex = Executor(threads);
        BlockedBackground gate;
        pgp_background *group = pgp_background_new(ex);
        for (int i = 0; i < 2 * threads; i++)
            pgp_background_submit(group, WaitAtGate, &gate, i);
        {
            std::unique_lock<std::mutex> lock(gate.mutex);
            gate.changed.wait(lock, [&] { return gate.started >= limit; });
        }
        // The caller plus every worker that prefetch left free meet in one batch,
        // while the prefetch jobs are still blocked.
        Rendezvous meeting;
        meeting.needed = 1 + threads - limit;
        EXPECT_EQ(pgp_executor_run(ex, meeting.needed, MeetTheOthers, &meeting, nullptr,
                                   nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        {
            std::lock_guard<std::mutex> lock(gate.mutex);
            EXPECT_EQ(gate.started, limit);
            gate.open = true;
        }
        gate.changed.notify_all();
        pgp_background_free(group); // drops the queued jobs, waits for the running ones
    }
}
