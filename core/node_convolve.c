/* node_convolve.c — the <Convolve> node kind: its input convolved with a
 * kernel (pgp/convolve.h), read over the tile grown by the kernel's reach. */
#include "pgp/node.h"
#include "pgp/alloc.h"
#include "pgp/settings.h"

#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"

/* Kernel pixels from band 1 of a raster; its nodata pixels weigh 0. */
static pgp_kernel *read_kernel_raster(const char *path, const char *where)
{
    char err[512];
    GDALDatasetH ds;
    GDALRasterBandH band;
    pgp_kernel *kernel = NULL;
    pgp_nodata nodata;
    double *weights;
    unsigned char *valid;
    int rows, cols, i;

    CPLErrorReset();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_INTERNAL | GDAL_OF_VERBOSE_ERROR,
                    NULL, NULL, NULL);
    CPLPopErrorHandler();
    if (ds == NULL) {
        pgp_graph_report(where, "cannot open kernel '%s': %s", path, CPLGetLastErrorMsg());
        return NULL;
    }
    band = GDALGetRasterBand(ds, 1);
    rows = GDALGetRasterYSize(ds);
    cols = GDALGetRasterXSize(ds);
    if (rows > PGP_KERNEL_MAX_SIZE || cols > PGP_KERNEL_MAX_SIZE) {
        pgp_graph_report(where, "kernel '%s' of %dx%d exceeds the %dx%d limit", path, rows, cols,
                         PGP_KERNEL_MAX_SIZE, PGP_KERNEL_MAX_SIZE);
        GDALClose(ds);
        return NULL;
    }
    nodata.value = GDALGetRasterNoDataValue(band, &nodata.present);
    nodata.exact = GDALDataTypeIsInteger(GDALGetRasterDataType(band));
    weights = (double *)pgp_malloc_array((size_t)rows * cols, sizeof(double));
    valid = (unsigned char *)pgp_malloc_array(rows, cols);
    if (weights != NULL && valid != NULL &&
        GDALRasterIO(band, GF_Read, 0, 0, cols, rows, weights, cols, rows, GDT_Float64, 0, 0) ==
            CE_None) {
        for (i = 0; i < rows * cols; i++)
            valid[i] = !pgp_is_nodata(&nodata, weights[i]);
        kernel = pgp_kernel_new(weights, valid, rows, cols, err, sizeof err);
        if (kernel == NULL)
            pgp_graph_report(where, "kernel '%s': %s", path, err);
    } else {
        pgp_graph_report(where, "reading kernel '%s' failed: %s", path, CPLGetLastErrorMsg());
    }
    pgp_free(weights);
    pgp_free(valid);
    GDALClose(ds);
    return kernel;
}

/* <Kernel rows="3" cols="3">1 2 1  2 4 2  1 2 1</Kernel>: numbers separated by
 * white space or commas, row by row. */
static pgp_kernel *parse_inline_kernel(const CPLXMLNode *element, const char *where)
{
    static const char *const attributes[] = {"rows", "cols", NULL};
    const char *rows_text = CPLGetXMLValue(element, "rows", NULL);
    const char *cols_text = CPLGetXMLValue(element, "cols", NULL);
    char **values = CSLTokenizeString2(CPLGetXMLValue(element, NULL, ""), " ,\t\r\n", 0);
    pgp_kernel *kernel = NULL;
    double *weights = NULL;
    char err[512];
    int rows = 0, cols = 0, count = CSLCount(values), i;

    if (pgp_graph_check_leaf(element, where, attributes) != 0)
        goto done;
    if (pgp_graph_parse_int(rows_text, 1, PGP_KERNEL_MAX_SIZE, &rows) != 0 ||
        pgp_graph_parse_int(cols_text, 1, PGP_KERNEL_MAX_SIZE, &cols) != 0) {
        pgp_graph_report(where, "<Kernel> rows '%s' and cols '%s' must be integers from 1 to %d",
                         rows_text ? rows_text : "", cols_text ? cols_text : "",
                         PGP_KERNEL_MAX_SIZE);
        goto done;
    }
    if (count != rows * cols) {
        pgp_graph_report(where, "<Kernel> of %dx%d needs %d values but has %d", rows, cols,
                         rows * cols, count);
        goto done;
    }
    weights = (double *)pgp_malloc_array(count, sizeof(double));
    if (weights == NULL)
        goto done;
    for (i = 0; i < count; i++)
        if (pgp_graph_parse_double(values[i], &weights[i]) != 0) {
            pgp_graph_report(where, "<Kernel> value %d '%s' is not a number", i + 1, values[i]);
            goto done;
        }
    kernel = pgp_kernel_new(weights, NULL, rows, cols, err, sizeof err);
    if (kernel == NULL)
        pgp_graph_report(where, "<Kernel>: %s", err);
done:
    pgp_free(weights);
    CSLDestroy(values);
    return kernel;
}

