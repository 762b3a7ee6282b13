/* core/convolve.c — convolve_2d on one output tile (see pgp/convolve.h).
 *
 * Window coordinates: with the kernel flipped once at creation into taps,
 * taps[a][b] = K[kh-1-a][kw-1-b], the tile is a plain correlation
 *     C[i][j] = sum_a sum_b taps[a][b] * S'[i+a][j+b]
 * over the window (tile grown by the reach), S' being the signal with nodata
 * as 0. The ignore mode's mask M is the same correlation of the validity
 * image (1.0 / 0.0). Both methods compute C and M with the raw kernel;
 * normalisation, the ignore-mode division, setTolToZero and nodata masking
 * are applied afterwards, in one place, so DIRECT and FFT share them.
 *
 * DIRECT accumulates "tap-major": for each tap, out_row[x] += w * in_row[x+b]
 * over a contiguous row, which gcc -O3 vectorises for each instruction-set
 * level (pgp/simd.h; no contraction, so every level adds the same products in
 * the same order); a rank-1 kernel runs as a row pass then a column pass. FFT
 * is FFTW3 double, r2c / c2r, one transform size per (tile size, kernel size),
 * so edge tiles are computed like the rest.
 *
 * A non-finite signal value that is not nodata reaches only the outputs whose
 * footprint gives it a nonzero weight, as in a direct sum: DIRECT skips zero
 * taps; FFT leaves such values out of the transform and adds their terms
 * afterwards, instead of letting one NaN poison the whole tile.
 *
 * Threads: a kernel changes only in its cache of spectra (under its mutex);
 * FFTW plans are made and destroyed under one process-wide mutex and run
 * with per-call buffers (new-array execute), which FFTW allows concurrently.
 */
#include "pgp/convolve.h"
#include "pgp/alloc.h"
#include "pgp/simd.h"

#include <fftw3.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_multiproc.h"
#include "cpl_vsi.h"

#define MUTEX_WAIT_S 1000.0

/* A kernel is separable when max|K - u v^T| <= SEPARABLE_RTOL * max|K|:
 * the two-pass result then differs from the 2-D sum by far less than 1e-9. */
#define SEPARABLE_RTOL 1e-12

/* Ignore mode divides by M only where M > MASK_ROUNDOFF * sum|K'| (K' the
 * kernel as used, normalised or not). FFT round-off in M is ~1e-16 * sum|K'|,
 * so anything at or below the floor means "no valid weight in the footprint"
 * (or a negative-weight kernel cancelling itself out); C is kept there. */
#define MASK_ROUNDOFF 1e-12

/* In FFT mode C and M carry an absolute round-off of ~1e-16 * sum|K|, which
 * C/M magnifies by sum|K|/|M|. Pixels with |M| below this fraction of sum|K|
 * (deep in holes, or at a kernel's faint tail) are recomputed by a direct
 * sum, which keeps the ignore-mode output within 1e-9 of the direct method
 * and makes a footprint without a valid pixel exactly 0, as in DIRECT. (Only
 * ignore mode divides; plain mode leaves ~1e-16 there, which tol zeroes.)
 * Costs direct sums only where M is that small: in big holes with
 * mask_nodata off, or everywhere for a kernel summing to ~0. */
#define FFT_WEAK_MASK_FRACTION 1e-5

/* Operation-count model for AUTO: DIRECT costs one multiply-add per tap and
 * pixel of each pass; FFT costs FFT_COST_PER_NLOGN * N log2 N for
 * N = fft_w * fft_h (r2c, spectrum product, c2r and the copies). Calibrated on
 * this project's build machine (Xeon, gcc 12 -O3 without -march, so SSE2;
 * FFTW 3.3.10): a tap-pixel takes ~0.15 ns, an N log2 N unit ~0.6 ns. For
 * 256x256 tiles the model sends a full kernel to FFT from 9x9 (measured
 * crossover between 9x9: 0.85 ms direct, 0.97 ms FFT and 10x10: 1.09 vs
 * 0.97 ms) and a separable one from 42x42 (measured between 35x35: 0.93 vs
 * 1.0 ms and 41x41: 1.0 vs 0.82 ms). */
#define FFT_COST_PER_NLOGN 4.0

/* The nonzero taps of one row of taps (or of one factor), in order. Zero
 * weights are left out, so a non-finite input under one stays out of the sum
 * (and sparse kernels cost less). */
