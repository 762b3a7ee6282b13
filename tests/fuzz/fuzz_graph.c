/* fuzz_graph.c — libFuzzer target: the input is a .pgp.vrt document (XML text).
 *
 * pgp_graph_open parses it; when it opens, a window of up to 64x64 pixels at
 * (0,0) and one at the bottom-right corner are read from every band through
 * pgp_renderer_read, on the serial executor with a small private tile cache,
 * the statistics of the first band are computed, and the same windows are
 * read from a factor-3 overview. Everything is freed.
 *
 * Sources and kernels: small GeoTIFFs (and a GeoJSON polygon for <Align
 * vectors>) written once into /vsimem/fuzz/ (see make_sources). Only the GTiff,
 * VRT, MEM and GeoJSON drivers are registered, and a document with a path
 * anywhere but /vsimem/fuzz/ is skipped (paths_are_confined), so a fuzzed path
 * can never reach the disk, a device or the network.
 *
 * Built twice by tests/fuzz/CMakeLists.txt: with -fsanitize=fuzzer (libFuzzer's
 * main) and with replay_main.c, which runs LLVMFuzzerTestOneInput once per file.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_minixml.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "gdal.h"
#include "gdal_frmts.h"
#include "ogr_srs_api.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/render.h"
#include "pgp/stats.h"

/* ogrsf_frmts.h, which declares it with C linkage, is C++ only. */
void RegisterOGRGeoJSON(void);

#define FUZZ_DIR "/vsimem/fuzz/"
#define WIDTH 40
#define HEIGHT 30
#define MAX_WINDOW 64
#define BANDS_PER_READ 4

/* A pattern with the values that matter for each type: nodata, extremes,
 * NaN and infinities for floats, zero of both signs. */
static double sample(GDALDataType type, int i)
{
    static const double floats[] = {0.0, -0.0, 1.0, -1.0, 2.5, -9999.0, 1e30, -1e30,
                                    1e308, 3.4e38, NAN, INFINITY, -INFINITY, 42.0};
    static const double ints[] = {0, 1, -1, 2, 127, 128, 255, -128, 32767, -32768, 7, 42};
    if (type == GDT_Float32 || type == GDT_Float64 || type == GDT_CFloat32)
        return floats[i % (int)(sizeof floats / sizeof floats[0])];
    return ints[i % (int)(sizeof ints / sizeof ints[0])];
}

static char *utm_wkt; /* EPSG:32618, the projection of every georeferenced raster */

static void make_raster(const char *name, int w, int h, int bands, GDALDataType type,
                        int has_nodata, double nodata, double origin_x, int block,
                        const char *extra_option)
{
    char bx[32], by[32];
    const char *options[5] = {"TILED=YES", bx, by, extra_option, NULL};
    double gt[6] = {origin_x, 30, 0, 5000, 0, -30};
    double *values = (double *)CPLMalloc(sizeof(double) * 2 * (size_t)w * h);
    GDALDatasetH ds;
    int b, i;
    snprintf(bx, sizeof bx, "BLOCKXSIZE=%d", block);
    snprintf(by, sizeof by, "BLOCKYSIZE=%d", block);
    ds = GDALCreate(GDALGetDriverByName("GTiff"), CPLSPrintf(FUZZ_DIR "%s", name), w, h, bands,
                    type, (char **)options);
    if (ds == NULL)
        abort();
    if (!isnan(origin_x)) { /* NaN: no geotransform, no projection */
        GDALSetGeoTransform(ds, gt);
        GDALSetProjection(ds, utm_wkt);
    }
    for (b = 1; b <= bands; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b);
        for (i = 0; i < 2 * w * h; i++)
            values[i] = sample(type, i * 7 + b);
        if (has_nodata)
            GDALSetRasterNoDataValue(band, nodata);
        if (GDALRasterIO(band, GF_Write, 0, 0, w, h, values, w, h,
                         GDALDataTypeIsComplex(type) ? GDT_CFloat64 : GDT_Float64, 0, 0) !=
            CE_None)
            abort();
    }
    GDALClose(ds);
    CPLFree(values);
}

/* Cuts a file to a fraction of its size: the header survives, tile data does not. */
static void truncate_copy(const char *from, const char *to, double fraction)
{
    vsi_l_offset size = 0;
    GByte *data = VSIGetMemFileBuffer(CPLSPrintf(FUZZ_DIR "%s", from), &size, FALSE);
    VSILFILE *f = VSIFOpenL(CPLSPrintf(FUZZ_DIR "%s", to), "wb");
    if (data == NULL || f == NULL)
        abort();
    VSIFWriteL(data, 1, (size_t)(size * fraction), f);
    VSIFCloseL(f);
}