static int parse_convolve(pgp_graph *graph, const CPLXMLNode *element, const char *base_dir,
                          pgp_node *node)
{
    static const char *const attributes[] = {
        "name", "input", "kernel", "normalizeKernel", "ignoreNoDataAndEdges", "maskNoData",
        "setTolToZero", "dataType", "noData", "method", NULL};
    /* pygeoprocessing's default target nodata: float32's lowest value. */
    static const char float32_lowest[] = "-3.4028234663852886e38";
    const char *input = CPLGetXMLValue(element, "input", NULL);
    const char *kernel_file = pgp_graph_attribute(element, "kernel");
    const char *type = CPLGetXMLValue(element, "dataType", "Float64");
    const char *nodata = CPLGetXMLValue(element, "noData", NULL);
    const char *tol = CPLGetXMLValue(element, "setTolToZero", "1e-8");
    const char *method = CPLGetXMLValue(element, "method", "auto");
    const CPLXMLNode *child, *inline_kernel = NULL;
    pgp_convolve_options *opt = &node->convolve;

    (void)graph;
    node->kind = PGP_NODE_CONVOLVE;
    if (pgp_graph_check_attributes(element, node->where, attributes) != 0 ||
        pgp_graph_parse_flag(element, node->where, "normalizeKernel", 0,
                             &opt->normalize_kernel) != 0 ||
        pgp_graph_parse_flag(element, node->where, "ignoreNoDataAndEdges", 0,
                             &opt->ignore_nodata_and_edges) != 0 ||
        pgp_graph_parse_flag(element, node->where, "maskNoData", 1, &opt->mask_nodata) != 0 ||
        pgp_graph_parse_data_type(type, node->where, &node->data_type) != 0)
        return -1;
    if (input == NULL) {
        pgp_graph_report(node->where, "missing attribute 'input'");
        return -1;
    }
    node->input = pgp_strdup(input);
    if (node->input == NULL)
        return -1;
    if (nodata == NULL && node->data_type != GDT_Float64) {
        pgp_graph_report(node->where, "dataType %s needs a noData (only Float64 has a default)",
                         type);
        return -1;
    }
    if (pgp_graph_parse_nodata(nodata ? nodata : float32_lowest, node->data_type, node->where,
                               &node->nodata) != 0)
        return -1;
    opt->has_tol = !EQUAL(tol, "none");
    if (opt->has_tol && (pgp_graph_parse_double(tol, &opt->tol) != 0 || !(opt->tol >= 0))) {
        pgp_graph_report(node->where,
                         "setTolToZero '%s' is neither a non-negative number nor 'none'", tol);
        return -1;
    }
    if (EQUAL(method, "auto"))
        opt->method = PGP_CONVOLVE_AUTO;
    else if (EQUAL(method, "direct"))
        opt->method = PGP_CONVOLVE_DIRECT;
    else if (EQUAL(method, "fft"))
        opt->method = PGP_CONVOLVE_FFT;
    else {
        pgp_graph_report(node->where, "method '%s' is not auto, direct or fft", method);
        return -1;
    }
    for (child = element->psChild; child != NULL; child = child->psNext) {
        if (child->eType != CXT_Element)
            continue;
        if (strcmp(child->pszValue, "Kernel") != 0 || inline_kernel != NULL) {
            pgp_graph_report(node->where,
                             "unexpected element <%s>: a <Convolve> holds at most one <Kernel>",
                             child->pszValue);
            return -1;
        }
        inline_kernel = child;
    }
    if ((kernel_file != NULL) == (inline_kernel != NULL)) {
        pgp_graph_report(node->where,
                         "give the kernel either as kernel=\"file\" or as one <Kernel>");
        return -1;
    }
    if (inline_kernel != NULL) {
        node->kernel = parse_inline_kernel(inline_kernel, node->where);
    } else {
        /* A copy: CPLProjectRelativeFilename's buffer is reused by GDALOpenEx. */
        node->path = pgp_strdup(pgp_graph_resolve_path(base_dir, kernel_file));
        if (node->path == NULL)
            return -1;
        node->kernel = read_kernel_raster(node->path, node->where);
    }
    return node->kernel != NULL ? 0 : -1;
}

