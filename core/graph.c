/* graph.c — parse and validate a .pgp.vrt document into an immutable graph. */
#include "pgp/graph.h"
#include "pgp/node.h"
#include "pgp/alloc.h"
#include "pgp/settings.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_minixml.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "ogr_srs_api.h"

/* Every problem is reported as "<where>: <what>" so users find the element. */
void pgp_graph_report(const char *where, const char *fmt, ...)
{
    char what[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    CPLError(CE_Failure, CPLE_AppDefined, "%s: %s", where, what);
}

int pgp_graph_parse_double(const char *text, double *value)
{
    char *end = NULL;
    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    *value = CPLStrtod(text, &end);
    while (*end == ' ')
        end++;
    return (*end == '\0' && end != text) ? 0 : -1;
}

int pgp_graph_parse_int(const char *text, long min, long max, int *value)
{
    long v;
    if (pgp_parse_int(text, min, max, &v) != 0)
        return -1;
    *value = (int)v;
    return 0;
}

/* Rejects attributes an element does not define: a typo must not be ignored. */
int pgp_graph_check_attributes(const CPLXMLNode *element, const char *where,
                               const char *const *allowed)
{
    const CPLXMLNode *child;
    for (child = element->psChild; child != NULL; child = child->psNext) {
        int i, known = 0;
        if (child->eType != CXT_Attribute)
            continue;
        for (i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(child->pszValue, allowed[i]) == 0;
        if (!known) {
            pgp_graph_report(where, "unknown attribute '%s'", child->pszValue);
            return -1;
        }
    }
    return 0;
}

/* pgp_graph_check_attributes for an element that holds no elements: a child element
 * (a misplaced one, or <file> meant as file=, which CPLGetXMLValue would read) is
 * refused, not ignored. */
int pgp_graph_check_leaf(const CPLXMLNode *element, const char *where,
                         const char *const *allowed)
{
    const CPLXMLNode *child;
    if (pgp_graph_check_attributes(element, where, allowed) != 0)
        return -1;
    for (child = element->psChild; child != NULL; child = child->psNext)
        if (child->eType == CXT_Element) {
            pgp_graph_report(where, "unexpected element <%s>: <%s> holds no elements",
                             child->pszValue, element->pszValue);
            return -1;
        }
    return 0;
}

/* An attribute by exact name (CPLGetXMLValue would also match a child element
 * with that name in any case: kernel= versus <Kernel>). */
const char *pgp_graph_attribute(const CPLXMLNode *element, const char *name)
{
    const CPLXMLNode *child;
    for (child = element->psChild; child != NULL; child = child->psNext)
        if (child->eType == CXT_Attribute && strcmp(child->pszValue, name) == 0)
            return CPLGetXMLValue(child, NULL, "");
    return NULL;
}

static int is_identifier(const char *name)
{
    const char *c = name;
    if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')))
        return 0;
    for (c++; *c; c++)
        if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
              (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* NULL after CPLError when memory runs out. */
static char *describe(const char *element, const char *name)
{
    return name ? pgp_strdup(CPLSPrintf("<%s name='%s'>", element, name))
                : pgp_strdup(CPLSPrintf("<%s>", element));
}

int pgp_graph_parse_data_type(const char *text, const char *where, GDALDataType *type)
{
    *type = GDALGetDataTypeByName(text);
    if (*type == GDT_Unknown || GDALDataTypeIsComplex(*type)) {
        pgp_graph_report(where,
                         "dataType '%s' is not a real GDAL data type (Byte, UInt16, Int16, "
                         "UInt32, Int32, UInt64, Int64, Float32, Float64)",
                         text);
        return -1;
    }
    return 0;
}

/* A noData attribute must be a number the data type can hold exactly, or the
 * output could never be recognised as nodata. */
int pgp_graph_parse_nodata(const char *text, GDALDataType type, const char *where,
                           pgp_nodata *nodata)
{
    int clamped = FALSE, rounded = FALSE;
    double value;
    nodata->exact = GDALDataTypeIsInteger(type);
    nodata->present = text != NULL;
    if (text == NULL)
        return 0;
    if (pgp_graph_parse_double(text, &value) != 0) {
        pgp_graph_report(where, "noData '%s' is not a number", text);
        return -1;
    }
    if (!CPLIsNan(value))
        GDALAdjustValueToDataType(type, value, &clamped, &rounded);
    if (clamped || rounded || (nodata->exact && CPLIsNan(value))) {
        pgp_graph_report(where, "noData %s cannot be represented in %s", text,
                         GDALGetDataTypeName(type));
        return -1;
    }
    nodata->value = value;
    return 0;
}

int pgp_graph_parse_flag(const CPLXMLNode *element, const char *where, const char *attribute,
                         int fallback, int *value)
{
    const char *text = CPLGetXMLValue(element, attribute, NULL);
    if (text == NULL) {
        *value = fallback;
        return 0;
    }
    if (pgp_parse_bool(text, value) != 0) {
        pgp_graph_report(where, "%s '%s' is not a boolean (true or false)", attribute, text);
        return -1;
    }
    return 0;
}

/* ---- kinds ------------------------------------------------------------------- */

/* The table of node kinds: one row per kind, built-ins first. */
#define MAX_KINDS 32
static const pgp_node_kind_def *kinds[MAX_KINDS] = {&pgp_node_source, &pgp_node_calc,
                                                    &pgp_node_convolve, &pgp_node_stitch};
static int n_kinds = 4;

int pgp_node_kind_register(const pgp_node_kind_def *def)
{
    if (n_kinds == MAX_KINDS || pgp_node_kind_find(def->element) != NULL)
        return -1;
    kinds[n_kinds++] = def;
    return 0;
}

const pgp_node_kind_def *pgp_node_kind_find(const char *element)
{
    int i;
    for (i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i]->element, element) == 0)
            return kinds[i];
    return NULL;
}

int pgp_graph_link_one(pgp_graph *graph, pgp_node *node, const char *input)
{
    const int found = pgp_graph_find(graph, input);
    if (found < 0) {
        pgp_graph_report(node->where, "input '%s' names no <Source>, <Calc> or <Convolve>", input);
        return -1;
    }
    node->input_nodes = (int *)pgp_calloc(1, sizeof(int));
    if (node->input_nodes == NULL)
        return -1;
    node->input_nodes[0] = found;
    node->n_inputs = 1;
    return 0;
}

/* ---- sources ----------------------------------------------------------------- */

/* Paths are relative to the .pgp.vrt unless absolute or /vsi... */
const char *pgp_graph_resolve_path(const char *base_dir, const char *file)
{
    return STARTS_WITH(file, "/vsi") || !CPLIsFilenameRelative(file)
               ? file
               : CPLProjectRelativeFilename(base_dir, file);
}

static int geotransforms_equal(const double *a, const double *b)
{
    double scale = fabs(a[1]) + fabs(a[5]);
    int i;
    for (i = 0; i < 6; i++)
        if (fabs(a[i] - b[i]) > 1e-9 * scale)
            return 0;
    return 1;
}

void pgp_graph_add_file(pgp_graph *graph, const char *path)
{
    if (CSLFindString(graph->source_files, path) < 0)
        graph->source_files = CSLAddString(graph->source_files, path);
}

/* Without <Align>, every source must be on the first one's grid. */
static int check_shared_grid(pgp_graph *graph)
{
    const pgp_node *first = NULL;
    int i;
    for (i = 0; i < graph->n_nodes; i++) {
        const pgp_node *n = &graph->nodes[i];
        const double *g, *gt = n->geotransform;
        if (n->kind != PGP_NODE_SOURCE)
            continue;
        if (first == NULL) {
            first = n;
            graph->x_size = n->x_size;
            graph->y_size = n->y_size;
            graph->has_geotransform = n->has_geotransform;
            memcpy(graph->geotransform, n->geotransform, sizeof graph->geotransform);
            if (n->srs_wkt != NULL && (graph->srs_wkt = pgp_strdup(n->srs_wkt)) == NULL)
                return -1;
            continue;
        }
        g = graph->geotransform;
        if (n->x_size != graph->x_size || n->y_size != graph->y_size) {
            pgp_graph_report(
                n->where,
                "'%s' is %dx%d pixels but %s is %dx%d; put the sources on one grid with "
                "<Align>",
                n->path, n->x_size, n->y_size, first->where, graph->x_size, graph->y_size);
            return -1;
        }
        if (n->has_geotransform != graph->has_geotransform ||
            (n->has_geotransform && !geotransforms_equal(gt, g))) {
            pgp_graph_report(
                n->where,
                "geotransform (%.15g,%.15g,%.15g,%.15g,%.15g,%.15g) of '%s' differs from %s's "
                "(%.15g,%.15g,%.15g,%.15g,%.15g,%.15g); put the sources on one grid with "
                "<Align>",
                gt[0], gt[1], gt[2], gt[3], gt[4], gt[5], n->path, first->where, g[0], g[1], g[2],
                g[3], g[4], g[5]);
            return -1;
        }
    }
    return 0;
}

/* ---- align ------------------------------------------------------------------- */

/* The source nodes in document order, as pgp_grid inputs; NULL after CPLError. */
static pgp_grid_input *grid_inputs(const pgp_graph *graph, int *n)
{
    pgp_grid_input *inputs = (pgp_grid_input *)pgp_calloc(graph->n_nodes, sizeof(*inputs));
    int i;
    *n = 0;
    if (inputs == NULL)
        return NULL;
    for (i = 0; i < graph->n_nodes; i++) {
        const pgp_node *node = &graph->nodes[i];
        if (node->kind != PGP_NODE_SOURCE)
            continue;
        memcpy(inputs[*n].gt, node->geotransform, sizeof inputs[*n].gt);
        inputs[*n].x_size = node->x_size;
        inputs[*n].y_size = node->y_size;
        inputs[*n].srs_wkt = node->srs_wkt;
        (*n)++;
    }
    return inputs;
}

/* Position of a source among the sources (alignTo), or -1. */
static int source_position(const pgp_graph *graph, const char *name)
{
    int i, position = 0;
    for (i = 0; i < graph->n_nodes; i++) {
        if (graph->nodes[i].kind != PGP_NODE_SOURCE)
            continue;
        if (strcmp(graph->nodes[i].name, name) == 0)
            return position;
        position++;
    }
    return -1;
}

/* One <Input ref resampling>: sets its source's resampling. */
static int parse_align_input(pgp_graph *graph, const CPLXMLNode *input, char *seen)
{
    static const char *const attributes[] = {"ref", "resampling", NULL};
    const char *ref = CPLGetXMLValue(input, "ref", NULL);
    char err[512];
    int node;
    if (strcmp(input->pszValue, "Input") != 0) {
        pgp_graph_report(
            "<Align>",
            "unexpected element <%s>: <Align> holds <Input ref resampling> and one <Mask>",
            input->pszValue);
        return -1;
    }
    if (pgp_graph_check_leaf(input, "<Align> <Input>", attributes) != 0)
        return -1;
    node = ref ? pgp_graph_find(graph, ref) : -1;
    if (node < 0 || graph->nodes[node].kind != PGP_NODE_SOURCE) {
        pgp_graph_report("<Align> <Input>", "ref '%s' names no <Source>", ref ? ref : "");
        return -1;
    }
    if (seen[node]) {
        pgp_graph_report("<Align> <Input>", "source '%s' has two <Input>s", ref);
        return -1;
    }
    seen[node] = 1;
    if (pgp_grid_parse_resampling(CPLGetXMLValue(input, "resampling", "near"),
                                  &graph->nodes[node].resampling, err, sizeof err) != 0) {
        pgp_graph_report(CPLSPrintf("<Align> <Input ref='%s'>", ref), "%s", err);
        return -1;
    }
    return 0;
}

/* Sources without an <Input> are warped with near, like every other source. */
static int parse_align_inputs(pgp_graph *graph, const CPLXMLNode *align)
{
    const CPLXMLNode *child;
    char *seen = (char *)pgp_calloc(graph->n_nodes, 1);
    int status = seen != NULL ? 0 : -1;
    for (child = align->psChild; child != NULL && status == 0; child = child->psNext)
        if (child->eType == CXT_Element && strcmp(child->pszValue, "Mask") != 0)
            status = parse_align_input(graph, child, seen);
    pgp_free(seen);
    return status;
}

static int parse_vectors(pgp_graph *graph, const char *list, const char *base_dir,
                         pgp_grid_vector **vectors, int *n)
{
    char **paths = CSLTokenizeString2(list ? list : "", ",", CSLT_STRIPLEADSPACES |
                                                                  CSLT_STRIPENDSPACES);
    char err[512];
    int i, status = 0;
    *vectors = (pgp_grid_vector *)pgp_calloc(CSLCount(paths) + 1, sizeof(pgp_grid_vector));
    *n = *vectors != NULL ? CSLCount(paths) : 0;
    status = *vectors != NULL ? 0 : -1;
    for (i = 0; i < *n && status == 0; i++) {
        char *srs = NULL, *path = pgp_strdup(pgp_graph_resolve_path(base_dir, paths[i]));
        if (path == NULL) {
            status = -1;
            break;
        }
        status = pgp_grid_vector_bbox(path, NULL, &(*vectors)[i].bbox, &srs, err, sizeof err);
        pgp_graph_add_file(graph, path);
        pgp_free(path);
        (*vectors)[i].srs_wkt = srs;
        if (status != 0)
            pgp_graph_report("<Align>", "vectors: '%s': %s", paths[i], err);
    }
    CSLDestroy(paths);
    return status;
}

/* <Mask vector layer where> (mask_options): the spec goes into *mask, and
 * the selected features' box into *box for pgp_grid_compute's check. */
static int parse_mask(const CPLXMLNode *align, const char *base_dir, pgp_grid_mask *mask,
                      pgp_grid_vector *box)
{
    static const char *const attributes[] = {"vector", "layer", "where", NULL};
    const CPLXMLNode *element = NULL, *child;
    const char *vector;
    char err[1024], *srs = NULL;
    for (child = align->psChild; child != NULL; child = child->psNext) {
        if (child->eType != CXT_Element || strcmp(child->pszValue, "Mask") != 0)
            continue;
        if (element != NULL) {
            pgp_graph_report("<Align> <Mask>", "<Align> holds at most one <Mask>");
            return -1;
        }
        element = child;
    }
    if (element == NULL)
        return 0;
    vector = pgp_graph_attribute(element, "vector");
    if (pgp_graph_check_leaf(element, "<Align> <Mask>", attributes) != 0)
        return -1;
    if (vector == NULL || *vector == '\0') {
        pgp_graph_report("<Align> <Mask>", "missing vector (the polygons to keep)");
        return -1;
    }
    mask->path = pgp_strdup(pgp_graph_resolve_path(base_dir, vector));
    if (mask->path == NULL)
        return -1;
    if (pgp_graph_attribute(element, "layer") != NULL &&
        (mask->layer = pgp_strdup(pgp_graph_attribute(element, "layer"))) == NULL)
        return -1;
    if (pgp_graph_attribute(element, "where") != NULL &&
        (mask->where = pgp_strdup(pgp_graph_attribute(element, "where"))) == NULL)
        return -1;
    if (pgp_grid_mask_bbox(mask, &box->bbox, &srs, err, sizeof err) != 0) {
        pgp_graph_report("<Align> <Mask>", "%s", err);
        return -1;
    }
    box->srs_wkt = srs;
    return 0;
}

/* <Align>: every source is read through its warp onto one computed grid
 * (align_and_resize_raster_stack, docs/semantics.md#align). */
static int parse_align(pgp_graph *graph, const CPLXMLNode *align, const char *base_dir)
{
    static const char *const attributes[] = {"boundingBox", "pixelSize", "alignTo", "srs",
                                             "vectors", NULL};
    const char *align_to = CPLGetXMLValue(align, "alignTo", NULL);
    const char *srs_text = CPLGetXMLValue(align, "srs", NULL);
    pgp_grid_vector *vectors = NULL, mask_box = {{0, 0, 0, 0}, NULL};
    pgp_grid_mask mask = {NULL, NULL, NULL};
    pgp_grid_input *inputs = NULL;
    pgp_bbox_spec bbox;
    double pixel_size[2];
    char *target_srs = NULL;
    char err[1024];
    int i, n_inputs = 0, n_vectors = 0, align_index = -1, status = -1;

    if (pgp_graph_check_attributes(align, "<Align>", attributes) != 0 ||
        parse_align_inputs(graph, align) != 0)
        return -1;
    if (pgp_grid_parse_bbox(CPLGetXMLValue(align, "boundingBox", "intersection"), &bbox, err,
                            sizeof err) != 0 ||
        pgp_grid_parse_pixel_size(CPLGetXMLValue(align, "pixelSize", ""), pixel_size, err,
                                  sizeof err) != 0) {
        pgp_graph_report("<Align>", "%s", err);
        return -1;
    }
    if (align_to != NULL && (align_index = source_position(graph, align_to)) < 0) {
        pgp_graph_report("<Align>", "alignTo '%s' names no <Source>", align_to);
        return -1;
    }
    if (srs_text != NULL) {
        OGRSpatialReferenceH srs;
        /* Reprojecting needs every source's projection, whatever the box mode. */
        for (i = 0; i < graph->n_nodes; i++)
            if (graph->nodes[i].kind == PGP_NODE_SOURCE && graph->nodes[i].srs_wkt == NULL) {
                pgp_graph_report(
                    graph->nodes[i].where,
                    "'%s' has no projection, so <Align> cannot reproject it to srs '%s'",
                    graph->nodes[i].path, srs_text);
                return -1;
            }
        srs = OSRNewSpatialReference(NULL);
        CPLPushErrorHandler(CPLQuietErrorHandler);
        if (OSRSetFromUserInput(srs, srs_text) != OGRERR_NONE ||
            OSRExportToWkt(srs, &target_srs) != OGRERR_NONE) {
            CPLPopErrorHandler();
            pgp_graph_report("<Align>", "srs '%s' is not a spatial reference GDAL knows", srs_text);
            OSRDestroySpatialReference(srs);
            CPLFree(target_srs);
            return -1;
        }
        CPLPopErrorHandler();
        OSRDestroySpatialReference(srs);
    }
    if (parse_vectors(graph, CPLGetXMLValue(align, "vectors", NULL), base_dir, &vectors,
                      &n_vectors) == 0 &&
        parse_mask(align, base_dir, &mask, &mask_box) == 0) {
        inputs = grid_inputs(graph, &n_inputs);
        if (inputs != NULL &&
            pgp_grid_compute(inputs, n_inputs, &bbox, pixel_size, align_index, target_srs,
                             vectors, n_vectors, mask.path ? &mask_box : NULL, &graph->align,
                             err, sizeof err) != 0)
            pgp_graph_report("<Align>", "%s", err);
        else if (inputs != NULL)
            status = 0;
    }
    if (status == 0) {
        if (mask.path != NULL)
            pgp_graph_add_file(graph, mask.path);
        graph->align.mask = mask; /* the grid owns the strings now */
        memset(&mask, 0, sizeof mask);
        graph->aligned = 1;
        graph->x_size = graph->align.x_size;
        graph->y_size = graph->align.y_size;
        graph->has_geotransform = 1;
        memcpy(graph->geotransform, graph->align.gt, sizeof graph->geotransform);
        if (graph->align.srs_wkt != NULL &&
            (graph->srs_wkt = pgp_strdup(graph->align.srs_wkt)) == NULL)
            status = -1;
    }
    for (i = 0; i < n_vectors; i++)
        CPLFree((char *)vectors[i].srs_wkt);
    CPLFree((char *)mask_box.srs_wkt);
    pgp_free(mask.path);
    pgp_free(mask.layer);
    pgp_free(mask.where);
    pgp_free(vectors);
    pgp_free(inputs);
    CPLFree(target_srs);
    return status;
}

/* Depth-first search with colours; the stack holds the path for the message. */
static int find_cycle(const pgp_graph *graph, int node, char *colour, int *path, int depth)
{
    const pgp_node *n = &graph->nodes[node];
    int i;
    path[depth] = node;
    if (colour[node] == 2)
        return 0;
    if (colour[node] == 1) {
        int start = 0;
        char *message = pgp_strdup("");
        while (path[start] != node)
            start++;
        for (i = start; i <= depth && message != NULL; i++) {
            char *longer = pgp_strdup(CPLSPrintf("%s%s%s", message, i > start ? " -> " : "",
                                                 graph->nodes[path[i]].name));
            pgp_free(message);
            message = longer;
        }
        if (message != NULL)
            pgp_graph_report(n->where, "the graph has a cycle: %s", message);
        pgp_free(message);
        return -1;
    }
    colour[node] = 1;
    for (i = 0; i < n->n_inputs; i++)
        if (find_cycle(graph, n->input_nodes[i], colour, path, depth + 1) != 0)
            return -1;
    colour[node] = 2;
    return 0;
}

static int check_acyclic(const pgp_graph *graph)
{
    char *colour = (char *)pgp_calloc(graph->n_nodes, 1);
    int *path = (int *)pgp_calloc(graph->n_nodes + 1, sizeof(int));
    int i, status = colour != NULL && path != NULL ? 0 : -1;
    for (i = 0; i < graph->n_nodes && status == 0; i++)
        status = find_cycle(graph, i, colour, path, 0);
    pgp_free(colour);
    pgp_free(path);
    return status;
}

/* Scratch a job computing node holds at the deepest point: its own buffers plus
 * the worst input computed inside the same job (render.c nests one level per
 * node). need[] memoises (< 0: not yet known). */
static double job_bytes(const pgp_graph *graph, int node, double *need)
{
    const pgp_node *n = &graph->nodes[node];
    double own = 0, deepest = 0;
    int i;
    if (need[node] >= 0)
        return need[node];
    if (n->def->scratch_bytes != NULL)
        own = n->def->scratch_bytes(graph, n);
    for (i = 0; i < n->n_inputs; i++)
        deepest = MAX(deepest, job_bytes(graph, n->input_nodes[i], need));
    return need[node] = own + deepest;
}

/* A long chain of nodes with big blocks would need its scratch once per level
 * in every worker: refused here, not discovered as an allocation failure. */
static int check_job_memory(const pgp_graph *graph)
{
    double *need = (double *)pgp_malloc_array(graph->n_nodes, sizeof(double));
    int i, worst = 0, status = 0;
    if (need == NULL)
        return -1;
    for (i = 0; i < graph->n_nodes; i++)
        need[i] = -1;
    for (i = 0; i < graph->n_nodes; i++)
        if (job_bytes(graph, i, need) > need[worst])
            worst = i;
    if (need[worst] > PGP_MAX_JOB_BYTES) {
        pgp_graph_report(graph->nodes[worst].where,
                         "computing one tile needs %.0f MB of scratch per worker (nodes nested "
                         "%dx%d-pixel tiles deep), above the %d MB limit: use smaller blocks "
                         "(blockXSize/blockYSize) or a shallower graph",
                         need[worst] / (1 << 20), graph->block_x, graph->block_y,
                         (int)(PGP_MAX_JOB_BYTES >> 20));
        status = -1;
    }
    pgp_free(need);
    return status;
}

/* ---- document ---------------------------------------------------------------- */

static int parse_band(const pgp_graph *graph, const CPLXMLNode *element, int index,
                      pgp_band_def *band)
{
    static const char *const attributes[] = {"ref", "description", NULL};
    const char *ref = CPLGetXMLValue(element, "ref", NULL);
    char where[64];
    snprintf(where, sizeof where, "<Band> #%d", index + 1);
    if (pgp_graph_check_leaf(element, where, attributes) != 0)
        return -1;
    if (ref == NULL) {
        pgp_graph_report(where, "missing attribute 'ref'");
        return -1;
    }
    band->node = pgp_graph_find(graph, ref);
    if (band->node < 0) {
        pgp_graph_report(where, "ref '%s' names no <Source>, <Calc> or <Convolve>", ref);
        return -1;
    }
    band->description = pgp_strdup(CPLGetXMLValue(element, "description", ""));
    return band->description != NULL ? 0 : -1;
}

static int parse_block_size(const CPLXMLNode *root, const char *attribute, int *size)
{
    const char *text = CPLGetXMLValue(root, attribute, "256");
    if (pgp_graph_parse_int(text, 1, PGP_MAX_BLOCK_SIZE, size) != 0) {
        pgp_graph_report("<PGPDataset>", "%s '%s' must be an integer from 1 to %d", attribute,
                         text ? text : "", PGP_MAX_BLOCK_SIZE);
        return -1;
    }
    return 0;
}

static int count_elements(const CPLXMLNode *root, const char *name)
{
    const CPLXMLNode *child;
    int n = 0;
    for (child = root->psChild; child != NULL; child = child->psNext)
        n += child->eType == CXT_Element && strcmp(child->pszValue, name) == 0;
    return n;
}

/* Pass 1: every <Source>/<Calc> becomes a node, so names resolve in any order. */
static int collect_nodes(pgp_graph *graph, const CPLXMLNode *root, const char *base_dir)
{
    const CPLXMLNode *child;
    const char *first_source = NULL;
    for (child = root->psChild; child != NULL; child = child->psNext) {
        const char *kind = child->pszValue;
        const pgp_node_kind_def *def;
        const char *name;
        pgp_node *node;
        int status;
        if (child->eType != CXT_Element || strcmp(kind, "Band") == 0 ||
            strcmp(kind, "Align") == 0)
            continue;
        def = pgp_node_kind_find(kind);
        if (def == NULL) {
            char *where = describe(kind, CPLGetXMLValue(child, "name", NULL));
            if (where != NULL)
                pgp_graph_report(where, "unknown element (a <PGPDataset> holds <Source>, <Align>, "
                                        "<Calc>, <Convolve> and <Band>)");
            pgp_free(where);
            return -1;
        }
        name = CPLGetXMLValue(child, "name", NULL);
        node = &graph->nodes[graph->n_nodes];
        node->where = describe(kind, name);
        graph->n_nodes++;
        if (node->where == NULL)
            return -1;
        if (name == NULL || !is_identifier(name)) {
            pgp_graph_report(node->where, name
                                              ? "name is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"
                                              : "missing attribute 'name'");
            return -1;
        }
        if (pgp_graph_find(graph, name) >= 0) {
            pgp_graph_report(node->where, "duplicate name: another element is already named '%s'",
                             name);
            return -1;
        }
        node->name = pgp_strdup(name);
        if (node->name == NULL)
            return -1;
        node->def = def;
        node->kind = PGP_NODE_OTHER;
        status = def->parse(graph, child, base_dir, node);
        if (status != 0)
            return -1;
        if (node->kind == PGP_NODE_SOURCE)
            first_source = node->where;
        if (node->path != NULL)
            pgp_graph_add_file(graph, node->path);
    }
    if (first_source == NULL) {
        pgp_graph_report("<PGPDataset>",
                         "no <Source>: the grid of the dataset comes from its sources");
        return -1;
    }
    return 0;
}

static int build(pgp_graph *graph, const CPLXMLNode *root, const char *base_dir)
{
    static const char *const attributes[] = {"blockXSize", "blockYSize", NULL};
    const CPLXMLNode *child;
    pgp_expr_var *vars;
    int i, n_elements, status = 0;

    if (pgp_graph_check_attributes(root, "<PGPDataset>", attributes) != 0 ||
        parse_block_size(root, "blockXSize", &graph->block_x) != 0 ||
        parse_block_size(root, "blockYSize", &graph->block_y) != 0)
        return -1;
    if ((long long)graph->block_x * graph->block_y > PGP_MAX_BLOCK_PIXELS) {
        pgp_graph_report("<PGPDataset>", "block of %dx%d pixels exceeds the limit of %d pixels",
                         graph->block_x, graph->block_y, PGP_MAX_BLOCK_PIXELS);
        return -1;
    }
    n_elements = 0;
    for (i = 0; i < n_kinds; i++)
        n_elements += count_elements(root, kinds[i]->element);
    if (n_elements > PGP_MAX_NODES) {
        pgp_graph_report("<PGPDataset>", "more than %d nodes", PGP_MAX_NODES);
        return -1;
    }
    /* Unknown elements are refused before they would overflow the array. */
    graph->nodes = (pgp_node *)pgp_calloc(n_elements + 1, sizeof(pgp_node));
    if (graph->nodes == NULL || collect_nodes(graph, root, base_dir) != 0)
        return -1;
    switch (count_elements(root, "Align")) {
    case 0:
        status = check_shared_grid(graph);
        break;
    case 1:
        status = parse_align(graph, CPLGetXMLNode((CPLXMLNode *)root, "Align"), base_dir);
        break;
    default:
        pgp_graph_report("<Align>", "a <PGPDataset> holds at most one <Align>");
        status = -1;
    }
    if (status != 0)
        return -1;
    /* Blocks larger than the raster would only waste memory. */
    graph->block_x = MIN(graph->block_x, graph->x_size);
    graph->block_y = MIN(graph->block_y, graph->y_size);

    for (i = 0; i < graph->n_nodes; i++)
        if (graph->nodes[i].def->inherit != NULL &&
            graph->nodes[i].def->inherit(graph, &graph->nodes[i]) != 0)
            return -1;

    /* Pass 2: variable i of every expression is node i. */
    vars = (pgp_expr_var *)pgp_calloc(graph->n_nodes, sizeof(pgp_expr_var));
    graph->var_nodata = (pgp_nodata *)pgp_calloc(graph->n_nodes, sizeof(pgp_nodata));
    if (vars == NULL || graph->var_nodata == NULL) {
        pgp_free(vars);
        return -1;
    }
    for (i = 0; i < graph->n_nodes; i++) {
        vars[i].name = graph->nodes[i].name;
        vars[i].nodata = graph->var_nodata[i] = graph->nodes[i].nodata;
    }
    for (i = 0; i < graph->n_nodes && status == 0; i++)
        if (graph->nodes[i].def->link != NULL)
            status = graph->nodes[i].def->link(graph, &graph->nodes[i], vars);
    pgp_free(vars);
    if (status != 0 || check_acyclic(graph) != 0 || check_job_memory(graph) != 0)
        return -1;

    graph->bands = (pgp_band_def *)pgp_calloc(count_elements(root, "Band") + 1,
                                             sizeof(pgp_band_def));
    if (graph->bands == NULL)
        return -1;
    for (child = root->psChild; child != NULL; child = child->psNext)
        if (child->eType == CXT_Element && strcmp(child->pszValue, "Band") == 0) {
            graph->n_bands++; /* first: a failed band's description is freed too */
            if (parse_band(graph, child, graph->n_bands - 1,
                           &graph->bands[graph->n_bands - 1]) != 0)
                return -1;
        }
    if (graph->n_bands == 0) {
        pgp_graph_report("<PGPDataset>", "no <Band ref=\"...\"/>: the dataset would have no band");
        return -1;
    }
    return 0;
}

/* The XML entities an <Expression> may hold: anything else after '&' is a raw '&'. */
static int starts_entity(const char *p)
{
    static const char *const entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"};
    size_t i;
    for (i = 0; i < sizeof entities / sizeof *entities; i++)
        if (strncmp(p, entities[i], strlen(entities[i])) == 0)
            return 1;
    return 0;
}

/* The next "<Expression" at or after p outside XML comments (a commented-out one is
 * not read), or NULL. */
static const char *next_expression(const char *p)
{
    for (;;) {
        const char *open = strstr(p, "<Expression");
        const char *comment = strstr(p, "<!--");
        if (open == NULL || comment == NULL || open < comment)
            return open;
        if ((p = strstr(comment + 4, "-->")) == NULL)
            return NULL;
    }
}

/* When an <Expression> holds a raw '&' or '<' (people write `A > 100 && B < 5`),
 * a sentence saying so and how to write it instead, else "". */
static const char *raw_markup_hint(const char *text, char *hint, size_t size)
{
    const char *open = text;
    hint[0] = '\0';
    while (text != NULL && (open = next_expression(open)) != NULL) {
        const char *body = strchr(open, '>');
        const char *end = body ? strstr(body, "</Expression>") : NULL;
        const char *p;
        if (end == NULL)
            break;
        for (p = ++body; p < end; p++) {
            int line = 1;
            const char *q;
            if (strncmp(p, "<![CDATA[", 9) == 0) { /* its text is taken as written */
                const char *close = strstr(p, "]]>");
                if (close == NULL || close > end)
                    break;
                p = close + 2;
                continue;
            }
            if (!(*p == '<' || (*p == '&' && !starts_entity(p))))
                continue;
            for (q = text; q < p; q++)
                line += *q == '\n';
            snprintf(hint, size,
                     ". The <Expression> on line %d holds a raw '%c' ('%.*s'), which XML "
                     "does not allow: write 'and'/'or' instead of '&&'/'||', escape '&' as "
                     "'&amp;' and '<' as '&lt;', or wrap the expression in <![CDATA[ ... ]]>",
                     line, *p, (int)(end - body < 80 ? end - body : 80), body);
            return hint;
        }
        open = end;
    }
    return hint;
}

/* "malformed XML" with minixml's reason, and what to do when it is a raw '&'
 * or '<' in an <Expression>. */
static void report_malformed(const char *filename_or_xml, int from_text)
{
    char reason[1024], hint[512];
    char *text = NULL;
    size_t length;
    snprintf(reason, sizeof reason, "%s", CPLGetLastErrorMsg());
    length = strlen(reason);
    if (length > 0 && reason[length - 1] == '.') /* the hint starts a sentence */
        reason[length - 1] = '\0';
    if (!from_text) {
        GByte *bytes = NULL;
        if (VSIIngestFile(NULL, filename_or_xml, &bytes, NULL, 64 * 1024 * 1024))
            text = (char *)bytes;
    }
    raw_markup_hint(from_text ? filename_or_xml : text, hint, sizeof hint);
    pgp_graph_report(from_text ? "<PGPDataset> text" : filename_or_xml, "malformed XML: %s%s",
                     reason, hint);
    VSIFree(text);
}

/* minixml parses `<Expression>A > 1 && B</Expression>` without an error but keeps
 * only "A > 1 ": the expression would silently lose its tail. Reported as an error
 * (with the hint) when the document's text shows a raw '&' in an <Expression>. */
static int partly_read_expression(const char *filename_or_xml, int from_text)
{
    char hint[512];
    GByte *bytes = NULL;
    const char *text = filename_or_xml;
    if (!from_text) {
        if (!VSIIngestFile(NULL, filename_or_xml, &bytes, NULL, 64 * 1024 * 1024))
            return 0; /* minixml read it; a second read failing leaves its reading */
        text = (const char *)bytes;
    }
    raw_markup_hint(text, hint, sizeof hint);
    if (hint[0] != '\0')
        pgp_graph_report(from_text ? "<PGPDataset> text" : filename_or_xml,
                         "GDAL's XML reader would read only part of an <Expression>%s", hint);
    VSIFree(bytes);
    return hint[0] != '\0';
}

pgp_graph *pgp_graph_open(const char *filename_or_xml)
{
    const int from_text = filename_or_xml[0] == '<';
    CPLXMLNode *document;
    const CPLXMLNode *root;
    pgp_graph *graph;
    char *base_dir;

    CPLErrorReset();
    document = from_text ? CPLParseXMLString(filename_or_xml) : CPLParseXMLFile(filename_or_xml);
    if (document == NULL) {
        report_malformed(filename_or_xml, from_text);
        return NULL;
    }
    if (partly_read_expression(filename_or_xml, from_text)) {
        CPLDestroyXMLNode(document);
        return NULL;
    }
    root = CPLGetXMLNode(document, "=PGPDataset");
    if (root == NULL) {
        CPLError(CE_Failure, CPLE_AppDefined, "%s: the root element is not <PGPDataset>",
                 from_text ? "XML text" : filename_or_xml);
        CPLDestroyXMLNode(document);
        return NULL;
    }
    graph = (pgp_graph *)pgp_calloc(1, sizeof(pgp_graph));
    base_dir = pgp_strdup(from_text ? "" : CPLGetPath(filename_or_xml));
    if (graph == NULL || base_dir == NULL || build(graph, root, base_dir) != 0) {
        pgp_graph_free(graph);
        graph = NULL;
    }
    pgp_free(base_dir);
    CPLDestroyXMLNode(document);
    return graph;
}

void pgp_graph_free(pgp_graph *graph)
{
    int i;
    if (graph == NULL)
        return;
    for (i = 0; i < graph->n_nodes; i++) {
        pgp_node *node = &graph->nodes[i];
        if (node->def != NULL && node->def->free != NULL)
            node->def->free(node);
        pgp_free(node->name);
        pgp_free(node->where);
        pgp_free(node->path);
        pgp_free(node->input_nodes);
        pgp_free(node->srs_wkt);
        pgp_free(node->projection_ref);
    }
    for (i = 0; i < graph->n_bands; i++)
        pgp_free(graph->bands[i].description);
    pgp_free(graph->nodes);
    pgp_free(graph->var_nodata);
    pgp_free(graph->bands);
    pgp_free(graph->srs_wkt);
    pgp_grid_clear(&graph->align);
    CSLDestroy(graph->source_files);
    pgp_free(graph);
}

int pgp_graph_find(const pgp_graph *graph, const char *name)
{
    int i;
    for (i = 0; i < graph->n_nodes; i++)
        if (graph->nodes[i].name != NULL && strcmp(graph->nodes[i].name, name) == 0)
            return i;
    return -1;
}