typedef struct tap_run {
    int count;
    const int *offset;    /* position along the row */
    const double *weight;
} tap_run;

typedef struct kernel_spectrum {
    int fft_w, fft_h;
    fftw_plan forward, inverse; /* r2c and c2r of fft_h x fft_w, new-array use */
    fftw_complex *values;       /* FFT of K (unflipped, top-left) / (fft_w * fft_h) */
    struct kernel_spectrum *next;
} kernel_spectrum;

struct pgp_kernel {
    int rows, cols;
    double sum;        /* of the valid weights */
    double abs_sum;    /* of |valid weights| */
    double *taps;      /* rows x cols, flipped, nodata weights 0 */
    tap_run *row_runs; /* rows: the nonzero taps of each row of taps */
    int separable;     /* taps[a][b] = col_factor[a] * row_factor[b] */
    tap_run col_factor, row_factor;
    int *run_offsets;  /* storage behind all runs */
    double *run_weights;
    /* The spectrum cache is filled lazily by pgp_convolve_tile on a kernel
     * the API otherwise treats as immutable, hence the mutex. */
    CPLMutex *spectra_mutex;
    kernel_spectrum *spectra;
};

/* FFTW's planner keeps global state: every plan creation and destruction, for
 * all kernels, goes through this mutex (on top of
 * fftw_make_planner_thread_safe, in case someone skipped pgp_convolve_init). */
static CPLMutex *planner_mutex;

void pgp_convolve_init(void)
{
    fftw_make_planner_thread_safe();
}

/* ------------------------------------------------------------ kernel */

static void set_error(char *err, size_t errlen, CPL_FORMAT_STRING(const char *fmt), ...)
    CPL_PRINT_FUNC_FORMAT(3, 4);

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}

/* Points run at the nonzero entries of dense[0..n), copying them into the
 * storage at *offsets / *weights, which it advances. */
static void build_run(const double *dense, int n, int **offsets, double **weights, tap_run *run)
{
    int *offset = *offsets;
    double *weight = *weights;
    run->count = 0;
    for (int t = 0; t < n; t++) {
        if (dense[t] != 0) {
            offset[run->count] = t;
            weight[run->count++] = dense[t];
        }
    }
    run->offset = offset;
    run->weight = weight;
    *offsets += run->count;
    *weights += run->count;
}

/* Finds u, v (rows, cols) with taps = u v^T when the taps have rank 1. They
 * come from the row and column through the largest |tap|; a tap is 0 exactly
 * when a factor is, so both passes skip the same weights as the 2-D sum and a
 * non-finite signal value meets the same nonzero weights. */
static int factorise(const pgp_kernel *k, double *u, double *v)
{
    const int kh = k->rows, kw = k->cols;
    int pivot = 0;
    for (int t = 1; t < kh * kw; t++)
        if (fabs(k->taps[t]) > fabs(k->taps[pivot]))
            pivot = t;
    const double max_abs = fabs(k->taps[pivot]);
    if (max_abs == 0)
        return 0; /* all weights 0: the 2-D loop has no tap to run */
    const int pr = pivot / kw, pc = pivot % kw;
    for (int a = 0; a < kh; a++)
        u[a] = k->taps[a * kw + pc];
    for (int b = 0; b < kw; b++)
        v[b] = k->taps[pr * kw + b] / k->taps[pivot];
    for (int a = 0; a < kh; a++) {
        for (int b = 0; b < kw; b++) {
            const double tap = k->taps[a * kw + b], product = u[a] * v[b];
            if (fabs(tap - product) > SEPARABLE_RTOL * max_abs || (tap == 0) != (product == 0))
                return 0;
        }
    }
    return 1;
}

/* Fills the runs: one per row of taps, and the factors' when separable. */
static void build_runs(pgp_kernel *k, double *factors)
{
    const int kh = k->rows, kw = k->cols;
    int *offsets = k->run_offsets;
    double *weights = k->run_weights;
    for (int a = 0; a < kh; a++)
        build_run(k->taps + (size_t)a * kw, kw, &offsets, &weights, &k->row_runs[a]);
    k->separable = factorise(k, factors, factors + kh);
    if (k->separable) {
        build_run(factors, kh, &offsets, &weights, &k->col_factor);
        build_run(factors + kh, kw, &offsets, &weights, &k->row_factor);
    }
}

