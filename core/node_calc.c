/* node_calc.c — the <Calc> node kind: an expression over other nodes, under
 * the nodata rules of pgp/calc.h. */
#include "pgp/node.h"
#include "pgp/alloc.h"

#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"

static int parse_calc(pgp_graph *graph, const CPLXMLNode *element, const char *base_dir,
                      pgp_node *node)
{
    static const char *const attributes[] = {"name", "dataType", "noData", "noDataPolicy", NULL};
    static const char *const no_attributes[] = {NULL};
    const char *type = CPLGetXMLValue(element, "dataType", "Float64");
    const char *policy = CPLGetXMLValue(element, "noDataPolicy", "propagate");
    const CPLXMLNode *child, *expression = NULL;

    (void)graph, (void)base_dir;
    node->kind = PGP_NODE_CALC;
    if (pgp_graph_check_attributes(element, node->where, attributes) != 0 ||
        pgp_graph_parse_data_type(type, node->where, &node->data_type) != 0 ||
        pgp_graph_parse_nodata(CPLGetXMLValue(element, "noData", NULL), node->data_type,
                               node->where, &node->nodata) != 0)
        return -1;
    if (EQUAL(policy, "propagate"))
        node->rules.policy = PGP_NODATA_PROPAGATE;
    else if (EQUAL(policy, "expression"))
        node->rules.policy = PGP_NODATA_EXPRESSION;
    else {
        pgp_graph_report(node->where, "noDataPolicy '%s' is neither 'propagate' nor 'expression'",
                         policy);
        return -1;
    }
    for (child = element->psChild; child != NULL; child = child->psNext) {
        if (child->eType != CXT_Element)
            continue;
        if (strcmp(child->pszValue, "Expression") != 0 || expression != NULL) {
            pgp_graph_report(node->where,
                             "unexpected element <%s>: a <Calc> holds one <Expression>",
                             child->pszValue);
            return -1;
        }
        expression = child;
    }
    if (expression != NULL && pgp_graph_check_leaf(expression, node->where, no_attributes) != 0)
        return -1;
    node->expression = pgp_strdup(expression ? CPLGetXMLValue(expression, NULL, "") : "");
    if (node->expression == NULL)
        return -1;
    if (expression == NULL || node->expression[strspn(node->expression, " \t\r\n")] == '\0') {
        pgp_graph_report(node->where, "missing or empty <Expression>");
        return -1;
    }
    return 0;
}

/* Compiles the expression: variable i is node i; its inputs are the nodes it
 * reads, in ascending order. */
static int link_calc(pgp_graph *graph, pgp_node *node, const pgp_expr_var *vars)
{
    char err[1024];
    int i, missing;
    node->program = pgp_expr_compile(node->expression, vars, graph->n_nodes, err, sizeof err);
    if (node->program == NULL) {
        pgp_graph_report(node->where, "%s", err);
        return -1;
    }
    node->rules.program = node->program;
    node->rules.n_vars = graph->n_nodes;
    node->rules.var_nodata = graph->var_nodata;
    node->rules.out_nodata = node->nodata;
    node->input_nodes = (int *)pgp_calloc(graph->n_nodes, sizeof(int));
    if (node->input_nodes == NULL)
        return -1;
    for (i = 0; i < graph->n_nodes; i++)
        if (pgp_expr_reads_var(node->program, i))
            node->input_nodes[node->n_inputs++] = i;
    missing = pgp_calc_missing_nodata(&node->rules);
    if (missing >= 0) {
        pgp_graph_report(
            node->where,
            "input '%s' has nodata but the Calc declares no noData; add noData=\"...\" "
            "or noDataPolicy=\"expression\"",
            graph->nodes[missing].name);
        return -1;
    }
    return 0;
}

/* Its inputs' rows, the output, then the inputs by node. */
static double calc_scratch_bytes(const pgp_graph *graph, const pgp_node *n)
{
    return (n->n_inputs + 1) * (double)graph->block_x * graph->block_y * sizeof(double);
}

static void *compute_calc(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    const pgp_graph *g = pgp_job_graph(job);
    const pgp_node *n = &g->nodes[node];
    const size_t count = (size_t)t->w * t->h;
    /* Input rows, the output, then the inputs by node (as pgp_calc_eval wants). */
    double *buffers = (double *)pgp_job_scratch(
        job, depth, (n->n_inputs + 1) * count * sizeof(double) + g->n_nodes * sizeof(double *));
    double **inputs;
    double *out;
    void *pixels = NULL;
    int i, ok = buffers != NULL;
    if (!ok)
        return NULL;
    out = buffers + n->n_inputs * count;
    inputs = (double **)(out + count);
    memset(inputs, 0, g->n_nodes * sizeof(double *));
    for (i = 0; i < n->n_inputs && ok; i++) {
        const int input = n->input_nodes[i];
        inputs[input] = buffers + i * count;
        ok = pgp_job_read(job, input, t, depth + 1, inputs[input], t->w) == 0;
    }
    if (ok && pgp_calc_eval(&n->rules, (const double *const *)inputs, count, out) == 0)
        pixels = pgp_job_tile(job, node, out, count);
    return pixels;
}

static void calc_metadata(const pgp_node *node,
                          void (*set)(void *arg, const char *key, const char *value), void *arg)
{
    set(arg, "PGP_EXPRESSION", node->expression);
}

static void free_calc(pgp_node *node)
{
    pgp_free(node->expression);
    pgp_expr_free(node->program);
}

const pgp_node_kind_def pgp_node_calc = {"Calc",       parse_calc,    link_calc,
                                         calc_scratch_bytes, compute_calc, calc_metadata,
                                         free_calc,          NULL};
