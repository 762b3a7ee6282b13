/* pgp/calc.h — a compiled expression evaluated with the Calc rules (docs/semantics.md#calc).
 *
 * Shared by <Calc> nodes and the pgp_expr VRT pixel function, so both give the
 * same bits: evaluate, then the noDataPolicy, then NaN -> noData.
 * Rules are plain data borrowed from their owner (the graph, or one pixel
 * function call); evaluation is pure and thread-safe.
 */
#ifndef PGP_CALC_H
#define PGP_CALC_H

#include <stddef.h>

#include "pgp/expr.h"
#include "pgp/nodata.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pgp_nodata_policy {
    PGP_NODATA_PROPAGATE,  /* any nodata input -> output noData */
    PGP_NODATA_EXPRESSION  /* the expression sees raw values    */
} pgp_nodata_policy;

typedef struct pgp_calc_rules {
    const pgp_expr *program;
    int n_vars;
    const pgp_nodata *var_nodata; /* per variable of program */
    pgp_nodata_policy policy;
    pgp_nodata out_nodata;
} pgp_calc_rules;

/* out[i] for n pixels; inputs[v] may be NULL where the program does not read v.
 * Returns 0, or -1 after CPLError (scratch memory). */
int pgp_calc_eval(const pgp_calc_rules *rules, const double *const *inputs, size_t n,
                  double *out);

/* The error to report when a propagating expression reads a variable that can
 * be nodata but no output noData is declared: its index, or -1 when fine. */
int pgp_calc_missing_nodata(const pgp_calc_rules *rules);

#ifdef __cplusplus
}
#endif

#endif
