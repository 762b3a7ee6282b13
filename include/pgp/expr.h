/* pgp/expr.h — expression compiler and vector VM (docs/driver.md#expression-language).
 *
 * An expression is compiled once into a register bytecode program; evaluation
 * runs each instruction over a chunk of pixels at a time (numexpr's model), so
 * there is no per-pixel interpretive dispatch.
 *
 * Ownership: pgp_expr_compile returns a program the caller frees with
 * pgp_expr_free. A compiled program is immutable: any number of threads may
 * evaluate it at once (each call uses its own scratch memory).
 * Errors: compile never calls CPLError; it writes a message naming the column
 * into the caller's buffer, and the caller adds where the expression came from.
 */
#ifndef PGP_EXPR_H
#define PGP_EXPR_H

#include <stddef.h>

#include "pgp/nodata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Documented resource limits; a longer or deeper expression is a compile error. */
#define PGP_EXPR_MAX_LENGTH 65536
#define PGP_EXPR_MAX_DEPTH 256

/* A name the expression may read: its nodata decides isnodata(name). */
typedef struct pgp_expr_var {
    const char *name;
    pgp_nodata nodata;
} pgp_expr_var;

typedef struct pgp_expr pgp_expr;

/* Compiles text against the variables vars[0..n_vars). Returns NULL on error
 * with a message such as
 *   "expression 'a + * b' at column 5: expected an operand"
 * in err (always NUL-terminated, truncated to errlen). */
pgp_expr *pgp_expr_compile(const char *text, const pgp_expr_var *vars, int n_vars,
                           char *err, size_t errlen);

void pgp_expr_free(pgp_expr *expr);

/* 1 if the expression reads variable var_index (directly or through isnodata). */
int pgp_expr_reads_var(const pgp_expr *expr, int var_index);

/* Evaluates n pixels: inputs[i] holds n doubles of variable i (may be NULL for a
 * variable the expression does not read); out receives n doubles. Pure: the
 * same inputs always give the same bits, whatever n or the chunking.
 * Returns 0, or -1 after CPLError when scratch memory cannot be allocated. */
int pgp_expr_eval(const pgp_expr *expr, const double *const *inputs, size_t n, double *out);

#ifdef __cplusplus
}
#endif

#endif
