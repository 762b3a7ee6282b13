/* core/simd.c — instruction-set levels and the vector math (pgp/simd.h).
 *
 * The vector math wraps SLEEF's "cinz" functions: the deterministic family
 * that uses no FMA, so its 2-, 4- and 8-lane versions run one algorithm with
 * the same roundings and agree bit for bit (and with its scalar "purec"
 * version, which the unit tests compare every level against).
 */
#include "pgp/simd.h"
#include "pgp/settings.h"

#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"

static const char *const isa_names[PGP_ISA_COUNT] = {"baseline", "avx2", "avx512"};

const char *pgp_isa_name(pgp_isa isa)
{
    return isa >= 0 && isa < PGP_ISA_COUNT ? isa_names[isa] : "unknown";
}

int pgp_isa_supported(pgp_isa isa)
{
    __builtin_cpu_init(); /* libgcc's checks include the OS saving the vector state */
    switch (isa) {
    case PGP_ISA_BASELINE:
        return 1;
    case PGP_ISA_AVX2:
        return __builtin_cpu_supports("avx2");
    case PGP_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
    default:
        return 0;
    }
}

/* A pgp_isa once chosen; read and written with __atomic builtins because
 * pgp_isa_force may change it while other threads read it. */
static int active_isa = -1;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose_isa(void)
{
    const char *text = CPLGetConfigOption("PGP_ISA", NULL);
    int requested = -1;
    char err[256];
    if (text != NULL && pgp_setting_isa(text, "PGP_ISA", &requested, err, sizeof err) != 0) {
        CPLError(CE_Warning, CPLE_IllegalArg, "%s; using auto", err);
        requested = -1;
    }
    int isa = requested < 0 ? PGP_ISA_COUNT - 1 : requested;
    while (isa > PGP_ISA_BASELINE && !pgp_isa_supported((pgp_isa)isa))
        isa--;
    if (requested >= 0 && isa != requested)
        CPLError(CE_Warning, CPLE_NotSupported, "PGP_ISA=%s: this CPU does not run it; using %s",
                 pgp_isa_name((pgp_isa)requested), pgp_isa_name((pgp_isa)isa));
    int unset = -1; /* a level forced before the first use stays */
    __atomic_compare_exchange_n(&active_isa, &unset, isa, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

pgp_isa pgp_isa_active(void)
{
    pthread_once(&choose_once, choose_isa);
    return (pgp_isa)__atomic_load_n(&active_isa, __ATOMIC_RELAXED);
}

int pgp_isa_force(pgp_isa isa)
{
    if (isa < 0 || isa >= PGP_ISA_COUNT || !pgp_isa_supported(isa))
        return -1;
    pthread_once(&choose_once, choose_isa);
    __atomic_store_n(&active_isa, (int)isa, __ATOMIC_RELAXED);
    return 0;
}

/* ---- vector math ---------------------------------------------------------
 * One wrapper per function and level: whole vectors, then the tail through a
 * zero-padded vector (a lane's result depends on its own input only, so the
 * padding changes nothing). A level is the argument list
 *     name, target, vector type, lanes, SLEEF suffix, load, store. */
#define LEVEL_BASELINE baseline, "sse2", __m128d, 2, sse2, _mm_loadu_pd, _mm_storeu_pd
#define LEVEL_AVX2 avx2, "avx2", __m256d, 4, avx, _mm256_loadu_pd, _mm256_storeu_pd
#define LEVEL_AVX512                                                                     \
    avx512, "avx512f", __m512d, 8, avx512fnofma, _mm512_loadu_pd, _mm512_storeu_pd

#define SLEEF_CINZ(name, lanes, suffix) Sleef_cinz_##name##d##lanes##_u10##suffix

/* The SLEEF functions used, declared here: sleef.h declares a level's
 * functions only when the whole file targets it (__AVX__, __AVX512F__), and
 * this file targets each level per function. */
#define DECLARE_UNARY(name, isa, target_spec, vec, lanes, suffix, load, store)          \
    __attribute__((const, target(target_spec))) vec SLEEF_CINZ(name, lanes, suffix)(vec);
#define DECLARE_BINARY(name, isa, target_spec, vec, lanes, suffix, load, store)         \
    __attribute__((const, target(target_spec))) vec SLEEF_CINZ(name, lanes, suffix)(vec, vec);

/* The tails' padded vectors: GCC gives them the vector's alignment and then
 * addresses them aligned, which ASan's fake stack frames (detect_stack_use_
 * after_return, on in tests/sanitize/run_gdal_tests.sh) do not provide, so
 * the wrappers are left out of ASan's stack instrumentation; the memcpy calls
 * are still checked by its interceptor. */
#define TAIL_SAFE __attribute__((no_sanitize_address))
#define DEFINE_UNARY(name, isa, target_spec, vec, lanes, suffix, load, store)           \
    TAIL_SAFE __attribute__((target(target_spec))) static void name##_##isa(             \
        const double *x, double *y, size_t n)                                            \
    {                                                                                    \
        size_t i = 0;                                                                    \
        for (; i + lanes <= n; i += lanes)                                               \
            store(y + i, SLEEF_CINZ(name, lanes, suffix)(load(x + i)));                  \
        if (i < n) {                                                                     \
            double pad_x[lanes] = {0};                                                   \
            memcpy(pad_x, x + i, (n - i) * sizeof(double));                              \
            store(pad_x, SLEEF_CINZ(name, lanes, suffix)(load(pad_x)));                  \
            memcpy(y + i, pad_x, (n - i) * sizeof(double));                              \
        }                                                                                \
    }
#define DEFINE_BINARY(name, isa, target_spec, vec, lanes, suffix, load, store)          \
    TAIL_SAFE __attribute__((target(target_spec))) static void name##_##isa(             \
        const double *x, const double *z, double *y, size_t n)                           \
    {                                                                                    \
        size_t i = 0;                                                                    \
        for (; i + lanes <= n; i += lanes)                                               \
            store(y + i, SLEEF_CINZ(name, lanes, suffix)(load(x + i), load(z + i)));     \
        if (i < n) {                                                                     \
            double pad_x[lanes] = {0}, pad_z[lanes] = {0};                               \
            memcpy(pad_x, x + i, (n - i) * sizeof(double));                              \
            memcpy(pad_z, z + i, (n - i) * sizeof(double));                              \
            store(pad_x, SLEEF_CINZ(name, lanes, suffix)(load(pad_x), load(pad_z)));     \
            memcpy(y + i, pad_x, (n - i) * sizeof(double));                              \
        }                                                                                \
    }
