/* pgp/simd.h — instruction-set levels, their run-time choice and the vector
 * math (docs/design-notes.md#vector-kernels-and-vector-math).
 *
 * The hot loops (the expression VM's instructions, the convolution taps) are
 * compiled once per level in one binary and picked at run time. Every level
 * gives the same bits: the loops are compiled without floating-point
 * contraction, so a vector lane does exactly the scalar operations, and the
 * transcendental functions come from SLEEF's deterministic ("cinz": no FMA)
 * family, one algorithm at every vector width.
 */
#ifndef PGP_SIMD_H
#define PGP_SIMD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pgp_isa {
    PGP_ISA_BASELINE, /* x86-64 (SSE2): SLEEF's 2-lane functions */
    PGP_ISA_AVX2,     /* AVX2 loops, SLEEF's 4-lane AVX functions */
    PGP_ISA_AVX512,   /* AVX-512F loops, SLEEF's 8-lane AVX-512F functions without FMA */
    PGP_ISA_COUNT
} pgp_isa;

/* Instantiates a kernel at every level: for a static always_inline body
 * name##_on, defines name##_baseline, name##_avx2 and name##_avx512, each the
 * body compiled for its level's instructions, and the table
 * name##_levels[PGP_ISA_COUNT] of them (fn_type *) indexed by pgp_isa. params
 * and args are the parenthesised parameter and argument lists. The file must
 * be compiled with -ffp-contract=off (CMakeLists.txt): a level with FMA would
 * otherwise fuse multiply-adds and round differently. */
#define PGP_ISA_VARIANT(name, isa, target_spec, params, args)                            \
    __attribute__((target(target_spec))) static void name##_##isa params { name##_on args; }
#define PGP_ISA_VARIANTS(fn_type, name, params, args)                                    \
    PGP_ISA_VARIANT(name, baseline, "sse2", params, args)                                \
    PGP_ISA_VARIANT(name, avx2, "avx2", params, args)                                    \
    PGP_ISA_VARIANT(name, avx512, "avx512f", params, args)                               \
    static const fn_type name##_levels[PGP_ISA_COUNT] = {name##_baseline, name##_avx2,   \
                                                         name##_avx512};

/* "baseline", "avx2", "avx512". */
const char *pgp_isa_name(pgp_isa isa);

/* Whether this CPU (and OS) runs the level. */
int pgp_isa_supported(pgp_isa isa);

/* The level the kernels use: chosen at first use from the PGP_ISA config
 * option (auto, the default, is the best supported level; a level the CPU
 * lacks falls back to the best it has, with a warning). */
pgp_isa pgp_isa_active(void);

/* Makes isa the active level (tests compare the levels this way). Returns 0,
 * or -1 when this CPU does not run it (the active level is then unchanged). */
int pgp_isa_force(pgp_isa isa);

/* y[i] = f(x[i]) (or f(x[i], z[i])) for i < n, in place allowed. */
typedef void (*pgp_vec_unary)(const double *x, double *y, size_t n);
typedef void (*pgp_vec_binary)(const double *x, const double *z, double *y, size_t n);

/* The vector math functions, each within 1 ULP of the exact result (SLEEF's
 * u10 bound), with C99's values at NaN, infinities, zeros and poles. */
#define PGP_VEC_UNARY_FUNCTIONS(X)                                                       \
    X(exp) X(log) X(log10) X(log2) X(sin) X(cos) X(tan) X(asin) X(acos) X(atan)         \
    X(sinh) X(cosh) X(tanh)
#define PGP_VEC_BINARY_FUNCTIONS(X) X(pow) X(atan2)

#define PGP_VEC_MEMBER_UNARY(name) pgp_vec_unary name;
#define PGP_VEC_MEMBER_BINARY(name) pgp_vec_binary name;
typedef struct pgp_vec_math {
    PGP_VEC_UNARY_FUNCTIONS(PGP_VEC_MEMBER_UNARY)
    PGP_VEC_BINARY_FUNCTIONS(PGP_VEC_MEMBER_BINARY)
} pgp_vec_math;

/* The vector math of one level (which must be supported to be called). */
const pgp_vec_math *pgp_vec_math_for(pgp_isa isa);

#ifdef __cplusplus
}
#endif

#endif