pgp_kernel *pgp_kernel_new(const double *weights, const unsigned char *valid, int rows,
                           int cols, char *err, size_t errlen)
{
    if (rows <= 0 || cols <= 0) {
        set_error(err, errlen, "kernel of %dx%d is empty", rows, cols);
        return NULL;
    }
    if (rows > PGP_KERNEL_MAX_SIZE || cols > PGP_KERNEL_MAX_SIZE) {
        set_error(err, errlen, "kernel of %dx%d exceeds the %dx%d limit", rows, cols,
                  PGP_KERNEL_MAX_SIZE, PGP_KERNEL_MAX_SIZE);
        return NULL;
    }
    int n_valid = 0;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            if (valid != NULL && !valid[r * cols + c])
                continue;
            if (!isfinite(weights[r * cols + c])) {
                set_error(err, errlen, "kernel weight at row %d, column %d is not finite", r, c);
                return NULL;
            }
            n_valid++;
        }
    }
    if (n_valid == 0) {
        set_error(err, errlen, "every kernel pixel is nodata");
        return NULL;
    }

    const size_t n_taps = (size_t)rows * cols, n_run_taps = n_taps + rows + cols;
    pgp_kernel *k = (pgp_kernel *)pgp_calloc(1, sizeof(*k));
    double *factors = (double *)pgp_malloc_array((size_t)rows + cols, sizeof(double));
    if (k != NULL) {
        k->rows = rows;
        k->cols = cols;
        k->taps = (double *)pgp_malloc_array(n_taps, sizeof(double));
        k->row_runs = (tap_run *)pgp_malloc_array((size_t)rows, sizeof(tap_run));
        k->run_offsets = (int *)pgp_malloc_array(n_run_taps, sizeof(int));
        k->run_weights = (double *)pgp_malloc_array(n_run_taps, sizeof(double));
        k->spectra_mutex = CPLCreateMutex(); /* returned acquired */
        if (k->spectra_mutex != NULL)
            CPLReleaseMutex(k->spectra_mutex);
    }
    if (k == NULL || factors == NULL || k->taps == NULL || k->row_runs == NULL ||
        k->run_offsets == NULL || k->run_weights == NULL || k->spectra_mutex == NULL) {
        pgp_kernel_free(k);
        pgp_free(factors);
        set_error(err, errlen, "out of memory for a kernel of %dx%d", rows, cols);
        return NULL;
    }
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            const int i = r * cols + c;
            const double weight = (valid == NULL || valid[i]) ? weights[i] : 0.0;
            k->taps[(rows - 1 - r) * cols + (cols - 1 - c)] = weight;
            k->sum += weight;
            k->abs_sum += fabs(weight);
        }
    }
    build_runs(k, factors);
    pgp_free(factors);
    return k;
}

static void destroy_plan(fftw_plan plan)
{
    CPLCreateOrAcquireMutex(&planner_mutex, MUTEX_WAIT_S);
    fftw_destroy_plan(plan);
    CPLReleaseMutex(planner_mutex);
}

static void spectrum_free(kernel_spectrum *s)
{
    if (s->forward != NULL)
        destroy_plan(s->forward);
    if (s->inverse != NULL)
        destroy_plan(s->inverse);
    pgp_free_aligned(s->values);
    pgp_free(s);
}

void pgp_kernel_free(pgp_kernel *kernel)
{
    if (kernel == NULL)
        return;
    while (kernel->spectra != NULL) {
        kernel_spectrum *next = kernel->spectra->next;
        spectrum_free(kernel->spectra);
        kernel->spectra = next;
    }
    if (kernel->spectra_mutex != NULL)
        CPLDestroyMutex(kernel->spectra_mutex);
    pgp_free(kernel->run_weights);
    pgp_free(kernel->run_offsets);
    pgp_free(kernel->row_runs);
    pgp_free(kernel->taps);
    pgp_free(kernel);
}

/* A fine tap at offset d from the centre lands on coarse offset round(d / scale). */
static int coarse_offset(int d, double scale)
{
    return (int)floor(d / scale + 0.5);
}

