/* pgp_driver.cpp — the PGP GDAL driver: a thin C++ shim over core/.
 *
 * Subclasses GDALDataset/GDALRasterBand (which only C++ can do) and forwards
 * full-resolution reads, block reads and statistics to the renderer. No
 * algorithm lives here.
 */
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <cmath>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "gdal_priv.h"
#include "ogr_spatialref.h"

// The pgp headers declare their C functions extern "C" themselves.
#include "pgp/cache.h"
#include "pgp/convolve.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/pixelfuncs.h"
#include "pgp/render.h"
#include "pgp/stats.h"

namespace {

constexpr const char *kOpenOptions =
    "<OpenOptionList>"
    "  <Option name='EXECUTOR' type='string' description='serial, threading, threading:N, "
    "multiprocessing or multiprocessing:N (a synonym of threading). Overrides PGP_EXECUTOR; "
    "default: threading:N when GDAL_NUM_THREADS is set, else serial'/>"
    "  <Option name='CACHE_MB' type='int' min='0' description='Budget of the process-wide tile "
    "cache in MB. Overrides PGP_CACHE_MB' default='256'/>"
    "  <Option name='PREFETCH' type='int' min='0' description='Tiles to compute ahead of a "
    "request in scan direction, 0 = off. Overrides PGP_PREFETCH; default: 2 x workers'/>"
    "</OpenOptionList>";

constexpr long kMaxCacheMB = 1L << 24; /* 16 TB: anything larger is a typo */
constexpr long kMaxPrefetch = 1L << 16;

/* Parses an integer option; reports which option (and its origin) is wrong. */
bool ParseCount(const char *value, const char *origin, long max, long *out)
{
    char *end = nullptr;
    errno = 0;
    const long v = value && *value ? std::strtol(value, &end, 10) : -1;
    if (!value || !*value || errno != 0 || *end != '\0' || v < 0 || v > max) {
        CPLError(CE_Failure, CPLE_IllegalArg,
                 "%s='%s' is not valid: expected an integer from 0 to %ld", origin,
                 value ? value : "", max);
        return false;
    }
    *out = v;
    return true;
}

/* An option from the open options, else the config option, with its origin. */
const char *OptionValue(GDALOpenInfo *info, const char *open_name, const char *config_name,
                        CPLString *origin)
{
    const char *value = CSLFetchNameValue(info->papszOpenOptions, open_name);
    if (value) {
        *origin = CPLString("open option ") + open_name;
        return value;
    }
    *origin = config_name;
    return CPLGetConfigOption(config_name, nullptr);
}

/* Skips what may precede the root element of an XML document. */
const char *SkipProlog(const char *text)
{
    if (STARTS_WITH(text, "\xEF\xBB\xBF"))
        text += 3;
    for (;;) {
        while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
            text++;
        const char *end = nullptr;
        if (STARTS_WITH(text, "<?"))
            end = strstr(text, "?>");
        else if (STARTS_WITH(text, "<!--"))
            end = strstr(text, "-->");
        if (end == nullptr)
            return text;
        text = end + (text[1] == '?' ? 2 : 3);
    }
}

bool IsRootElement(const char *text)
{
    text = SkipProlog(text);
    if (!STARTS_WITH(text, "<PGPDataset"))
        return false;
    const char next = text[strlen("<PGPDataset")];
    return next == '>' || next == '/' || next == ' ' || next == '\t' || next == '\r' ||
           next == '\n';
}

class PGPRasterBand;

class PGPDataset final : public GDALDataset
{
    friend class PGPRasterBand;

    pgp_graph *m_graph = nullptr;
    pgp_renderer *m_renderer = nullptr;
    OGRSpatialReference m_srs{};
    CPLString m_xml_path{};

  public:
    PGPDataset(pgp_graph *graph, pgp_executor *executor, int prefetch, const char *path);
    ~PGPDataset() override;

    static int Identify(GDALOpenInfo *info);
    static GDALDataset *Open(GDALOpenInfo *info);

    CPLErr GetGeoTransform(double *gt) override;
    const OGRSpatialReference *GetSpatialRef() const override;
    char **GetFileList() override;
    const char *GetMetadataItem(const char *name, const char *domain) override;

  protected:
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer, int buf_w,
                     int buf_h, GDALDataType buf_type, int band_count, int *band_map,
                     GSpacing pixel_space, GSpacing line_space, GSpacing band_space,
                     GDALRasterIOExtraArg *extra) override;
};

