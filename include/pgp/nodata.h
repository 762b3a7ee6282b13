/* pgp/nodata.h — the one "is this pixel nodata?" test (docs/semantics.md#the-nodata-test).
 *
 * pygeoprocessing's array_equals_nodata: exact equality for integer data,
 * numpy.isclose(v, nd, equal_nan=True) for floating-point data. Header-only so
 * the expression VM, Calc, Convolve and statistics inline the same code.
 */
#ifndef PGP_NODATA_H
#define PGP_NODATA_H

#include <math.h>

typedef struct pgp_nodata {
    int present;    /* 0: the raster has no nodata value, no pixel is nodata */
    int exact;      /* integer data type: exact equality, else isclose      */
    double value;
} pgp_nodata;

static inline int pgp_is_nodata(const pgp_nodata *nd, double v)
{
    if (!nd->present)
        return 0;
    if (nd->exact)
        return v == nd->value;
    if (isnan(nd->value))
        return isnan(v);
    if (isinf(nd->value)) /* numpy.isclose: inf is close to itself only */
        return v == nd->value;
    return fabs(v - nd->value) <= 1e-8 + 1e-5 * fabs(nd->value);
}

#endif