pgp_kernel *pgp_kernel_downsample(const pgp_kernel *kernel, double scale_y, double scale_x,
                                  char *err, size_t errlen)
{
    const int cy = kernel->rows / 2, cx = kernel->cols / 2;
    /* Odd and centred: the reach rule (centre at size / 2) then holds for any
     * spread of the coarse offsets. */
    const int my = MAX(-coarse_offset(-cy, scale_y),
                       coarse_offset(kernel->rows - 1 - cy, scale_y));
    const int mx = MAX(-coarse_offset(-cx, scale_x),
                       coarse_offset(kernel->cols - 1 - cx, scale_x));
    const int rows = 2 * my + 1, cols = 2 * mx + 1;
    double *weights = (double *)pgp_calloc((size_t)rows * cols, sizeof(double));
    pgp_kernel *coarse;
    if (weights == NULL) {
        set_error(err, errlen, "out of memory for a kernel of %dx%d", rows, cols);
        return NULL;
    }
    for (int r = 0; r < kernel->rows; r++)
        for (int c = 0; c < kernel->cols; c++) {
            const int cr = my + coarse_offset(r - cy, scale_y);
            const int cc = mx + coarse_offset(c - cx, scale_x);
            weights[(size_t)cr * cols + cc] +=
                kernel->taps[(size_t)(kernel->rows - 1 - r) * kernel->cols + (kernel->cols - 1 - c)];
        }
    coarse = pgp_kernel_new(weights, NULL, rows, cols, err, errlen);
    pgp_free(weights);
    return coarse;
}

int pgp_kernel_rows(const pgp_kernel *kernel) { return kernel->rows; }
int pgp_kernel_cols(const pgp_kernel *kernel) { return kernel->cols; }
double pgp_kernel_sum(const pgp_kernel *kernel) { return kernel->sum; }
int pgp_kernel_is_separable(const pgp_kernel *kernel) { return kernel->separable; }

void pgp_kernel_reach(const pgp_kernel *kernel, int *up, int *down, int *left, int *right)
{
    *up = kernel->rows - 1 - kernel->rows / 2;
    *down = kernel->rows / 2;
    *left = kernel->cols - 1 - kernel->cols / 2;
    *right = kernel->cols / 2;
}

/* ------------------------------------------------------------ method choice */

/* Smallest even n' >= n of the form 2^a 3^b 5^c 7^d: FFTW has codelets for
 * these factors, and an even length halves the r2c work (an odd 315 took
 * 1.6 ms per 256x256 tile where 320 took 0.9 ms). */
static int fft_size(int n)
{
    for (n += n % 2;; n += 2) {
        int rest = n;
        static const int primes[] = {2, 3, 5, 7};
        for (int p = 0; p < 4; p++)
            while (rest % primes[p] == 0)
                rest /= primes[p];
        if (rest == 1)
            return n;
    }
}

/* The transform must hold the largest window, (tile + kernel - 1) per axis;
 * linear correlation needs no more because only the outputs that no circular
 * wrap reaches are read back (overlap-save). */
static void fft_dims(const pgp_kernel *k, int tile_w, int tile_h, int *fft_w, int *fft_h)
{
    *fft_w = fft_size(tile_w + k->cols - 1);
    *fft_h = fft_size(tile_h + k->rows - 1);
}

pgp_convolve_method pgp_convolve_pick(const pgp_kernel *kernel, int tile_w, int tile_h,
                                      pgp_convolve_method requested)
{
    if (requested != PGP_CONVOLVE_AUTO)
        return requested;
    const double kh = kernel->rows, kw = kernel->cols;
    /* The separable row pass also runs over the kh - 1 halo rows. */
    const double direct_cost = kernel->separable
                                   ? (double)tile_w * ((tile_h + kh - 1) * kw + tile_h * kh)
                                   : (double)tile_w * tile_h * kh * kw;
    int fft_w, fft_h;
    fft_dims(kernel, tile_w, tile_h, &fft_w, &fft_h);
    const double n = (double)fft_w * fft_h;
    const double fft_cost = FFT_COST_PER_NLOGN * n * log2(n);
    return fft_cost < direct_cost ? PGP_CONVOLVE_FFT : PGP_CONVOLVE_DIRECT;
}

/* ------------------------------------------------------------ inputs and output */

/* Writes S' (nodata as 0) into rows of dst_stride; with zero_nonfinite,
 * non-finite valid values become 0 too. Returns how many were zeroed. */