class PGPRasterBand final : public GDALRasterBand
{
    int m_node;

  public:
    PGPRasterBand(PGPDataset *ds, int band, const pgp_band_def &def);

    double GetNoDataValue(int *has_nodata) override;
    CPLErr ComputeStatistics(int approx_ok, double *min, double *max, double *mean,
                             double *std_dev, GDALProgressFunc progress,
                             void *progress_data) override;
    CPLErr ComputeRasterMinMax(int approx_ok, double *min_max) override;

  protected:
    CPLErr IReadBlock(int block_x, int block_y, void *image) override;
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer, int buf_w,
                     int buf_h, GDALDataType buf_type, GSpacing pixel_space,
                     GSpacing line_space, GDALRasterIOExtraArg *extra) override;

  private:
    pgp_renderer *Renderer() { return static_cast<PGPDataset *>(poDS)->m_renderer; }
    const pgp_node &Node() const
    {
        return static_cast<PGPDataset *>(poDS)->m_graph->nodes[m_node];
    }
};

CPLErr RefuseWrite()
{
    CPLError(CE_Failure, CPLE_NoWriteAccess, "PGP datasets are read-only");
    return CE_Failure;
}

/* ---- dataset ---------------------------------------------------------------- */

PGPDataset::PGPDataset(pgp_graph *graph, pgp_executor *executor, int prefetch,
                       const char *path)
    : m_graph(graph),
      m_renderer(pgp_renderer_new(graph, executor, pgp_tile_cache_global(), prefetch)),
      m_xml_path(path ? path : "")
{
    nRasterXSize = graph->x_size;
    nRasterYSize = graph->y_size;
    eAccess = GA_ReadOnly;
    if (graph->srs_wkt) {
        m_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        m_srs.importFromWkt(graph->srs_wkt);
    }
    for (int i = 0; i < graph->n_bands; i++)
        SetBand(i + 1, new PGPRasterBand(this, i + 1, graph->bands[i]));
}

PGPDataset::~PGPDataset()
{
    /* Bands may hold GDAL-cached blocks; drop them before the renderer goes. */
    FlushCache(true);
    pgp_renderer_free(m_renderer);
    pgp_graph_free(m_graph);
}

int PGPDataset::Identify(GDALOpenInfo *info)
{
    if (IsRootElement(info->pszFilename))
        return TRUE;
    return info->nHeaderBytes > 0 &&
           IsRootElement(reinterpret_cast<const char *>(info->pabyHeader));
}

GDALDataset *PGPDataset::Open(GDALOpenInfo *info)
{
    if (!Identify(info))
        return nullptr;
    if (info->eAccess == GA_Update) {
        RefuseWrite();
        return nullptr;
    }

    CPLString origin;
    int threads = pgp_executor_default_threads();
    const char *spec = OptionValue(info, "EXECUTOR", "PGP_EXECUTOR", &origin);
    char err[512];
    if (spec && pgp_executor_parse_spec(spec, origin, &threads, err, sizeof err) != 0) {
        CPLError(CE_Failure, CPLE_IllegalArg, "%s", err);
        return nullptr;
    }
    long cache_mb = 256, prefetch = 2L * threads;
    const char *value = OptionValue(info, "CACHE_MB", "PGP_CACHE_MB", &origin);
    if (value && !ParseCount(value, origin, kMaxCacheMB, &cache_mb))
        return nullptr;
    value = OptionValue(info, "PREFETCH", "PGP_PREFETCH", &origin);
    if (value && !ParseCount(value, origin, kMaxPrefetch, &prefetch))
        return nullptr;

    const bool from_text = IsRootElement(info->pszFilename);
    pgp_graph *graph = pgp_graph_open(from_text ? SkipProlog(info->pszFilename)
                                                : info->pszFilename);
    if (graph == nullptr)
        return nullptr;
    pgp_executor *executor = pgp_executor_get(threads);
    if (executor == nullptr) {
        pgp_graph_free(graph);
        return nullptr;
    }
    pgp_tile_cache_set_budget(pgp_tile_cache_global(), static_cast<size_t>(cache_mb) << 20);

    auto *ds = new PGPDataset(graph, executor, static_cast<int>(prefetch),
                              from_text ? nullptr : info->pszFilename);
    ds->SetDescription(info->pszFilename);
    ds->SetMetadataItem("EXECUTOR", threads ? CPLSPrintf("threading:%d", threads) : "serial",
                        "PGP");
    ds->SetMetadataItem("CACHE_MB", CPLSPrintf("%ld", cache_mb), "PGP");
    ds->SetMetadataItem("PREFETCH", CPLSPrintf("%ld", prefetch), "PGP");
    return ds;
}