static void make_kernel(void)
{
    double weights[9] = {1, 2, 1, 2, -9999, 2, 1, 2, 1};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), FUZZ_DIR "kernel.tif", 3, 3, 1,
                                 GDT_Float32, NULL);
    if (ds == NULL)
        abort();
    GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), -9999);
    if (GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 3, 3, weights, 3, 3,
                     GDT_Float64, 0, 0) != CE_None)
        abort();
    GDALClose(ds);
}

/* A polygon for <Align vectors>, inside the rasters' extent. */
static void make_vector(void)
{
    static const char geojson[] =
        "{\"type\": \"FeatureCollection\", \"crs\": {\"type\": \"name\", \"properties\": "
        "{\"name\": \"urn:ogc:def:crs:EPSG::32618\"}}, \"features\": [{\"type\": \"Feature\", "
        "\"properties\": {}, \"geometry\": {\"type\": \"Polygon\", \"coordinates\": "
        "[[[1100, 4500], [1900, 4500], [1900, 4900], [1100, 4900], [1100, 4500]]]}}]}";
    VSILFILE *f = VSIFOpenL(FUZZ_DIR "v.geojson", "wb");
    if (f == NULL)
        abort();
    VSIFWriteL(geojson, 1, sizeof geojson - 1, f);
    VSIFCloseL(f);
}

static void make_sources(void)
{
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    if (OSRImportFromEPSG(srs, 32618) != OGRERR_NONE || OSRExportToWkt(srs, &utm_wkt) != OGRERR_NONE)
        abort();
    OSRDestroySpatialReference(srs);
    make_vector();
    const double no_gt = NAN;
    make_raster("a.tif", WIDTH, HEIGHT, 1, GDT_Int16, 1, -1, 1000, 16, NULL);
    make_raster("b.tif", WIDTH, HEIGHT, 1, GDT_Float32, 0, 0, 1000, 16, NULL);
    make_raster("c.tif", WIDTH, HEIGHT, 2, GDT_Byte, 1, 255, 1000, 32, "PIXELTYPE=SIGNEDBYTE");
    make_raster("d.tif", WIDTH, HEIGHT, 1, GDT_Float64, 1, NAN, 1000, 64, NULL);
    make_raster("e.tif", WIDTH, HEIGHT, 1, GDT_UInt32, 1, 4294967295.0, 1000, 16, NULL);
    make_raster("small.tif", WIDTH - 1, HEIGHT, 1, GDT_Float32, 0, 0, 1000, 16, NULL);
    make_raster("shifted.tif", WIDTH, HEIGHT, 1, GDT_Float32, 0, 0, 1015, 16, NULL);
    make_raster("nogt.tif", WIDTH, HEIGHT, 1, GDT_Float32, 0, 0, no_gt, 16, NULL);
    make_raster("complex.tif", WIDTH, HEIGHT, 1, GDT_CFloat32, 0, 0, 1000, 16, NULL);
    /* Uncompressed 16x16 tiles: 40% keeps the header and the first tiles only. */
    make_raster("big.tif", 256, 256, 1, GDT_Float32, 1, -9999, 1000, 16, NULL);
    truncate_copy("big.tif", "truncated.tif", 0.4);
    truncate_copy("a.tif", "header_only.tif", 0.02);
    /* Convolve kernels: 3x3 weights with a nodata pixel; one with NaN and
     * infinite weights; an integer one. */
    make_kernel();
    make_raster("kernel_nan.tif", 3, 3, 1, GDT_Float32, 1, -9999, 0, 16, NULL);
    make_raster("kernel_int.tif", 5, 1, 1, GDT_Int16, 1, 7, 0, 16, NULL);
}

static int initialised;
static int verbose; /* PGP_FUZZ_VERBOSE=1: say what each input did (replays) */

static void initialise(void)
{
    /* Sources are GeoTIFFs; <Align> warps through VRT and MEM and reads GeoJSON
     * extents. No other driver: nothing a fuzzed document names goes elsewhere. */
    GDALRegister_GTiff();
    GDALRegister_VRT();
    GDALRegister_MEM();
    RegisterOGRGeoJSON();
    CPLSetErrorHandler(CPLQuietErrorHandler);
    CPLSetConfigOption("GDAL_NUM_THREADS", NULL);
    CPLSetConfigOption("GDAL_CACHEMAX", "8");
    make_sources();
    verbose = getenv("PGP_FUZZ_VERBOSE") != NULL;
    initialised = 1;
}

/* 1 when item (one of a comma-separated list) names a file in FUZZ_DIR. */
static int in_fuzz_dir(const char *item, size_t len)
{
    const size_t prefix = strlen(FUZZ_DIR);
    size_t i;
    while (len > 0 && *item == ' ')
        item++, len--;
    if (len < prefix || strncmp(item, FUZZ_DIR, prefix) != 0)
        return 0;
    for (i = 0; i + 1 < len; i++)
        if (item[i] == '.' && item[i + 1] == '.')
            return 0;
    return 1;
}

