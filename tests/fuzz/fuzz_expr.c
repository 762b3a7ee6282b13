/* fuzz_expr.c — libFuzzer target: the input is an expression.
 *
 * It is compiled against variables with every kind of nodata (exact integer,
 * NaN, inexact float, none, and 'e', which shadows the constant), then
 * evaluated on vectors of interesting values: NaN, +-inf, 0, -0, huge, tiny,
 * the nodata values. Besides the sanitizers, it checks what expr.h promises:
 * the same bits whatever the vector length and chunking (one pixel at a time
 * against the whole vector), and that pgp_calc_eval under both policies
 * writes nodata, never NaN, where a noData is declared.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "pgp/calc.h"
#include "pgp/expr.h"

#define N_VARS 13
#define N_PIXELS 600 /* more than one 256-pixel chunk, and a partial one */

static const double interesting[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, 255.0, 256.0, -128.0, 65535.0,
    -32768.0, 2147483647.0, 4294967296.0, 9007199254740993.0, 1e-300, -1e-300, 5e-324,
    2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308, -9999.0, -9999.00001,
    1e30, 3.141592653589793, 2.718281828459045, NAN, -NAN, INFINITY,
    -INFINITY, 1e-8, 1e15, -1e15, 0.1, 1.0 / 3.0};
#define N_INTERESTING (sizeof interesting / sizeof interesting[0])

static pgp_expr_var vars[N_VARS];
static double *columns[N_VARS];
static int initialised;

static void initialise(void)
{
    /* the names the tests' expressions use, so their seeds compile */
    static const char *const names[N_VARS] = {"A", "B", "C", "D", "e", "a", "b",
                                              "c", "d", "f", "x", "fl", "lulc"};
    /* present, exact, value */
    static const pgp_nodata nodata[N_VARS] = {
        {1, 1, -1.0},  {1, 0, NAN}, {1, 0, -9999.0},    {0, 0, 0.0}, {1, 0, 1e30},
        {1, 1, 255.0}, {0, 0, 0.0},       {1, 0, -INFINITY}, {0, 0, 0.0}, {1, 0, 0.0},
        {1, 0, INFINITY}, {1, 0, -3.4e38}, {1, 1, 0.0}};
    int v;
    size_t i;
    CPLSetErrorHandler(CPLQuietErrorHandler);
    for (v = 0; v < N_VARS; v++) {
        vars[v].name = names[v];
        vars[v].nodata = nodata[v];
        columns[v] = (double *)malloc(N_PIXELS * sizeof(double));
        /* each variable walks the values at its own stride: many combinations */
        for (i = 0; i < N_PIXELS; i++)
            columns[v][i] = interesting[(i * (2 * v + 1) + (size_t)v * (i / N_INTERESTING)) %
                                        N_INTERESTING];
    }
    initialised = 1;
}

static int same(double x, double y)
{
    return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
}

static void check_one_at_a_time(const pgp_expr *expr, const double *whole)
{
    const double *inputs[N_VARS];
    double one;
    size_t i;
    int v;
    for (i = 0; i < N_PIXELS; i += 7) {
        for (v = 0; v < N_VARS; v++)
            inputs[v] = pgp_expr_reads_var(expr, v) ? columns[v] + i : NULL;
        if (pgp_expr_eval(expr, inputs, 1, &one) != 0)
            abort();
        if (!same(one, whole[i])) {
            fprintf(stderr, "pixel %zu: %.17g alone, %.17g in a vector\n", i, one, whole[i]);
            abort();
        }
    }
}

static void check_calc_rules(const pgp_expr *expr, const double *const *inputs, double *out)
{
    pgp_nodata var_nodata[N_VARS];
    pgp_calc_rules rules;
    size_t i;
    int v, policy;
    for (v = 0; v < N_VARS; v++)
        var_nodata[v] = vars[v].nodata;
    for (policy = 0; policy < 2; policy++) {
        memset(&rules, 0, sizeof rules);
        rules.program = expr;
        rules.n_vars = N_VARS;
        rules.var_nodata = var_nodata;
        rules.policy = policy ? PGP_NODATA_EXPRESSION : PGP_NODATA_PROPAGATE;
        rules.out_nodata.present = 1;
        rules.out_nodata.value = -3.5;
        if (pgp_calc_eval(&rules, inputs, N_PIXELS, out) != 0)
            abort();
        for (i = 0; i < N_PIXELS; i++)
            if (isnan(out[i]))
                abort(); /* NaN results are written as the declared noData */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    char *text;
    pgp_expr *expr;
    const double *inputs[N_VARS];
    double *out;
    int v;

    if (!initialised)
        initialise();
    text = (char *)malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    err[0] = 'x';
    expr = pgp_expr_compile(text, vars, N_VARS, err, sizeof err);
    if (expr == NULL) {
        /* The error names a column and is NUL-terminated within the buffer. */
        if (memchr(err, '\0', sizeof err) == NULL || strstr(err, "column ") == NULL)
            abort();
        free(text);
        return 0;
    }
    out = (double *)malloc(N_PIXELS * sizeof(double));
    for (v = 0; v < N_VARS; v++)
        inputs[v] = pgp_expr_reads_var(expr, v) ? columns[v] : NULL;
    if (pgp_expr_eval(expr, inputs, N_PIXELS, out) != 0)
        abort();
    check_one_at_a_time(expr, out);
    check_calc_rules(expr, inputs, out);
    pgp_expr_free(expr);
    free(out);
    free(text);
    return 0;
}
