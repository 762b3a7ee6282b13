/* leak_canary.c — a deliberate leak, to prove the sanitized GDAL-client run
 * reports pgp's leaks. Built from this repository like gdal_PGP.so and called
 * from Python (ctypes), it leaks CPLStrdup'd strings through libgdal, with the
 * interpreter below it on the stack as in every pgp call from osgeo.gdal.
 * tests/sanitize/run_gdal_tests.sh fails unless check_logs.py reports it.
 */
#include "cpl_conv.h"

__attribute__((visibility("default"))) void pgp_leak_canary(void)
{
    int i;
    for (i = 0; i < 8; i++) {
        char *volatile leaked = CPLStrdup("pgp leak canary");
        leaked = NULL;
        (void)leaked;
    }
}
