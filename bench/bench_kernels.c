/* bench/bench_kernels.c — the vector kernels alone, at every instruction-set
 * level this CPU runs (issue 19 items 1-2): nanoseconds per pixel of
 * pgp_expr_eval and of a 5x5 DIRECT convolution tile, with glibc's scalar
 * log / sin / pow over the same data as the reference in the same run (abs
 * included where the expression has it).
 * Medians of --repeat passes over 1M pixels (tiles of 64K), timed in thread CPU
 * time, which other processes on a shared machine disturb less than wall time.
 *
 * Built as pgp_bench_kernels (CMakeLists.txt); bench/bench_vector.py runs it.
 * Usage: pgp_bench_kernels [repeat]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgp/alloc.h"
#include "pgp/convolve.h"
#include "pgp/expr.h"
#include "pgp/simd.h"

#define TILE 256
#define N_PIXELS (TILE * TILE)
#define PASSES 16 /* tiles per timed pass: 1M pixels */
#define MAX_REPEAT 101

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the machine may be shared */
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over repeat timed passes of ns per pixel. */
#define TIME_NS_PER_PIXEL(result, repeat, body)                                          \
    do {                                                                                 \
        double samples_[MAX_REPEAT];                                                     \
        for (int r_ = 0; r_ < (repeat); r_++) {                                          \
            const double start_ = now();                                                 \
            for (int p_ = 0; p_ < PASSES; p_++) {                                        \
                body;                                                                    \
            }                                                                            \
            samples_[r_] = (now() - start_) * 1e9 / ((double)PASSES * N_PIXELS);         \
        }                                                                                \
        qsort(samples_, (size_t)(repeat), sizeof(double), compare);                      \
        (result) = samples_[(repeat) / 2];                                               \
    } while (0)

static const char *const expressions[] = {
    "(A+B)*C/2", "sqrt(A*A+B*B)+log(1+abs(C))", "log(abs(A))", "exp(A / 10)", "sin(A)",
    "pow(abs(A), B / 100)", "atan2(A, B)", "tanh(A / 50)",
};
#define N_EXPRESSIONS (sizeof expressions / sizeof expressions[0])

int main(int argc, char **argv)
{
    const int repeat = argc > 1 ? atoi(argv[1]) : 9;
    if (repeat < 1 || repeat > MAX_REPEAT) {
        fprintf(stderr, "repeat must be 1 to %d\n", MAX_REPEAT);
        return 2;
    }
    double *in[3], *out = pgp_malloc(N_PIXELS * sizeof(double));
    srand(1);
    for (int v = 0; v < 3; v++) {
        in[v] = pgp_malloc(N_PIXELS * sizeof(double));
        for (int i = 0; i < N_PIXELS; i++)
            in[v][i] = (rand() / (double)RAND_MAX) * 200.0 - 100.0; /* bench/common.py's range */
    }
    const pgp_expr_var vars[] = {{"A", {0, 0, 0.0}}, {"B", {0, 0, 0.0}}, {"C", {0, 0, 0.0}}};
    pgp_expr *programs[N_EXPRESSIONS];
    for (size_t e = 0; e < N_EXPRESSIONS; e++) {
        char err[256];
        programs[e] = pgp_expr_compile(expressions[e], vars, 3, err, sizeof err);
        if (!programs[e]) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    /* A 5x5 gaussian (not separable once rounded? it is: rank 1) and a random 5x5. */
    double gauss[25], full[25];
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 5; c++) {
            gauss[r * 5 + c] = exp(-((r - 2) * (r - 2) + (c - 2) * (c - 2)) / 2.0);
            full[r * 5 + c] = rand() / (double)RAND_MAX - 0.3;
        }
    char err[256];
    pgp_kernel *kernels[2] = {pgp_kernel_new(gauss, NULL, 5, 5, err, sizeof err),
                              pgp_kernel_new(full, NULL, 5, 5, err, sizeof err)};
    const char *kernel_names[2] = {"5x5 gaussian (separable)", "5x5 random (2-D)"};
    const int window = TILE + 4;
    double *signal = pgp_malloc((size_t)window * window * sizeof(double));
    unsigned char *valid = pgp_malloc((size_t)window * window);
    for (int i = 0; i < window * window; i++) {
        signal[i] = in[0][i % N_PIXELS];
        valid[i] = 1;
    }
    pgp_convolve_options options;
    memset(&options, 0, sizeof options);
    options.method = PGP_CONVOLVE_DIRECT;
    options.mask_nodata = 1;
    options.has_tol = 1;
    options.tol = 1e-8;
    pgp_convolve_scratch scratch = {NULL, 0};

    printf("CPU ns per pixel, medians of %d passes over %d pixels\n", repeat, PASSES * N_PIXELS);
    printf("%-32s", "case");
    for (int level = 0; level < PGP_ISA_COUNT; level++)
        if (pgp_isa_supported((pgp_isa)level))
            printf("%10s", pgp_isa_name((pgp_isa)level));
    printf("%10s\n", "glibc");
    for (size_t e = 0; e < N_EXPRESSIONS + 2; e++) {
        const int is_expr = e < N_EXPRESSIONS;
        printf("%-32s", is_expr ? expressions[e] : kernel_names[e - N_EXPRESSIONS]);
        for (int level = 0; level < PGP_ISA_COUNT; level++) {
            double ns;
            if (pgp_isa_force((pgp_isa)level) != 0)
                continue;
            if (is_expr)
                TIME_NS_PER_PIXEL(ns, repeat,
                                  pgp_expr_eval(programs[e], (const double *const *)in,
                                                N_PIXELS, out));
            else
                TIME_NS_PER_PIXEL(ns, repeat,
                                  pgp_convolve_tile(kernels[e - N_EXPRESSIONS], &options, signal,
                                                    valid, TILE, TILE, TILE, TILE, -1e30, out,
                                                    &scratch));
            printf("%10.3f", ns);
        }
        /* glibc's scalar functions (a plain loop GCC vectorises around them) */
        double ns = NAN;
        if (e == 1)
            TIME_NS_PER_PIXEL(ns, repeat, for (int i = 0; i < N_PIXELS; i++) out[i] =
                                              sqrt(in[0][i] * in[0][i] + in[1][i] * in[1][i]) +
                                              log(1 + fabs(in[2][i])));
        else if (e == 2)
            TIME_NS_PER_PIXEL(ns, repeat,
                              for (int i = 0; i < N_PIXELS; i++) out[i] = log(fabs(in[0][i])));
        else if (e == 4)
            TIME_NS_PER_PIXEL(ns, repeat, for (int i = 0; i < N_PIXELS; i++) out[i] = sin(in[0][i]));
        else if (e == 5)
            TIME_NS_PER_PIXEL(ns, repeat, for (int i = 0; i < N_PIXELS; i++)
                                              out[i] = pow(fabs(in[0][i]), in[1][i] / 100));
        if (!isnan(ns))
            printf("%10.3f", ns);
        printf("\n");
    }
    for (size_t e = 0; e < N_EXPRESSIONS; e++)
        pgp_expr_free(programs[e]);
    pgp_kernel_free(kernels[0]);
    pgp_kernel_free(kernels[1]);
    pgp_convolve_scratch_free(&scratch);
    for (int v = 0; v < 3; v++)
        pgp_free(in[v]);
    pgp_free(out);
    pgp_free(signal);
    pgp_free(valid);
    return 0;
}
