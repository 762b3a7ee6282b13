/* calc.c — expression evaluation under the Calc nodata rules. */
#include "pgp/calc.h"

#include "cpl_port.h"

int pgp_calc_eval(const pgp_calc_rules *rules, const double *const *inputs, size_t n,
                  double *out)
{
    const double nodata = rules->out_nodata.value;
    size_t p;
    int v;
    if (pgp_expr_eval(rules->program, inputs, n, out) != 0)
        return -1;
    if (!rules->out_nodata.present)
        return 0;
    if (rules->policy == PGP_NODATA_PROPAGATE)
        for (v = 0; v < rules->n_vars; v++) {
            const pgp_nodata *var_nodata = &rules->var_nodata[v];
            const double *values = inputs[v];
            if (!var_nodata->present || !pgp_expr_reads_var(rules->program, v))
                continue;
            for (p = 0; p < n; p++)
                if (pgp_is_nodata(var_nodata, values[p]))
                    out[p] = nodata;
        }
    for (p = 0; p < n; p++)
        if (CPLIsNan(out[p]))
            out[p] = nodata;
    return 0;
}

int pgp_calc_missing_nodata(const pgp_calc_rules *rules)
{
    int v;
    if (rules->policy != PGP_NODATA_PROPAGATE || rules->out_nodata.present)
        return -1;
    for (v = 0; v < rules->n_vars; v++)
        if (rules->var_nodata[v].present && pgp_expr_reads_var(rules->program, v))
            return v;
    return -1;
}
