/* grid_internal.h — helpers core/grid.c lends core/warp.c; not installed,
 * not for other modules. Errors follow grid.h: -1 and a message in err. */
#ifndef PGP_GRID_INTERNAL_H
#define PGP_GRID_INTERNAL_H

#include <stddef.h>

#include "cpl_port.h"
#include "gdal.h"
#include "ogr_api.h"
#include "ogr_srs_api.h"
#include "pgp/grid.h"

/* Writes the message (locale-independent numbers) into err; returns -1. */
int pgp_grid_fail(char *err, size_t errlen, const char *fmt, ...) CPL_PRINT_FUNC_FORMAT(3, 4);

/* The text of the last CPLError on this thread, for appending to messages. */
const char *pgp_grid_gdal_reason(void);

static inline int pgp_grid_has_text(const char *s)
{
    return s != NULL && *s != '\0';
}

/* The filter radius GDAL's warper gives a resampling (0 for near), -1 if unknown. */
int pgp_grid_resampling_radius(GDALResampleAlg alg);

/* An SRS from any string OSR accepts, in traditional GIS axis order; NULL if refused. */
OGRSpatialReferenceH pgp_grid_new_srs(const char *text);

/* Opens mask->path, takes its layer (the first when none is named) and applies
 * the where filter, as pygeoprocessing's rasterize does. The caller closes *ds. */
int pgp_grid_open_mask_layer(const pgp_grid_mask *mask, GDALDatasetH *ds, OGRLayerH *layer,
                             char *err, size_t errlen);

#endif
