/* pgp/settings.h — the one parser for settings (docs/architecture.md#settings).
 *
 * Integers, booleans and the executor spec are read here for every caller:
 * the driver's open and config options, the pgp_expr pixel function and the
 * graph's XML attributes, so that a value means the same wherever it is given.
 * The parsers are strict: a typo is an error, never a silent default.
 */
#ifndef PGP_SETTINGS_H
#define PGP_SETTINGS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PGP_SETTINGS_DEFAULT_CACHE_MB 256
#define PGP_SETTINGS_MAX_CACHE_MB (1L << 24) /* 16 TB: anything larger is a typo */
#define PGP_SETTINGS_MAX_PREFETCH (1L << 16)

/* A decimal integer of digits only (no sign, no spaces) from min to max.
 * Returns 0 and stores it, else -1. */
int pgp_parse_int(const char *text, long min, long max, long *value);

/* YES/TRUE/ON/1 or NO/FALSE/OFF/0, any case. Returns 0 and stores 1 or 0,
 * else -1. */
int pgp_parse_bool(const char *text, int *value);

/* pgp_parse_int from 0 to max for a named setting; on failure returns -1 and
 * writes into err "<origin>='<text>' is not valid: expected an integer from 0
 * to <max>". */
int pgp_setting_count(const char *text, const char *origin, long max, long *value, char *err,
                      size_t errlen);

/* pgp_parse_bool for a named setting; on failure returns -1 and writes into
 * err "<origin>='<text>' is not valid: expected YES or NO". */
int pgp_setting_bool(const char *text, const char *origin, int *value, char *err,
                     size_t errlen);

/* The worker count of an executor spec: serial | threading | threading:N |
 * multiprocessing | multiprocessing:N (keywords case-insensitive;
 * multiprocessing is a synonym of threading; no N = all CPUs; 0 = serial).
 * A NULL spec means pgp_settings_default_threads(). Returns 0, or -1 with a
 * message in err naming origin (e.g. "PGP_EXECUTOR"), the value and the
 * accepted forms. */
int pgp_setting_executor(const char *spec, const char *origin, int *n_threads, char *err,
                         size_t errlen);

/* The PGP_ISA setting: auto | baseline | avx2 | avx512 (any case). Returns 0
 * and stores -1 for auto or the pgp_isa level (pgp/simd.h), else -1 with a
 * message in err naming origin, the value and the accepted forms. */
int pgp_setting_isa(const char *text, const char *origin, int *isa, char *err, size_t errlen);

/* The thread count when no spec is given: GDAL_NUM_THREADS (ALL_CPUS or N) if
 * set to a valid value, else 0 (serial). */
int pgp_settings_default_threads(void);

/* The PGP_CACHE_MB config option in MB; the driver reports invalid values,
 * here they mean the default. */
long pgp_settings_cache_mb(void);

#ifdef __cplusplus
}
#endif

#endif
