/* pgp_expr.c — the pgp_expr pixel function for plain GDAL VRTs
 * (docs/driver.md#the-pgp_expr-pixel-function-plain-vrt).
 *
 * <PixelFunctionType>pgp_expr</PixelFunctionType>
 * <PixelFunctionArguments expression="A * 2 + B" names="A,B"/>
 *
 * Same compiler, VM and nodata rules as <Calc> (pgp_calc_eval). GDAL hands the
 * function every source's pixels for the request in one type; the request is
 * split into fixed row bands evaluated on the PGP_EXECUTOR pool. Each pixel
 * depends on its inputs only, so any split gives the same bits.
 */
#include "pgp/pixelfuncs.h"

#include <string.h>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "gdal.h"
#include "pgp/alloc.h"
#include "pgp/calc.h"
#include "pgp/executor.h"
#include "pgp/settings.h"

#define ROWS_PER_JOB 64

static const char pgp_expr_metadata[] =
    "<PixelFunctionArgumentsList>"
    "  <Argument name='expression' type='string' mandatory='1' "
    "description='pgp expression over the names of the sources'/>"
    "  <Argument name='names' type='string' mandatory='1' "
    "description='comma-separated variable names, one per source, in order'/>"
    "  <Argument name='nodata_policy' type='string' default='propagate' "
    "description='propagate or expression'/>"
    "  <Argument name='source_nodata' type='string' "
    "description='comma-separated nodata of each source (none for no nodata); default: the "
    "band NoDataValue for every source'/>"
    "  <Argument type='builtin' value='NoData'/>"
    "</PixelFunctionArgumentsList>";

typedef struct pixel_request {
    pgp_calc_rules rules;
    void **sources;
    GDALDataType source_type;
    int width, height;
    GByte *out;
    GDALDataType out_type;
    int pixel_space, line_space;
} pixel_request;

static int evaluate_rows(void *arg, size_t job)
{
    const pixel_request *q = (const pixel_request *)arg;
    const int row0 = (int)job * ROWS_PER_JOB;
    const int rows = MIN(ROWS_PER_JOB, q->height - row0);
    const size_t count = (size_t)rows * q->width;
    const int source_size = GDALGetDataTypeSizeBytes(q->source_type);
    const int n = q->rules.n_vars;
    double *values = (double *)pgp_malloc_array((size_t)n + 1, count * sizeof(double));
    const double **inputs = (const double **)pgp_calloc(n, sizeof(double *));
    double *result;
    int i, status = -1;
    if (values != NULL && inputs != NULL) {
        result = values + (size_t)n * count;
        for (i = 0; i < n; i++) {
            GDALCopyWords64((const GByte *)q->sources[i] + (size_t)row0 * q->width * source_size,
                            q->source_type, source_size, values + i * count, GDT_Float64,
                            sizeof(double), (GPtrDiff_t)count);
            inputs[i] = values + i * count;
        }
        status = pgp_calc_eval(&q->rules, inputs, count, result);
        for (i = 0; i < rows && status == 0; i++)
            GDALCopyWords(result + (size_t)i * q->width, GDT_Float64, sizeof(double),
                          q->out + (GPtrDiff_t)(row0 + i) * q->line_space, q->out_type,
                          q->pixel_space, q->width);
    }
    if (status != 0) {
        char cause[1024];
        CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
        CPLError(CE_Failure, CPLGetLastErrorNo(), "pgp_expr: rows %d to %d of a %dx%d request: %s",
                 row0, row0 + rows - 1, q->width, q->height, cause);
    }
    pgp_free(inputs);
    pgp_free(values);
    return status;
}

/* An argument by its exact name: CSLFetchNameValue ignores case, and the
 * 'nodata' argument must not be confused with GDAL's builtin 'NoData'. */
static const char *argument(CSLConstList args, const char *name)
{
    const size_t len = strlen(name);
    for (; args != NULL && *args != NULL; args++)
        if (strncmp(*args, name, len) == 0 && (*args)[len] == '=')
            return *args + len + 1;
    return NULL;
}

/* The per-source nodata list. GDAL 3.6 merges arguments case-insensitively,
 * so a 'nodata' argument replaces the builtin 'NoData' (the band's, which is
 * the output's): 'source_nodata' is the name that keeps both; 'nodata' is
 * accepted too (the format's first name for it), at the price of the output
 * nodata. */
static const char *source_nodata_list(CSLConstList args)
{
    const char *list = argument(args, "source_nodata");
    return list ? list : argument(args, "nodata");
}

/* Fills nodata[0..n) from the per-source list, or the band's NoData for all. */
static int parse_source_nodata(CSLConstList args, int n, GDALDataType type, pgp_nodata *nodata)
{
    const char *list = source_nodata_list(args);
    const char *band_nodata = argument(args, "NoData");
    char **items = list ? CSLTokenizeString2(list, ",", CSLT_STRIPLEADSPACES |
                                                           CSLT_STRIPENDSPACES)
                        : NULL;
    int i, status = 0;
    if (list != NULL && CSLCount(items) != n) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "pgp_expr: source nodata '%s' gives %d values for %d sources", list, CSLCount(items),
                 n);
        status = -1;
    }
    for (i = 0; i < n && status == 0; i++) {
        const char *text = list ? items[i] : band_nodata;
        char *end = NULL;
        nodata[i].exact = GDALDataTypeIsInteger(type);
        nodata[i].present = text != NULL && !EQUAL(text, "none");
        if (!nodata[i].present)
            continue;
        nodata[i].value = CPLStrtod(text, &end);
        if (end == text || *end != '\0') {
            CPLError(CE_Failure, CPLE_IllegalArg, "pgp_expr: nodata value '%s' is not a number",
                     text);
            status = -1;
        }
    }
    CSLDestroy(items);
    return status;
}