static int link_convolve(pgp_graph *graph, pgp_node *node, const pgp_expr_var *vars)
{
    (void)vars;
    return pgp_graph_link_one(graph, node, node->input);
}

/* The input window over the tile and its reach (doubles and validity), and
 * the output. */
static double convolve_scratch_bytes(const pgp_graph *graph, const pgp_node *n)
{
    int up, down, left, right;
    pgp_kernel_reach(n->kernel, &up, &down, &left, &right);
    return (double)(graph->block_x + left + right) * (graph->block_y + up + down) *
               (sizeof(double) + 1) +
           (double)graph->block_x * graph->block_y * sizeof(double);
}

/* A tile of a Convolve: the input over the tile grown by the kernel's reach
 * (clipped to the raster, zero and invalid beyond it), then convolve_2d. */
static void *compute_convolve(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    const pgp_graph *g = pgp_job_graph(job);
    const pgp_kernel *kernel = pgp_job_kernel(job, node);
    const pgp_node *n = &g->nodes[node];
    const pgp_nodata *input_nodata = &g->nodes[n->input_nodes[0]].nodata;
    int up, down, left, right, row, col;
    size_t window_count, count = (size_t)t->w * t->h;
    double *window, *out;
    unsigned char *valid;
    pgp_rect region;
    void *pixels = NULL;
    int x_size, y_size;

    pgp_job_level_size(job, &x_size, &y_size);
    pgp_kernel_reach(kernel, &up, &down, &left, &right);
    const int ww = t->w + left + right, wh = t->h + up + down;
    window_count = (size_t)ww * wh;
    window = (double *)pgp_job_scratch(job, depth,
                                       (window_count + count) * sizeof(double) + window_count);
    if (window == NULL)
        return NULL;
    out = window + window_count;
    valid = (unsigned char *)(out + count);
    region.tx = region.ty = -1;
    region.x = MAX(t->x - left, 0);
    region.y = MAX(t->y - up, 0);
    region.w = MIN(t->x + t->w + right, x_size) - region.x;
    region.h = MIN(t->y + t->h + down, y_size) - region.y;
    if (region.w < ww || region.h < wh) { /* beyond the raster: zero and invalid */
        memset(window, 0, window_count * sizeof(double));
        memset(valid, 0, window_count);
    }
    {
        const size_t origin = (size_t)(region.y - (t->y - up)) * ww + (region.x - (t->x - left));
        if (pgp_job_read(job, n->input_nodes[0], &region, depth + 1, window + origin, ww) != 0)
            return NULL;
        for (row = 0; row < region.h; row++)
            for (col = 0; col < region.w; col++) {
                const size_t i = origin + (size_t)row * ww + col;
                valid[i] = !pgp_is_nodata(input_nodata, window[i]);
                if (!valid[i])
                    window[i] = 0;
            }
    }
    if (pgp_convolve_tile(kernel, &n->convolve, window, valid, t->w, t->h, g->block_x, g->block_y,
                          n->nodata.value, out, pgp_job_convolve_scratch(job)) == 0)
        pixels = pgp_job_tile(job, node, out, count);
    return pixels;
}

static void convolve_metadata(const pgp_node *node,
                              void (*set)(void *arg, const char *key, const char *value),
                              void *arg)
{
    set(arg, "PGP_INPUT", node->input);
    set(arg, "PGP_KERNEL",
        CPLSPrintf("%dx%d", pgp_kernel_rows(node->kernel), pgp_kernel_cols(node->kernel)));
}

static void free_convolve(pgp_node *node)
{
    pgp_free(node->input);
    pgp_kernel_free(node->kernel);
}

const pgp_node_kind_def pgp_node_convolve = {
    "Convolve",       parse_convolve,    link_convolve, convolve_scratch_bytes,
    compute_convolve, convolve_metadata, free_convolve, NULL};