static size_t prepare_signal(const double *window, const unsigned char *valid, int window_w,
                             int window_h, size_t dst_stride, int zero_nonfinite, double *dst)
{
    size_t n_zeroed = 0;
    for (int r = 0; r < window_h; r++) {
        const double *src = window + (size_t)r * window_w;
        const unsigned char *ok = valid + (size_t)r * window_w;
        double *row = dst + r * dst_stride;
        for (int c = 0; c < window_w; c++) {
            double v = ok[c] ? src[c] : 0.0;
            if (zero_nonfinite && !isfinite(v)) {
                v = 0.0;
                n_zeroed++;
            }
            row[c] = v;
        }
    }
    return n_zeroed;
}

/* Writes the validity image (1.0 / 0.0) into rows of dst_stride. */
static void prepare_validity(const unsigned char *valid, int window_w, int window_h,
                             size_t dst_stride, double *dst)
{
    for (int r = 0; r < window_h; r++)
        for (int c = 0; c < window_w; c++)
            dst[r * dst_stride + c] = valid[(size_t)r * window_w + c] ? 1.0 : 0.0;
}

/* Turns the raw correlations into convolve_2d's output, in place in out. */
static void finish(const pgp_kernel *k, const pgp_convolve_options *o, const unsigned char *valid,
                   int w, int h, const double *mask, double out_nodata, double *out)
{
    int up, down, left, right;
    pgp_kernel_reach(k, &up, &down, &left, &right);
    const int window_w = w + left + right;
    const double ksum = k->sum;
    const double mask_floor =
        MASK_ROUNDOFF * k->abs_sum / (o->normalize_kernel ? fabs(ksum) : 1.0);
    for (int i = 0; i < h; i++) {
        for (int j = 0; j < w; j++) {
            const size_t p = (size_t)i * w + j;
            double c = out[p];
            if (o->normalize_kernel)
                c /= ksum;
            if (o->ignore_nodata_and_edges) {
                const double m = o->normalize_kernel ? mask[p] / ksum : mask[p];
                if (m > mask_floor)
                    c = o->normalize_kernel ? c / m : c / m * ksum;
            }
            if (o->has_tol && fabs(c) <= o->tol)
                c = 0.0;
            if (isnan(c))
                c = NAN; /* one NaN at every level: see canonicalise_nans in expr.c */
            if (o->mask_nodata && !valid[(size_t)(i + up) * window_w + (j + left)])
                c = out_nodata;
            out[p] = c;
        }
    }
}

/* ------------------------------------------------------------ direct */

/* dst[x] += sum_t run.weight[t] * src[run.offset[t] * stride + x] for x < n,
 * adding the terms of each output in tap order. Inlined into one function per
 * instruction-set level below. */
static inline __attribute__((always_inline)) void
add_taps_on(double *restrict dst, const double *src, int n, size_t stride, const tap_run *run)
{
    int t = 0;
    /* Four taps per sweep: dst is loaded and stored a quarter as often. */
    for (; t + 4 <= run->count; t += 4) {
        const double *restrict in0 = src + run->offset[t] * stride;
        const double *restrict in1 = src + run->offset[t + 1] * stride;
        const double *restrict in2 = src + run->offset[t + 2] * stride;
        const double *restrict in3 = src + run->offset[t + 3] * stride;
        const double w0 = run->weight[t], w1 = run->weight[t + 1];
        const double w2 = run->weight[t + 2], w3 = run->weight[t + 3];
        for (int x = 0; x < n; x++)
            dst[x] = dst[x] + w0 * in0[x] + w1 * in1[x] + w2 * in2[x] + w3 * in3[x];
    }
    for (; t < run->count; t++) {
        const double *restrict in = src + run->offset[t] * stride;
        const double weight = run->weight[t];
        for (int x = 0; x < n; x++)
            dst[x] += weight * in[x];
    }
}

typedef void (*add_taps_fn)(double *restrict dst, const double *src, int n, size_t stride,
                            const tap_run *run);

PGP_ISA_VARIANTS(add_taps_fn, add_taps,
                 (double *restrict dst, const double *src, int n, size_t stride,
                  const tap_run *run),
                 (dst, src, n, stride, run))

/* dst (w x h) = correlation of src (rows of src_stride, (h+kh-1) rows) with
 * the taps. rows_scratch holds (h+kh-1) x w doubles for the separable passes. */