CPLErr PGPDataset::GetGeoTransform(double *gt)
{
    memcpy(gt, m_graph->geotransform, 6 * sizeof(double));
    return m_graph->has_geotransform ? CE_None : CE_Failure;
}

const OGRSpatialReference *PGPDataset::GetSpatialRef() const
{
    return m_srs.IsEmpty() ? nullptr : &m_srs;
}

char **PGPDataset::GetFileList()
{
    char **files = m_xml_path.empty() ? nullptr : CSLAddString(nullptr, m_xml_path);
    for (char **source = m_graph->source_files; source && *source; source++)
        if (CSLFindString(files, *source) < 0)
            files = CSLAddString(files, *source);
    return files;
}

const char *PGPDataset::GetMetadataItem(const char *name, const char *domain)
{
    if (name && domain && EQUAL(domain, "PGP") && EQUAL(name, "TILES_COMPUTED"))
        return CPLSPrintf(CPL_FRMT_GUIB,
                          static_cast<GUIntBig>(pgp_renderer_tiles_computed(m_renderer)));
    return GDALDataset::GetMetadataItem(name, domain);
}

CPLErr PGPDataset::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer,
                             int buf_w, int buf_h, GDALDataType buf_type, int band_count,
                             int *band_map, GSpacing pixel_space, GSpacing line_space,
                             GSpacing band_space, GDALRasterIOExtraArg *extra)
{
    if (rw != GF_Read)
        return RefuseWrite();
    if (buf_w != w || buf_h != h)
        return GDALDataset::IRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                      band_count, band_map, pixel_space, line_space,
                                      band_space, extra);
    /* All bands' tiles in one batch: more parallelism, shared inputs stay hot. */
    std::vector<int> nodes(band_count);
    for (int i = 0; i < band_count; i++)
        nodes[i] = m_graph->bands[band_map[i] - 1].node;
    return pgp_renderer_read(m_renderer, band_count, nodes.data(), x, y, w, h, buffer, buf_type,
                             pixel_space, line_space, band_space,
                             extra ? extra->pfnProgress : nullptr,
                             extra ? extra->pProgressData : nullptr);
}

/* ---- band ------------------------------------------------------------------- */

PGPRasterBand::PGPRasterBand(PGPDataset *ds, int band, const pgp_band_def &def)
    : m_node(def.node)
{
    poDS = ds;
    nBand = band;
    eDataType = ds->m_graph->nodes[def.node].data_type;
    nBlockXSize = ds->m_graph->block_x;
    nBlockYSize = ds->m_graph->block_y;
    const pgp_node &node = Node();
    SetDescription(def.description && *def.description ? def.description : node.name);
    SetMetadataItem("PGP_NODE", node.name);
    if (node.kind == PGP_NODE_CALC)
        SetMetadataItem("PGP_EXPRESSION", node.expression);
    if (node.kind == PGP_NODE_CONVOLVE) {
        SetMetadataItem("PGP_INPUT", node.input);
        SetMetadataItem("PGP_KERNEL", CPLSPrintf("%dx%d", pgp_kernel_rows(node.kernel),
                                                 pgp_kernel_cols(node.kernel)));
    }
    if (node.signed_byte)
        SetMetadataItem("PIXELTYPE", "SIGNEDBYTE", "IMAGE_STRUCTURE");
}

double PGPRasterBand::GetNoDataValue(int *has_nodata)
{
    if (has_nodata)
        *has_nodata = Node().nodata.present;
    return Node().nodata.present ? Node().nodata.value : 0.0;
}

CPLErr PGPRasterBand::IReadBlock(int block_x, int block_y, void *image)
{
    const int x = block_x * nBlockXSize, y = block_y * nBlockYSize;
    const int w = std::min(nBlockXSize, nRasterXSize - x);
    const int h = std::min(nBlockYSize, nRasterYSize - y);
    const int type_size = GDALGetDataTypeSizeBytes(eDataType);
    if (w < nBlockXSize || h < nBlockYSize)
        memset(image, 0, static_cast<size_t>(nBlockXSize) * nBlockYSize * type_size);
    return pgp_renderer_read(Renderer(), 1, &m_node, x, y, w, h, image, eDataType, type_size,
                             static_cast<GSpacing>(type_size) * nBlockXSize, 0, nullptr,
                             nullptr);
}