/* 1 when every path a document can name stays in FUZZ_DIR: every item of the
 * attributes named 'file', 'kernel' or 'vectors' (any case, on any element) must
 * name a file there, and so must any other attribute holding a '/'. A document
 * that does not parse opens no file at all. */
static int paths_are_confined(const CPLXMLNode *node)
{
    for (; node != NULL; node = node->psNext) {
        if (node->eType == CXT_Attribute) {
            const char *value = node->psChild ? node->psChild->pszValue : "";
            const int is_path = EQUAL(node->pszValue, "file") ||
                                EQUAL(node->pszValue, "kernel") ||
                                EQUAL(node->pszValue, "vectors") ||
                                EQUAL(node->pszValue, "vector") || strchr(value, '/') != NULL;
            while (is_path) {
                const char *comma = strchr(value, ',');
                const size_t len = comma ? (size_t)(comma - value) : strlen(value);
                if (!in_fuzz_dir(value, len))
                    return 0;
                if (comma == NULL)
                    break;
                value = comma + 1;
            }
        }
        if (node->eType != CXT_Text && !paths_are_confined(node->psChild))
            return 0;
    }
    return 1;
}

/* Reads windows of every band from a renderer on an x_size x y_size grid (the
 * graph's, or an overview's). */
static void read_windows(pgp_renderer *renderer, const pgp_graph *graph, int x_size, int y_size)
{
    const int w = MIN(MAX_WINDOW, x_size), h = MIN(MAX_WINDOW, y_size);
    const size_t plane = (size_t)w * h;
    double *buffer = (double *)CPLMalloc(plane * BANDS_PER_READ * sizeof(double));
    int nodes[BANDS_PER_READ];
    int first, i, n;
    for (first = 0; first < graph->n_bands; first += BANDS_PER_READ) {
        n = MIN(BANDS_PER_READ, graph->n_bands - first);
        for (i = 0; i < n; i++)
            nodes[i] = graph->bands[first + i].node;
        if (pgp_renderer_read(renderer, n, nodes, 0, 0, w, h, buffer, GDT_Float64,
                              sizeof(double), (GSpacing)w * sizeof(double),
                              (GSpacing)plane * sizeof(double), NULL, NULL) != CE_None) {
            if (verbose)
                fprintf(stderr, "  read failed: %s\n", CPLGetLastErrorMsg());
            break; /* one failing node fails every window: enough said */
        }
        if (verbose)
            fprintf(stderr, "  read %dx%d of %d band(s): first pixel %g\n", w, h, n, buffer[0]);
        /* The corner window, in the node's own type into a Byte buffer. */
        pgp_renderer_read(renderer, 1, nodes, x_size - MIN(17, x_size),
                          y_size - MIN(13, y_size), MIN(17, x_size), MIN(13, y_size), buffer,
                          GDT_Byte, 1, MIN(17, x_size), 0, NULL, NULL);
    }
    CPLFree(buffer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    CPLXMLNode *document;
    pgp_graph *graph;
    int confined;

    if (!initialised)
        initialise();
    if (size == 0 || data[0] != '<') /* not text: pgp_graph_open would take a path */
        return 0;
    text = (char *)CPLMalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    CPLErrorReset();
    document = CPLParseXMLString(text);
    confined = paths_are_confined(document);
    CPLDestroyXMLNode(document);
    if (!confined) {
        if (verbose)
            fprintf(stderr, "skipped: a path leaves " FUZZ_DIR "\n");
        CPLFree(text);
        return 0;
    }

    graph = pgp_graph_open(text);
    if (verbose)
        fprintf(stderr, "%s\n", graph ? "opened" : CPLGetLastErrorMsg());
    if (graph != NULL) {
        pgp_tile_cache *cache = pgp_tile_cache_new((size_t)1 << 20);
        pgp_renderer *renderer = pgp_renderer_new(graph, pgp_executor_get(0), cache, 0);
        pgp_renderer *overview;
        pgp_stats stats;
        read_windows(renderer, graph, graph->x_size, graph->y_size);
        if (pgp_renderer_tile_count(renderer) <= 64)
            pgp_stats_of_node(renderer, graph->bands[0].node, NULL, &stats, NULL, NULL);
        pgp_renderer_free(renderer);
        /* The factor-3 overview (sizes rounded up, as the driver's levels). */
        overview = pgp_renderer_new_overview(graph, pgp_executor_get(0), cache, 0,
                                             (graph->x_size + 2) / 3, (graph->y_size + 2) / 3);
        if (overview != NULL) {
            read_windows(overview, graph, (graph->x_size + 2) / 3, (graph->y_size + 2) / 3);
            pgp_renderer_free(overview);
        }
        pgp_tile_cache_free(cache);
        pgp_graph_free(graph);
    }
    CPLFree(text);
    return 0;
}