static void correlate_direct(const pgp_kernel *k, const double *src, size_t src_stride, int w,
                             int h, double *rows_scratch, double *dst)
{
    const int kh = k->rows;
    const add_taps_fn add_taps = add_taps_levels[pgp_isa_active()];
    memset(dst, 0, (size_t)w * h * sizeof(double));
    if (k->separable) {
        const int n_rows = h + kh - 1;
        memset(rows_scratch, 0, (size_t)w * n_rows * sizeof(double));
        for (int r = 0; r < n_rows; r++)
            add_taps(rows_scratch + (size_t)r * w, src + r * src_stride, w, 1, &k->row_factor);
        for (int i = 0; i < h; i++)
            add_taps(dst + (size_t)i * w, rows_scratch + (size_t)i * w, w, (size_t)w,
                     &k->col_factor);
        return;
    }
    for (int i = 0; i < h; i++)
        for (int a = 0; a < kh; a++)
            add_taps(dst + (size_t)i * w, src + (i + a) * src_stride, w, 1, &k->row_runs[a]);
}

/* C at one output pixel, summed in the order of correlate_direct's 2-D loop. */
static double footprint_sum(const pgp_kernel *k, const double *src, size_t src_stride, int i,
                            int j)
{
    double sum = 0;
    for (int a = 0; a < k->rows; a++) {
        const double *row = src + (i + a) * src_stride + j;
        const tap_run *run = &k->row_runs[a];
        for (int t = 0; t < run->count; t++)
            sum += run->weight[t] * row[run->offset[t]];
    }
    return sum;
}

void pgp_convolve_scratch_free(pgp_convolve_scratch *scratch)
{
    pgp_free_aligned(scratch->data);
    scratch->data = NULL;
    scratch->count = 0;
}

/* count doubles, SIMD-aligned (fftw_malloc): the caller's scratch grown as needed, or
 * (scratch NULL) a fresh block to hand to release_doubles. */
static double *reserve_doubles(pgp_convolve_scratch *scratch, size_t count)
{
    if (scratch == NULL)
        return (double *)pgp_malloc_aligned(count * sizeof(double));
    if (scratch->count < count) {
        pgp_convolve_scratch_free(scratch);
        scratch->data = (double *)pgp_malloc_aligned(count * sizeof(double));
        scratch->count = scratch->data != NULL ? count : 0;
    }
    return scratch->data;
}

static void release_doubles(pgp_convolve_scratch *scratch, double *block)
{
    if (scratch == NULL)
        pgp_free_aligned(block);
}

static int convolve_direct(const pgp_kernel *k, const pgp_convolve_options *o,
                           const double *window, const unsigned char *valid, int w, int h,
                           double out_nodata, double *out, pgp_convolve_scratch *scratch)
{
    const int window_w = w + k->cols - 1, window_h = h + k->rows - 1;
    /* One block for all scratch: with separate blocks of this size glibc
     * trimmed the heap and faulted it back in on every tile. */
    const size_t n_input = (size_t)window_w * window_h;
    const size_t n_rows_scratch = k->separable ? (size_t)w * window_h : 0;
    const size_t n_mask = o->ignore_nodata_and_edges ? (size_t)w * h : 0;
    double *input = reserve_doubles(scratch, n_input + n_rows_scratch + n_mask);
    if (input == NULL) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "Convolve: out of memory for a %dx%d window",
                 window_w, window_h);
        return -1;
    }
    double *rows_scratch = input + n_input, *mask = rows_scratch + n_rows_scratch;
    prepare_signal(window, valid, window_w, window_h, (size_t)window_w, 0, input);
    correlate_direct(k, input, (size_t)window_w, w, h, rows_scratch, out);
    if (o->ignore_nodata_and_edges) {
        prepare_validity(valid, window_w, window_h, (size_t)window_w, input);
        correlate_direct(k, input, (size_t)window_w, w, h, rows_scratch, mask);
    }
    finish(k, o, valid, w, h, mask, out_nodata, out);
    release_doubles(scratch, input);
    return 0;
}

/* ------------------------------------------------------------ FFT */

