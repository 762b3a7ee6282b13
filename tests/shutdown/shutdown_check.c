/* pgp_shutdown_check — GDALDestroyDriverManager() with PGP datasets still open,
 * as QGIS (exitQgis) and GDAL's own library destructor do it.
 *
 *   pgp_shutdown_check SCENARIO [GRAPH ...]
 *
 * Every scenario opens each graph, does its work, leaves the datasets open and
 * destroys the driver manager; "reopen" then registers the drivers again and
 * checks that a fresh open reads the same pixels. Prints "ok" and exits 0, or
 * says what failed and exits 1; a crash is the test's failure.
 *   none      no dataset open
 *   read      a 100x100 window of every band
 *   stats     exact statistics of every band (the PAM sidecar is written at close)
 *   overview  the whole raster into a buffer a quarter the size (overview levels)
 *   prefetch  the first tile only, so prefetch jobs are queued and running
 *   reopen    read, destroy, register again, read again and compare
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "gdal.h"

#define MAX_GRAPHS 8
#define WINDOW 100

static int read_window(GDALDatasetH ds, int x_size, int y_size, int buf_x, int buf_y,
                       double *out)
{
    int b;
    for (b = 1; b <= GDALGetRasterCount(ds); b++) {
        if (GDALRasterIO(GDALGetRasterBand(ds, b), GF_Read, 0, 0, x_size, y_size,
                         out + (size_t)(b - 1) * buf_x * buf_y, buf_x, buf_y, GDT_Float64, 0,
                         0) != CE_None) {
            fprintf(stderr, "read of %s band %d failed: %s\n", GDALGetDescription(ds), b,
                    CPLGetLastErrorMsg());
            return -1;
        }
    }
    return 0;
}

/* Opens path and reads the scenario's window into *pixels (malloc'd). */
static GDALDatasetH open_and_read(const char *path, const char *scenario, double **pixels,
                                  size_t *count)
{
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    int w, h, b;
    if (ds == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, CPLGetLastErrorMsg());
        return NULL;
    }
    w = GDALGetRasterXSize(ds) < WINDOW ? GDALGetRasterXSize(ds) : WINDOW;
    h = GDALGetRasterYSize(ds) < WINDOW ? GDALGetRasterYSize(ds) : WINDOW;
    if (strcmp(scenario, "prefetch") == 0)
        GDALGetBlockSize(GDALGetRasterBand(ds, 1), &w, &h);
    *count = (size_t)w * h * GDALGetRasterCount(ds);
    *pixels = (double *)CPLMalloc(*count * sizeof(double));
    if (strcmp(scenario, "overview") == 0) {
        const int ow = (GDALGetRasterXSize(ds) + 3) / 4, oh = (GDALGetRasterYSize(ds) + 3) / 4;
        double *coarse = (double *)CPLMalloc((size_t)ow * oh * GDALGetRasterCount(ds) *
                                             sizeof(double));
        const int failed = read_window(ds, GDALGetRasterXSize(ds), GDALGetRasterYSize(ds), ow,
                                       oh, coarse);
        CPLFree(coarse);
        if (failed)
            return NULL;
    }
    if (read_window(ds, w, h, w, h, *pixels) != 0)
        return NULL;
    if (strcmp(scenario, "stats") == 0) {
        for (b = 1; b <= GDALGetRasterCount(ds); b++) {
            double mn, mx, mean, sd;
            if (GDALComputeRasterStatistics(GDALGetRasterBand(ds, b), FALSE, &mn, &mx, &mean,
                                            &sd, NULL, NULL) != CE_None) {
                fprintf(stderr, "statistics of %s band %d failed: %s\n", path, b,
                        CPLGetLastErrorMsg());
                return NULL;
            }
        }
    }
    return ds;
}

int main(int argc, char **argv)
{
    const char *scenario = argc > 1 ? argv[1] : "";
    double *first[MAX_GRAPHS] = {NULL};
    size_t counts[MAX_GRAPHS] = {0};
    int i, n = argc - 2;
    if (argc < 2 || n > MAX_GRAPHS) {
        fprintf(stderr, "usage: pgp_shutdown_check SCENARIO [GRAPH ...] (at most %d)\n",
                MAX_GRAPHS);
        return 2;
    }
    GDALAllRegister();
    if (GDALGetDriverByName("PGP") == NULL) {
        fprintf(stderr, "the PGP driver is not registered (GDAL_DRIVER_PATH?)\n");
        return 1;
    }
    for (i = 0; i < n; i++) /* left open on purpose */
        if (open_and_read(argv[i + 2], scenario, &first[i], &counts[i]) == NULL)
            return 1;
    GDALDestroyDriverManager();

    if (strcmp(scenario, "reopen") == 0) {
        GDALAllRegister();
        for (i = 0; i < n; i++) {
            double *again = NULL;
            size_t count = 0;
            GDALDatasetH ds = open_and_read(argv[i + 2], scenario, &again, &count);
            if (ds == NULL)
                return 1;
            if (count != counts[i] || memcmp(again, first[i], count * sizeof(double)) != 0) {
                fprintf(stderr, "%s reads other pixels after the driver manager came back\n",
                        argv[i + 2]);
                return 1;
            }
            CPLFree(again);
            GDALClose(ds);
        }
        GDALDestroyDriverManager();
    }
    for (i = 0; i < n; i++)
        CPLFree(first[i]);
    puts("ok");
    return 0;
}
