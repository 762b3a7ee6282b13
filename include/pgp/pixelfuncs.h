/* pgp/pixelfuncs.h — pgp's VRT pixel functions for plain .vrt files
 * (docs/driver.md#the-pgp_expr-pixel-function-plain-vrt).
 *
 * pgp_register_pixel_functions adds "pgp_expr" to GDAL's process-wide list of
 * derived-band pixel functions; the plugin calls it once when it loads.
 */
#ifndef PGP_PIXELFUNCS_H
#define PGP_PIXELFUNCS_H

#ifdef __cplusplus
extern "C" {
#endif

void pgp_register_pixel_functions(void);

#ifdef __cplusplus
}
#endif

#endif