static kernel_spectrum *spectrum_new(const pgp_kernel *k, int fft_w, int fft_h)
{
    const size_t n_real = (size_t)fft_w * fft_h, n_complex = (size_t)fft_h * (fft_w / 2 + 1);
    kernel_spectrum *s = (kernel_spectrum *)pgp_calloc(1, sizeof(*s));
    double *real = (double *)pgp_malloc_aligned(n_real * sizeof(double));
    if (s != NULL)
        s->values = (fftw_complex *)pgp_malloc_aligned(n_complex * sizeof(fftw_complex));
    if (s != NULL && real != NULL && s->values != NULL) {
        s->fft_w = fft_w;
        s->fft_h = fft_h;
        /* ESTIMATE: MEASURE would pick plans, hence round-off, by timing. */
        CPLCreateOrAcquireMutex(&planner_mutex, MUTEX_WAIT_S);
        s->forward = fftw_plan_dft_r2c_2d(fft_h, fft_w, real, s->values, FFTW_ESTIMATE);
        s->inverse = fftw_plan_dft_c2r_2d(fft_h, fft_w, s->values, real, FFTW_ESTIMATE);
        CPLReleaseMutex(planner_mutex);
    }
    if (s == NULL || real == NULL || s->values == NULL || s->forward == NULL ||
        s->inverse == NULL) {
        CPLError(CE_Failure, CPLE_OutOfMemory,
                 "Convolve: out of memory for a %dx%d FFT of the kernel", fft_w, fft_h);
        pgp_free_aligned(real);
        if (s != NULL)
            spectrum_free(s);
        return NULL;
    }
    /* The kernel unflipped at the top-left, with the c2r scaling folded in. */
    memset(real, 0, n_real * sizeof(double));
    const int kh = k->rows, kw = k->cols;
    for (int m = 0; m < kh; m++)
        for (int n = 0; n < kw; n++)
            real[(size_t)m * fft_w + n] = k->taps[(size_t)(kh - 1 - m) * kw + (kw - 1 - n)] /
                                          (double)n_real;
    fftw_execute(s->forward);
    pgp_free_aligned(real);
    return s;
}

/* The kernel's spectrum for tiles of tile_w x tile_h, computed on first use. */
static const kernel_spectrum *spectrum_for_tile(const pgp_kernel *kernel, int tile_w, int tile_h)
{
    pgp_kernel *k = (pgp_kernel *)kernel; /* only the mutex-guarded cache changes */
    int fft_w, fft_h;
    fft_dims(k, tile_w, tile_h, &fft_w, &fft_h);
    CPLAcquireMutex(k->spectra_mutex, MUTEX_WAIT_S);
    kernel_spectrum *s = k->spectra;
    while (s != NULL && (s->fft_w != fft_w || s->fft_h != fft_h))
        s = s->next;
    if (s == NULL) {
        s = spectrum_new(k, fft_w, fft_h);
        if (s != NULL) {
            s->next = k->spectra;
            k->spectra = s;
        }
    }
    CPLReleaseMutex(k->spectra_mutex);
    return s;
}

/* dst (w x h) = correlation of input (fft_h x fft_w, zero-padded) with the
 * kernel, through spectrum_scratch and output_scratch. */
static void correlate_fft(const pgp_kernel *k, const kernel_spectrum *s, double *input,
                          fftw_complex *spectrum_scratch, double *output_scratch, int w, int h,
                          double *dst)
{
    const size_t n_complex = (size_t)s->fft_h * (s->fft_w / 2 + 1);
    fftw_execute_dft_r2c(s->forward, input, spectrum_scratch);
    for (size_t f = 0; f < n_complex; f++) {
        const double re = spectrum_scratch[f][0], im = spectrum_scratch[f][1];
        spectrum_scratch[f][0] = re * s->values[f][0] - im * s->values[f][1];
        spectrum_scratch[f][1] = re * s->values[f][1] + im * s->values[f][0];
    }
    fftw_execute_dft_c2r(s->inverse, spectrum_scratch, output_scratch);
    /* Full convolution index (i + kh - 1, j + kw - 1) is correlation output (i, j). */
    for (int i = 0; i < h; i++)
        memcpy(dst + (size_t)i * w,
               output_scratch + (size_t)(i + k->rows - 1) * s->fft_w + (k->cols - 1),
               (size_t)w * sizeof(double));
}

/* Adds the direct-sum contribution of every non-finite valid signal value
 * (left out of the transform) to the outputs whose footprint gives it a
 * nonzero weight: inf * w, NaN, exactly as DIRECT would. */
