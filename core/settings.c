/* Settings: the one parser for integers, booleans and the executor spec
 * (pgp/settings.h). */
#include "pgp/settings.h"
#include "pgp/executor.h"
#include "pgp/simd.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cpl_conv.h"
#include "cpl_multiproc.h"
#include "cpl_string.h"

int pgp_parse_int(const char *text, long min, long max, long *value)
{
    long v = 0;
    if (text == NULL || *text == '\0')
        return -1;
    for (; *text; text++) {
        if (*text < '0' || *text > '9')
            return -1;
        /* saturates: an overflowing value is above any max */
        v = v > (LONG_MAX - (*text - '0')) / 10 ? LONG_MAX : v * 10 + (*text - '0');
    }
    if (v < min || v > max)
        return -1;
    *value = v;
    return 0;
}

int pgp_parse_bool(const char *text, int *value)
{
    static const char *const yes[] = {"YES", "TRUE", "ON", "1"};
    static const char *const no[] = {"NO", "FALSE", "OFF", "0"};
    int i;
    for (i = 0; text != NULL && i < 4; i++) {
        if (EQUAL(text, yes[i]) || EQUAL(text, no[i])) {
            *value = EQUAL(text, yes[i]);
            return 0;
        }
    }
    return -1;
}

int pgp_setting_count(const char *text, const char *origin, long max, long *value, char *err,
                      size_t errlen)
{
    if (pgp_parse_int(text, 0, max, value) == 0)
        return 0;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s='%s' is not valid: expected an integer from 0 to %ld", origin,
                 text ? text : "", max);
    return -1;
}

int pgp_setting_bool(const char *text, const char *origin, int *value, char *err, size_t errlen)
{
    if (pgp_parse_bool(text, value) == 0)
        return 0;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s='%s' is not valid: expected YES or NO", origin,
                 text ? text : "");
    return -1;
}

static int all_cpus(void)
{
    int n = CPLGetNumCPUs();
    if (n < 1)
        return 1;
    return n > PGP_EXECUTOR_MAX_THREADS ? PGP_EXECUTOR_MAX_THREADS : n;
}

static int is_keyword(const char *spec, size_t len, const char *keyword)
{
    return strlen(keyword) == len && EQUALN(spec, keyword, len);
}

int pgp_setting_executor(const char *spec, const char *origin, int *n_threads, char *err,
                         size_t errlen)
{
    const char *colon;
    size_t keyword_len;
    long n;
    if (spec == NULL) {
        *n_threads = pgp_settings_default_threads();
        return 0;
    }
    colon = strchr(spec, ':');
    keyword_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!colon && is_keyword(spec, keyword_len, "serial")) {
        *n_threads = 0;
        return 0;
    }
    if (is_keyword(spec, keyword_len, "threading") ||
        is_keyword(spec, keyword_len, "multiprocessing")) {
        if (!colon) {
            *n_threads = all_cpus();
            return 0;
        }
        if (pgp_parse_int(colon + 1, 1, PGP_EXECUTOR_MAX_THREADS, &n) == 0) {
            *n_threads = (int)n;
            return 0;
        }
    }
    if (err != NULL && errlen > 0)
        snprintf(err, errlen,
                 "%s='%s' is not valid: expected serial, threading, threading:N, "
                 "multiprocessing or multiprocessing:N with N from 1 to %d",
                 origin ? origin : "executor", spec, PGP_EXECUTOR_MAX_THREADS);
    return -1;
}

int pgp_setting_isa(const char *text, const char *origin, int *isa, char *err, size_t errlen)
{
    if (text != NULL && EQUAL(text, "auto")) {
        *isa = -1;
        return 0;
    }
    for (int level = 0; text != NULL && level < PGP_ISA_COUNT; level++) {
        if (EQUAL(text, pgp_isa_name((pgp_isa)level))) {
            *isa = level;
            return 0;
        }
    }
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s='%s' is not valid: expected auto, baseline, avx2 or avx512",
                 origin ? origin : "isa", text ? text : "");
    return -1;
}

int pgp_settings_default_threads(void)
{
    const char *value = CPLGetConfigOption("GDAL_NUM_THREADS", NULL);
    long n;
    if (value == NULL)
        return 0;
    if (EQUAL(value, "ALL_CPUS"))
        return all_cpus();
    if (pgp_parse_int(value, 1, LONG_MAX, &n) == 0)
        return n > PGP_EXECUTOR_MAX_THREADS ? PGP_EXECUTOR_MAX_THREADS : (int)n;
    return 0;
}

long pgp_settings_cache_mb(void)
{
    long mb;
    if (pgp_parse_int(CPLGetConfigOption("PGP_CACHE_MB", NULL), 0, PGP_SETTINGS_MAX_CACHE_MB,
                      &mb) != 0)
        return PGP_SETTINGS_DEFAULT_CACHE_MB;
    return mb;
}