#define TABLE_ENTRY(name, isa, ...) name##_##isa,

/* The forwarding layer expands LEVEL before the macros paste its tokens. */
#define FORWARD(macro, ...) macro(__VA_ARGS__)
#define DEFINE_LEVEL_UNARY(name) FORWARD(DEFINE_UNARY, name, LEVEL)
#define DEFINE_LEVEL_BINARY(name) FORWARD(DEFINE_BINARY, name, LEVEL)
#define LEVEL_ENTRY(name) FORWARD(TABLE_ENTRY, name, LEVEL)
#define DECLARE_LEVEL_UNARY(name) FORWARD(DECLARE_UNARY, name, LEVEL)
#define DECLARE_LEVEL_BINARY(name) FORWARD(DECLARE_BINARY, name, LEVEL)
#define DEFINE_LEVEL(table)                                                              \
    PGP_VEC_UNARY_FUNCTIONS(DECLARE_LEVEL_UNARY)                                         \
    PGP_VEC_BINARY_FUNCTIONS(DECLARE_LEVEL_BINARY)                                       \
    PGP_VEC_UNARY_FUNCTIONS(DEFINE_LEVEL_UNARY)                                          \
    PGP_VEC_BINARY_FUNCTIONS(DEFINE_LEVEL_BINARY)                                        \
    static const pgp_vec_math table = {PGP_VEC_UNARY_FUNCTIONS(LEVEL_ENTRY)              \
                                           PGP_VEC_BINARY_FUNCTIONS(LEVEL_ENTRY)};

#define LEVEL LEVEL_BASELINE
DEFINE_LEVEL(math_baseline)
#undef LEVEL
#define LEVEL LEVEL_AVX2
DEFINE_LEVEL(math_avx2)
#undef LEVEL
#define LEVEL LEVEL_AVX512
DEFINE_LEVEL(math_avx512)
#undef LEVEL

const pgp_vec_math *pgp_vec_math_for(pgp_isa isa)
{
    static const pgp_vec_math *const tables[PGP_ISA_COUNT] = {&math_baseline, &math_avx2,
                                                              &math_avx512};
    return tables[isa >= 0 && isa < PGP_ISA_COUNT ? isa : PGP_ISA_BASELINE];
}