static void add_nonfinite(const pgp_kernel *k, const double *window, const unsigned char *valid,
                          int w, int h, double *conv)
{
    const int kh = k->rows, kw = k->cols, window_w = w + kw - 1, window_h = h + kh - 1;
    for (int p = 0; p < window_h; p++) {
        for (int q = 0; q < window_w; q++) {
            const double v = window[(size_t)p * window_w + q];
            if (!valid[(size_t)p * window_w + q] || isfinite(v))
                continue;
            for (int a = p < h ? 0 : p - h + 1; a < kh && a <= p; a++) {
                const tap_run *run = &k->row_runs[a];
                for (int t = 0; t < run->count; t++)
                    if (run->offset[t] <= q && q - run->offset[t] < w)
                        conv[(size_t)(p - a) * w + (q - run->offset[t])] += run->weight[t] * v;
            }
        }
    }
}

/* Doubles to reserve for n so the next part of a block starts 64-byte aligned. */
static size_t aligned_doubles(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int convolve_fft(const pgp_kernel *k, const pgp_convolve_options *o,
                        const double *window, const unsigned char *valid, int w, int h,
                        int tile_w, int tile_h, double out_nodata, double *out,
                        pgp_convolve_scratch *scratch)
{
    const kernel_spectrum *s = spectrum_for_tile(k, tile_w, tile_h);
    if (s == NULL)
        return -1;
    const int window_w = w + k->cols - 1, window_h = h + k->rows - 1;
    const int ignore = o->ignore_nodata_and_edges;
    const size_t n_real = (size_t)s->fft_w * s->fft_h;
    const size_t n_complex = (size_t)s->fft_h * (s->fft_w / 2 + 1);
    /* One aligned block (see convolve_direct), cut at 64-byte boundaries
     * so new-array execution sees the alignment the plans were made with. */
    const size_t real_part = aligned_doubles(n_real), complex_part = aligned_doubles(2 * n_complex);
    const size_t n_parts = real_part * (ignore ? 3 : 2) + complex_part + (ignore ? (size_t)w * h : 0);
    double *signal = reserve_doubles(scratch, n_parts);
    if (signal == NULL) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "Convolve: out of memory for a %dx%d FFT",
                 s->fft_w, s->fft_h);
        return -1;
    }
    double *output = signal + real_part;
    fftw_complex *spectrum = (fftw_complex *)(output + real_part);
    double *validity = ignore ? output + real_part + complex_part : NULL;
    double *mask = ignore ? validity + real_part : NULL;

    memset(signal, 0, n_real * sizeof(double));
    const size_t n_nonfinite =
        prepare_signal(window, valid, window_w, window_h, (size_t)s->fft_w, 1, signal);
    correlate_fft(k, s, signal, spectrum, output, w, h, out);
    if (ignore) {
        memset(validity, 0, n_real * sizeof(double));
        prepare_validity(valid, window_w, window_h, (size_t)s->fft_w, validity);
        correlate_fft(k, s, validity, spectrum, output, w, h, mask);
        const double weak = FFT_WEAK_MASK_FRACTION * k->abs_sum;
        for (int i = 0; i < h; i++) {
            for (int j = 0; j < w; j++) {
                const size_t p = (size_t)i * w + j;
                if (fabs(mask[p]) < weak) {
                    out[p] = footprint_sum(k, signal, (size_t)s->fft_w, i, j);
                    mask[p] = footprint_sum(k, validity, (size_t)s->fft_w, i, j);
                }
            }
        }
    }
    if (n_nonfinite > 0)
        add_nonfinite(k, window, valid, w, h, out);
    finish(k, o, valid, w, h, mask, out_nodata, out);
    release_doubles(scratch, signal);
    return 0;
}

int pgp_convolve_tile(const pgp_kernel *kernel, const pgp_convolve_options *options,
                      const double *window, const unsigned char *valid, int w, int h,
                      int tile_w, int tile_h, double out_nodata, double *out,
                      pgp_convolve_scratch *scratch)
{
    /* A tile larger than the declared tile size would not fit the transform. */
    if (tile_w < w)
        tile_w = w;
    if (tile_h < h)
        tile_h = h;
    if (pgp_convolve_pick(kernel, tile_w, tile_h, options->method) == PGP_CONVOLVE_FFT)
        return convolve_fft(kernel, options, window, valid, w, h, tile_w, tile_h, out_nodata,
                            out, scratch);
    return convolve_direct(kernel, options, window, valid, w, h, out_nodata, out, scratch);
}
