/* pgp/convolve.h — convolve_2d on one output tile (docs/semantics.md#convolve).
 *
 * A kernel is prepared once per graph (weights with kernel nodata set to 0,
 * its sum, a separable factorisation when it has rank 1). Its spectrum for
 * an FFT size is computed by the first tile that needs it and kept in the
 * kernel, under the kernel's mutex; otherwise it is immutable: any number of
 * threads convolve tiles with it at once. The FFT size of a tile depends
 * only on the tile size and the kernel size, never on the request, the
 * executor or where the tile is, so every tile of a raster is computed the
 * same way.
 *
 * Ownership: pgp_kernel_new copies the weights; pgp_kernel_free frees the
 * kernel and its FFT plans. Errors from pgp_kernel_new are written into the
 * caller's buffer (no CPLError); pgp_convolve_tile reports CPLError only when
 * memory is short.
 */
#ifndef PGP_CONVOLVE_H
#define PGP_CONVOLVE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Documented limit: larger kernels are refused. */
#define PGP_KERNEL_MAX_SIZE 2049

typedef enum pgp_convolve_method {
    PGP_CONVOLVE_AUTO,   /* by an operation-count model of tile and kernel size */
    PGP_CONVOLVE_DIRECT, /* direct sum (separable when the kernel has rank 1)   */
    PGP_CONVOLVE_FFT     /* FFTW3 double, one fixed-size transform per tile     */
} pgp_convolve_method;

typedef struct pgp_convolve_options {
    int normalize_kernel;        /* divide the kernel by its sum                    */
    int ignore_nodata_and_edges; /* weighted mean over valid pixels in the footprint */
    int mask_nodata;             /* nodata signal pixels -> out_nodata              */
    int has_tol;                 /* setTolToZero given (default yes, 1e-8)          */
    double tol;                  /* |v| <= tol -> 0                                  */
    pgp_convolve_method method;
} pgp_convolve_options;

typedef struct pgp_kernel pgp_kernel;

/* weights: rows x cols, row-major; valid: 1 for a weight, 0 for kernel nodata
 * (NULL: all valid). Refuses empty or non-finite kernels, sizes above
 * PGP_KERNEL_MAX_SIZE and kernels whose every pixel is nodata, writing e.g.
 * "kernel of 3x0 is empty" into err. */
pgp_kernel *pgp_kernel_new(const double *weights, const unsigned char *valid, int rows,
                           int cols, char *err, size_t errlen);
void pgp_kernel_free(pgp_kernel *kernel);

/* The kernel for a grid whose pixels are scale_y x scale_x of this kernel's
 * (overviews, scales >= 1): every tap is added into the coarse tap at its offset
 * from the centre divided by the scale and rounded, so the total weight and the
 * centre are kept; nodata taps weigh 0. The result is odd-sized and centred.
 * An approximation: values match the full-resolution convolution of a signal
 * that is constant over each coarse pixel. The caller frees it. */
pgp_kernel *pgp_kernel_downsample(const pgp_kernel *kernel, double scale_y, double scale_x,
                                  char *err, size_t errlen);

int pgp_kernel_rows(const pgp_kernel *kernel);
int pgp_kernel_cols(const pgp_kernel *kernel);
double pgp_kernel_sum(const pgp_kernel *kernel); /* of the valid weights */
int pgp_kernel_is_separable(const pgp_kernel *kernel);

/* How far a tile's input window reaches beyond the tile on each side:
 * up = kh - 1 - kh/2, down = kh/2, left = kw - 1 - kw/2, right = kw/2 (the
 * centre is K[kh/2][kw/2], a true convolution). */
void pgp_kernel_reach(const pgp_kernel *kernel, int *up, int *down, int *left, int *right);

/* The method used for tiles of tile_w x tile_h: requested unless AUTO, else the
 * cheaper by the operation-count model (depends on sizes only). */
pgp_convolve_method pgp_convolve_pick(const pgp_kernel *kernel, int tile_w, int tile_h,
                                      pgp_convolve_method requested);

/* Working memory one thread reuses from tile to tile (a worker context owns
 * one): fresh megabyte blocks per tile cost a page fault per 4 KiB. Start it
 * zeroed; pgp_convolve_scratch_free releases it. */
typedef struct pgp_convolve_scratch {
    double *data;
    size_t count;
} pgp_convolve_scratch;

void pgp_convolve_scratch_free(pgp_convolve_scratch *scratch);

/* Convolves one output tile of w x h pixels.
 * window: (w + left + right) x (h + up + down) doubles, row-major, the tile grown
 *   by the kernel's reach; positions outside the raster hold 0.
 * valid: same shape, 1 where the pixel is a valid signal value, 0 where it is
 *   nodata or outside the raster (valid values of nodata pixels are ignored:
 *   they contribute 0 whatever window holds there).
 * tile_w, tile_h: the raster's full tile size (>= w, h): the FFT size is chosen
 *   from it, so the edge tiles of a raster use the same transform as the others.
 * Writes out[w*h] (row-major) with out_nodata where the signal is nodata and
 * mask_nodata is set. scratch: the calling thread's (grown as needed), or NULL
 * to allocate per call. Returns 0, or -1 after CPLError (memory). */
int pgp_convolve_tile(const pgp_kernel *kernel, const pgp_convolve_options *options,
                      const double *window, const unsigned char *valid, int w, int h,
                      int tile_w, int tile_h, double out_nodata, double *out,
                      pgp_convolve_scratch *scratch);

/* Called once when the plugin loads (fftw_make_planner_thread_safe). */
void pgp_convolve_init(void);

#ifdef __cplusplus
}
#endif

#endif
