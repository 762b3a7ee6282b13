/* pgp/graph.h — the node graph of a .pgp.vrt document (docs/driver.md#format).
 *
 * pgp_graph_open parses the XML with CPL's minixml, resolves names, rejects
 * cycles and mismatched grids, compiles every expression, and reads each
 * source's grid once. The result is immutable: renderers on any thread read it
 * concurrently. It holds no GDAL handle (workers open their own).
 *
 * Ownership: the caller frees the graph with pgp_graph_free; nodes, bands and
 * strings belong to the graph. Errors: CPLError(CE_Failure, ...) naming the
 * element (and its name attribute) and the problem, then NULL.
 */
#ifndef PGP_GRAPH_H
#define PGP_GRAPH_H

#include "gdal.h"
#include "pgp/calc.h"
#include "pgp/convolve.h"
#include "pgp/expr.h"
#include "pgp/grid.h"
#include "pgp/nodata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Documented limits: refused with an error, never allocated. */
#define PGP_MAX_BLOCK_SIZE 8192          /* per block side                    */
#define PGP_MAX_BLOCK_PIXELS (1 << 24)   /* per block                         */
#define PGP_MAX_NODES 4096
#define PGP_MAX_JOB_BYTES ((size_t)2 << 30) /* one tile job's scratch, nesting included */

/* Sources are special to the machinery (read directly, their grids make the
 * dataset's); every other kind is told apart by its def (pgp/node.h). */
typedef enum pgp_node_kind {
    PGP_NODE_SOURCE,
    PGP_NODE_CALC,
    PGP_NODE_CONVOLVE,
    PGP_NODE_OTHER
} pgp_node_kind;

struct pgp_node_kind_def;

typedef struct pgp_node {
    pgp_node_kind kind;
    const struct pgp_node_kind_def *def; /* its row in the table of kinds */
    void *state;            /* a registered kind's own state (its free frees it) */
    char *name;
    char *where;            /* "<Calc name='risk'>", for messages              */
    GDALDataType data_type; /* of the values this node produces                */
    pgp_nodata nodata;      /* of those values, as readers test them           */

    /* PGP_NODE_SOURCE (and PGP_NODE_CONVOLVE: its kernel raster, if any) */
    char *path;             /* resolved against the .pgp.vrt's folder          */
    int band;
    int signed_byte;        /* Byte band with PIXELTYPE=SIGNEDBYTE: read as int8 */
    int x_size, y_size;     /* the source's own grid                           */
    int has_geotransform;
    double geotransform[6];
    char *srs_wkt;          /* WKT2_2018; NULL when none                       */
    char *projection_ref;   /* GDALGetProjectionRef's WKT1 ("" when none)      */
    GDALResampleAlg resampling; /* with <Align>: how it is warped onto the grid */

    /* PGP_NODE_CALC */
    char *expression;
    pgp_expr *program;
    pgp_calc_rules rules;   /* program, policy and nodata, for pgp_calc_eval   */
    /* PGP_NODE_CONVOLVE */
    char *input;            /* name of the convolved node                      */
    pgp_kernel *kernel;
    pgp_convolve_options convolve;

    /* PGP_NODE_CALC and PGP_NODE_CONVOLVE */
    int n_inputs;
    int *input_nodes;       /* the nodes it reads (a Calc's in ascending order) */
} pgp_node;

typedef struct pgp_band_def {
    int node;
    char *description;
} pgp_band_def;

typedef struct pgp_graph {
    int x_size, y_size;
    int block_x, block_y;
    int has_geotransform;
    double geotransform[6];
    char *srs_wkt;          /* of the first source (or <Align>'s); NULL if none */
    int aligned;            /* <Align>: sources are read through warped views  */
    pgp_grid align;         /* the aligned grid, when aligned                  */
    int n_nodes;
    pgp_node *nodes;        /* variable i of every program is node i           */
    pgp_nodata *var_nodata; /* nodata of node i, as expressions test it        */
    int n_bands;
    pgp_band_def *bands;
    char **source_files;    /* every file the graph reads (sources, kernels,
                               vectors), once each: GetFileList, fingerprints */
} pgp_graph;

/* Opens a .pgp.vrt from a path, or from the XML text itself when
 * filename_or_xml starts with '<' (relative paths then resolve against the
 * current directory). */
pgp_graph *pgp_graph_open(const char *filename_or_xml);

void pgp_graph_free(pgp_graph *graph);

int pgp_graph_find(const pgp_graph *graph, const char *name); /* -1 if none */

#ifdef __cplusplus
}
#endif

#endif