CPLErr PGPRasterBand::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer,
                                int buf_w, int buf_h, GDALDataType buf_type,
                                GSpacing pixel_space, GSpacing line_space,
                                GDALRasterIOExtraArg *extra)
{
    if (rw != GF_Read)
        return RefuseWrite();
    if (buf_w != w || buf_h != h)
        return GDALRasterBand::IRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                         pixel_space, line_space, extra);
    return pgp_renderer_read(Renderer(), 1, &m_node, x, y, w, h, buffer, buf_type, pixel_space,
                             line_space, 0, extra ? extra->pfnProgress : nullptr,
                             extra ? extra->pProgressData : nullptr);
}

CPLErr PGPRasterBand::ComputeStatistics(int /*approx_ok: exact is always fine*/, double *min,
                                        double *max, double *mean, double *std_dev,
                                        GDALProgressFunc progress, void *progress_data)
{
    int has_nodata = FALSE;
    const double nodata = GetNoDataValue(&has_nodata);
    pgp_stats stats;
    if (pgp_stats_of_node(Renderer(), m_node, has_nodata ? &nodata : nullptr, &stats,
                          progress ? progress : GDALDummyProgress, progress_data) != CE_None)
        return CE_Failure;
    if (stats.valid == 0) {
        CPLError(CE_Failure, CPLE_AppDefined,
                 "Failed to compute statistics, no valid pixels found in band %d", nBand);
        return CE_Failure;
    }
    const double std = sqrt(stats.m2 / static_cast<double>(stats.valid));
    SetStatistics(stats.min, stats.max, stats.mean, std);
    SetMetadataItem("STATISTICS_VALID_PERCENT",
                    CPLSPrintf("%.4g", 100.0 * stats.valid / stats.total));
    if (min)
        *min = stats.min;
    if (max)
        *max = stats.max;
    if (mean)
        *mean = stats.mean;
    if (std_dev)
        *std_dev = std;
    return CE_None;
}

CPLErr PGPRasterBand::ComputeRasterMinMax(int approx_ok, double *min_max)
{
    double min = 0, max = 0;
    /* Min/max come out of the same tile summaries; the tiles are what costs. */
    const CPLErr err = ComputeStatistics(approx_ok, &min, &max, nullptr, nullptr, nullptr,
                                         nullptr);
    min_max[0] = min;
    min_max[1] = max;
    return err;
}

void UnloadDriver(GDALDriver *)
{
    pgp_executor_shutdown_all();
    pgp_tile_cache_shutdown_global();
}

} // namespace

/* The plugin is built with hidden visibility; only the entry points escape. */
#define PGP_EXPORT extern "C" __attribute__((visibility("default")))

PGP_EXPORT void GDALRegister_PGP()
{
    if (!GDAL_CHECK_VERSION("PGP driver"))
        return;
    if (GDALGetDriverByName("PGP") != nullptr)
        return;
    auto *driver = new GDALDriver();
    driver->SetDescription("PGP");
    driver->SetMetadataItem(GDAL_DCAP_RASTER, "YES");
    driver->SetMetadataItem(GDAL_DMD_LONGNAME,
                            "pgp: lazy, parallel geoprocessing graph (.pgp.vrt)");
    driver->SetMetadataItem(GDAL_DMD_HELPTOPIC, "docs/driver.md");
    driver->SetMetadataItem(GDAL_DMD_EXTENSIONS, "pgp.vrt");
    driver->SetMetadataItem(GDAL_DCAP_VIRTUALIO, "YES");
    driver->SetMetadataItem(GDAL_DMD_OPENOPTIONLIST, kOpenOptions);
    driver->pfnIdentify = PGPDataset::Identify;
    driver->pfnOpen = PGPDataset::Open;
    driver->pfnUnloadDriver = UnloadDriver;
    GetGDALDriverManager()->RegisterDriver(driver);
    pgp_register_pixel_functions();
    pgp_convolve_init();
}

PGP_EXPORT void GDALRegisterMe()
{
    GDALRegister_PGP();
}
