/* node_source.c — the <Source> node kind: one band of a raster, read
 * directly by core/source.c (opened once here for its type and grid). */
#include "pgp/node.h"
#include "pgp/alloc.h"
#include "pgp/source.h"

#include <limits.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "ogr_srs_api.h"

/* Reads the source's type, nodata and grid once; workers open their own. */
static int open_source(pgp_node *node)
{
    GDALDatasetH ds;
    GDALRasterBandH band;
    double gt[6];
    int has_gt, band_count, has_nodata = FALSE;
    double nodata;
    const char *pixel_type;

    /* A failed tag read is passed on: the file opens without it. */
    if ((ds = pgp_open_raster(node->where, NULL, node->path, 0)) == NULL)
        return -1;
    band_count = GDALGetRasterCount(ds);
    if (node->band > band_count) {
        pgp_graph_report(node->where, "band %d does not exist: '%s' has %d band%s", node->band,
                         node->path, band_count, band_count == 1 ? "" : "s");
        GDALClose(ds);
        return -1;
    }
    band = GDALGetRasterBand(ds, node->band);
    node->data_type = GDALGetRasterDataType(band);
    if (GDALDataTypeIsComplex(node->data_type)) {
        pgp_graph_report(node->where,
                         "'%s' band %d is complex (%s), which pgp does not compute with",
                         node->path, node->band, GDALGetDataTypeName(node->data_type));
        GDALClose(ds);
        return -1;
    }
    pixel_type = GDALGetMetadataItem(band, "PIXELTYPE", "IMAGE_STRUCTURE");
    node->signed_byte = node->data_type == GDT_Byte && pixel_type != NULL &&
                        EQUAL(pixel_type, "SIGNEDBYTE");
    if (!node->nodata.present) {
        nodata = GDALGetRasterNoDataValue(band, &has_nodata);
        node->nodata.present = has_nodata;
        node->nodata.value = nodata;
    }
    node->nodata.exact = GDALDataTypeIsInteger(node->data_type);
    has_gt = GDALGetGeoTransform(ds, gt) == CE_None;

    {
        const OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
        node->x_size = GDALGetRasterXSize(ds);
        node->y_size = GDALGetRasterYSize(ds);
        node->has_geotransform = has_gt;
        memcpy(node->geotransform, gt, sizeof gt);
        if (srs != NULL) {
            char *wkt = NULL;
            const char *options[] = {"FORMAT=WKT2_2018", NULL};
            if (OSRExportToWktEx(srs, &wkt, options) == OGRERR_NONE &&
                (node->srs_wkt = pgp_strdup(wkt)) == NULL) {
                CPLFree(wkt);
                GDALClose(ds);
                return -1;
            }
            CPLFree(wkt);
        }
        /* GDAL's own WKT1, as pygeoprocessing compares projections (<Stitch>). */
        if ((node->projection_ref = pgp_strdup(GDALGetProjectionRef(ds))) == NULL) {
            GDALClose(ds);
            return -1;
        }
    }
    GDALClose(ds);
    return 0;
}

static int parse_source(pgp_graph *graph, const CPLXMLNode *element, const char *base_dir,
                        pgp_node *node)
{
    static const char *const attributes[] = {"name", "file", "band", "noData", NULL};
    const char *file = CPLGetXMLValue(element, "file", NULL);
    const char *band = CPLGetXMLValue(element, "band", "1");
    const char *nodata = CPLGetXMLValue(element, "noData", NULL);

    node->kind = PGP_NODE_SOURCE;
    if (pgp_graph_check_leaf(element, node->where, attributes) != 0)
        return -1;
    if (file == NULL || *file == '\0') {
        pgp_graph_report(node->where, "missing attribute 'file'");
        return -1;
    }
    if (pgp_graph_parse_int(band, 1, INT_MAX, &node->band) != 0) {
        pgp_graph_report(node->where, "band '%s' is not a band number (1, 2, ...)", band);
        return -1;
    }
    if (nodata != NULL) {
        if (pgp_graph_parse_double(nodata, &node->nodata.value) != 0) {
            pgp_graph_report(node->where, "noData '%s' is not a number", nodata);
            return -1;
        }
        node->nodata.present = 1;
    }
    (void)graph;
    node->path = pgp_strdup(pgp_graph_resolve_path(base_dir, file));
    return node->path != NULL ? open_source(node) : -1;
}

static void *compute_source(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    const GDALDataType type = pgp_job_graph(job)->nodes[node].data_type;
    void *pixels = pgp_job_tile_buffer(job, node, (size_t)t->w * t->h);
    (void)depth;
    if (pixels != NULL && pgp_job_read_source(job, node, t, pixels, type, t->w) != 0) {
        pgp_free(pixels);
        pixels = NULL;
    }
    return pixels;
}

const pgp_node_kind_def pgp_node_source = {"Source", parse_source, NULL, NULL, compute_source,
                                           NULL,     NULL,          NULL};