static int parse_policy(CSLConstList args, pgp_nodata_policy *policy)
{
    const char *text = argument(args, "nodata_policy");
    if (text == NULL || EQUAL(text, "propagate"))
        *policy = PGP_NODATA_PROPAGATE;
    else if (EQUAL(text, "expression"))
        *policy = PGP_NODATA_EXPRESSION;
    else {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "pgp_expr: nodata_policy '%s' is neither 'propagate' nor 'expression'", text);
        return -1;
    }
    return 0;
}

static pgp_executor *executor_from_config(void)
{
    int threads;
    char err[512];
    if (pgp_setting_executor(CPLGetConfigOption("PGP_EXECUTOR", NULL), "PGP_EXECUTOR", &threads,
                             err, sizeof err) != 0) {
        CPLError(CE_Failure, CPLE_IllegalArg, "pgp_expr: %s", err);
        return NULL;
    }
    return pgp_executor_get(threads);
}

static CPLErr pgp_expr_pixel_function(void **sources, int n_sources, void *out, int width,
                                      int height, GDALDataType source_type,
                                      GDALDataType out_type, int pixel_space, int line_space,
                                      CSLConstList args)
{
    const char *expression = argument(args, "expression");
    const char *names = argument(args, "names");
    char **name_list = NULL;
    pgp_expr_var *vars = NULL;
    pgp_nodata *nodata = NULL;
    pgp_expr *program = NULL;
    pixel_request q;
    pgp_executor *executor;
    CPLErr status = CE_Failure;
    char err[1024];
    int i;

    memset(&q, 0, sizeof q);
    if (GDALDataTypeIsComplex(source_type)) {
        CPLError(CE_Failure, CPLE_NotSupported, "pgp_expr: complex sources are not supported");
        return CE_Failure;
    }
    if (expression == NULL || names == NULL) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "pgp_expr: missing pixel function argument '%s'",
                 expression == NULL ? "expression" : "names");
        return CE_Failure;
    }
    name_list = CSLTokenizeString2(names, ",", CSLT_STRIPLEADSPACES | CSLT_STRIPENDSPACES);
    if (CSLCount(name_list) != n_sources) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "pgp_expr: names='%s' gives %d names but the band has %d sources", names,
                 CSLCount(name_list), n_sources);
        goto done;
    }
    nodata = (pgp_nodata *)pgp_calloc(n_sources, sizeof(pgp_nodata));
    vars = (pgp_expr_var *)pgp_calloc(n_sources, sizeof(pgp_expr_var));
    if (nodata == NULL || vars == NULL) {
        char cause[256]; /* copied: CPLError formats into the message's buffer */
        CPLStrlcpy(cause, CPLGetLastErrorMsg(), sizeof cause);
        CPLError(CE_Failure, CPLE_OutOfMemory, "pgp_expr: %s", cause);
        goto done;
    }
    if (parse_source_nodata(args, n_sources, source_type, nodata) != 0 ||
        parse_policy(args, &q.rules.policy) != 0)
        goto done;
    for (i = 0; i < n_sources; i++) {
        vars[i].name = name_list[i];
        vars[i].nodata = nodata[i];
    }
    program = pgp_expr_compile(expression, vars, n_sources, err, sizeof err);
    if (program == NULL) {
        CPLError(CE_Failure, CPLE_IllegalArg, "pgp_expr: %s", err);
        goto done;
    }
    q.rules.program = program;
    q.rules.n_vars = n_sources;
    q.rules.var_nodata = nodata;
    q.rules.out_nodata.present = argument(args, "NoData") != NULL;
    q.rules.out_nodata.value = CPLAtof(q.rules.out_nodata.present ? argument(args, "NoData") : "0");
    if ((i = pgp_calc_missing_nodata(&q.rules)) >= 0) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "pgp_expr: source '%s' has nodata but the band has no output nodata: add a "
                 "<NoDataValue> (and give per-source values as source_nodata, not nodata, "
                 "which replaces it), or use nodata_policy=expression",
                 name_list[i]);
        goto done;
    }
    executor = executor_from_config();
    if (executor == NULL)
        goto done;
    q.sources = sources;
    q.source_type = source_type;
    q.width = width;
    q.height = height;
    q.out = (GByte *)out;
    q.out_type = out_type;
    q.pixel_space = pixel_space;
    q.line_space = line_space;
    status = pgp_executor_run(executor, (size_t)(height + ROWS_PER_JOB - 1) / ROWS_PER_JOB,
                              evaluate_rows, &q, NULL, NULL);
done:
    pgp_expr_free(program);
    pgp_free(vars);
    pgp_free(nodata);
    CSLDestroy(name_list);
    return status;
}

void pgp_register_pixel_functions(void)
{
    GDALAddDerivedBandPixelFuncWithArgs("pgp_expr", pgp_expr_pixel_function, pgp_expr_metadata);
}
