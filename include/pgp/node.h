/* pgp/node.h — node kinds (docs/architecture.md#node-kinds).
 *
 * A kind is one table row (pgp_node_kind_def): the XML element it owns, how
 * that element is parsed, how the node links to its inputs, how much scratch
 * one tile of it holds, how a tile is computed from a worker's job, and the
 * band metadata it adds. graph.c dispatches on the element name and keeps
 * what every node shares (names, linking checks, cycles, limits); render.c
 * calls compute for each tile a job must produce. The built-in kinds are in
 * core/node_*.c; pgp_node_kind_register adds one at run time (tests).
 */
#ifndef PGP_NODE_H
#define PGP_NODE_H

#include <stddef.h>

#include "cpl_minixml.h"
#include "pgp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A rectangle of a level's grid; tx, ty: the tile it is, -1 when none. */
typedef struct pgp_rect {
    int tx, ty;
    int x, y, w, h;
} pgp_rect;

/* A worker's context running one tile job on one renderer level (render.c). */
typedef struct pgp_job pgp_job;

typedef struct pgp_node_kind_def {
    const char *element; /* "Calc" for <Calc> */
    /* Reads the element's attributes and children into node (name and where
     * are set); base_dir resolves relative paths. 0, or -1 after CPLError. */
    int (*parse)(pgp_graph *graph, const CPLXMLNode *element, const char *base_dir,
                 pgp_node *node);
    /* Once every node is parsed: sets n_inputs/input_nodes; vars[i] is node
     * i as an expression variable. NULL: the node reads no other node. */
    int (*link)(pgp_graph *graph, pgp_node *node, const pgp_expr_var *vars);
    /* Bytes of job scratch a tile of node holds while its inputs are computed. */
    double (*scratch_bytes)(const pgp_graph *graph, const pgp_node *node);
    /* The node's pixels of tile t (t->w x t->h, its data type) in a buffer from
     * pgp_job_tile or pgp_job_tile_buffer, or NULL after CPLError. depth: how
     * many tiles up the stack wait for this one (pgp_job_scratch's index). */
    void *(*compute)(pgp_job *job, int node, const pgp_rect *t, int depth);
    /* Band metadata of a band showing the node: set(arg, key, value). */
    void (*metadata)(const pgp_node *node, void (*set)(void *arg, const char *key,
                                                       const char *value),
                     void *arg);
    /* Frees what parse and link allocated beyond the shared fields. */
    void (*free)(pgp_node *node);
    /* Once every node is parsed and the grid is known, before any link: takes
     * the data type and nodata the node inherits from a node it names (a
     * Stitch its target's), which expressions linked later must see. NULL:
     * parse set them. */
    int (*inherit)(pgp_graph *graph, pgp_node *node);
} pgp_node_kind_def;

/* The built-in kinds' rows. */
extern const pgp_node_kind_def pgp_node_source, pgp_node_calc, pgp_node_convolve,
    pgp_node_stitch;

/* Adds a kind for graphs opened afterwards (not thread-safe: at start-up).
 * 0, or -1 when the element is taken or the table is full. */
int pgp_node_kind_register(const pgp_node_kind_def *def);

/* The kind owning an element name, or NULL. */
const pgp_node_kind_def *pgp_node_kind_find(const char *element);

/* ---- for kinds: what a job offers a compute function ---- */
const pgp_graph *pgp_job_graph(const pgp_job *job);
/* The level's raster size (overview levels are smaller). */
void pgp_job_level_size(const pgp_job *job, int *x_size, int *y_size);
/* Full-resolution pixels per pixel of the level (1 at full resolution). */
void pgp_job_level_scale(const pgp_job *job, double *scale_x, double *scale_y);
/* node's pixels of rect as doubles into values (rows stride apart): computed
 * (or found) tile by tile at depth, a source read directly. 0 or -1. */
int pgp_job_read(pgp_job *job, int node, const pgp_rect *rect, int depth, double *values,
                 int stride);
/* Scratch of the job at depth, grown to bytes (contents not kept), or NULL. */
void *pgp_job_scratch(pgp_job *job, int depth, size_t bytes);
/* A tile buffer for count pixels of node's data type, or NULL. */
void *pgp_job_tile_buffer(pgp_job *job, int node, size_t count);
/* values converted to node's data type in a tile buffer, or NULL. */
void *pgp_job_tile(pgp_job *job, int node, const double *values, size_t count);
/* A node's kernel at the job's level (downsampled on overview levels). */
const pgp_kernel *pgp_job_kernel(const pgp_job *job, int node);
/* The job's working memory for pgp_convolve_tile. */
pgp_convolve_scratch *pgp_job_convolve_scratch(pgp_job *job);
/* A source node's pixels of rect r as type into pixels (rows stride apart). */
int pgp_job_read_source(pgp_job *job, int node, const pgp_rect *r, void *pixels,
                        GDALDataType type, int stride);

/* ---- for kinds: parsing helpers (graph.c); errors read "<where>: <what>" ---- */
void pgp_graph_report(const char *where, const char *fmt, ...) CPL_PRINT_FUNC_FORMAT(2, 3);
int pgp_graph_check_attributes(const CPLXMLNode *element, const char *where,
                               const char *const *allowed);
/* The same, and no child element. */
int pgp_graph_check_leaf(const CPLXMLNode *element, const char *where,
                         const char *const *allowed);
int pgp_graph_parse_double(const char *text, double *value);
int pgp_graph_parse_int(const char *text, long min, long max, int *value);
/* A boolean attribute (pgp_parse_bool's spellings); fallback when absent. */
int pgp_graph_parse_flag(const CPLXMLNode *element, const char *where, const char *attribute,
                         int fallback, int *value);
/* An attribute by exact name (not a child element of that name in any case). */
const char *pgp_graph_attribute(const CPLXMLNode *element, const char *name);
/* A path relative to the .pgp.vrt's folder unless absolute or /vsi (a
 * CPLProjectRelativeFilename buffer: copy it). */
const char *pgp_graph_resolve_path(const char *base_dir, const char *file);
/* Records a file the graph reads (GetFileList, fingerprints). */
void pgp_graph_add_file(pgp_graph *graph, const char *path);
int pgp_graph_parse_data_type(const char *text, const char *where, GDALDataType *type);
int pgp_graph_parse_nodata(const char *text, GDALDataType type, const char *where,
                           pgp_nodata *nodata);
/* Links node to the one node named input (n_inputs = 1). */
int pgp_graph_link_one(pgp_graph *graph, pgp_node *node, const char *input);

#ifdef __cplusplus
}
#endif

#endif
