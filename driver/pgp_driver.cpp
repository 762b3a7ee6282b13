/* pgp_driver.cpp — the PGP GDAL driver: a thin C++ shim over core/.
 *
 * Subclasses GDALPamDataset/GDALPamRasterBand (which only C++ can do) and
 * forwards reads, block reads and statistics to a renderer per level: the full
 * resolution one, and one per overview (a dataset of its own, as GDAL expects
 * of overview bands). PAM keeps statistics and histograms in x.pgp.vrt.aux.xml,
 * stamped with a fingerprint of the graph and its files so that a stale sidecar
 * is never served. No algorithm lives here.
 */
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_string.h"
#include "gdal_pam.h"
#include "gdal_priv.h"
#include "ogr_spatialref.h"

// The pgp headers declare their C functions extern "C" themselves.
#include "pgp/cache.h"
#include "pgp/convolve.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/node.h"
#include "pgp/settings.h"
#include "pgp/pixelfuncs.h"
#include "pgp/render.h"
#include "pgp/stats.h"
#include "pgp/target.h"

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
    "  <Option name='OVERVIEWS' type='boolean' description='Expose overviews (the graph "
    "evaluated on coarser grids, factors 2, 4, 8, ...) for zoomed-out reads. Overrides "
    "PGP_OVERVIEWS' default='YES'/>"
    "</OpenOptionList>";

/* Overviews halve the grid until its long side is below this (gdaladdo's
 * default -minsize). */
constexpr int kOverviewMinSize = 256;

/* Reports a setting that pgp/settings.h rejected; no dataset. */
GDALDataset *Invalid(const char *err)
{
    CPLError(CE_Failure, CPLE_IllegalArg, "%s", err);
    return nullptr;
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

/* Metadata the driver derives from the graph (node names, expressions,
 * executor settings). Kept apart from PAM's so that it is never written into
 * the .aux.xml sidecar, yet served merged with PAM's items. */
class DerivedMetadata
{
    GDALMultiDomainMetadata m_items{};
    CPLStringList m_merged{};

  public:
    void Set(const char *name, const char *value, const char *domain = "")
    {
        m_items.SetMetadataItem(name, value, domain);
    }

    const char *Item(const char *name, const char *domain)
    {
        return m_items.GetMetadataItem(name, domain ? domain : "");
    }

    /* This object's items of domain, overridden by PAM's; valid until the next call. */
    char **Merge(const char *domain, char **pam)
    {
        char **own = m_items.GetMetadata(domain ? domain : "");
        if (own == nullptr)
            return pam;
        m_merged = CPLStringList(CSLDuplicate(own), TRUE);
        for (char **item = pam; item && *item; item++) {
            char *key = nullptr;
            const char *value = CPLParseNameValue(*item, &key);
            if (key)
                m_merged.SetNameValue(key, value);
            CPLFree(key);
        }
        return m_merged.List();
    }

    /* The union of this object's domains and PAM's (caller-owned list). */
    char **Domains(char **pam)
    {
        for (char **domain = m_items.GetDomainList(); domain && *domain; domain++)
            if (CSLFindString(pam, *domain) < 0)
                pam = CSLAddString(pam, *domain);
        return pam;
    }
};

/* path and, recursively, the files GDAL says its dataset is made of: a .vrt's
 * or .pgp.vrt's sources, a shapefile's .dbf. A graph's statistics depend on
 * them as much as on the file it names. A GeoTIFF is taken as the leaf it
 * nearly always is (opening it to list its .ovr would triple the cost of
 * opening a <Stitch> of thousands of bases). */
void AddFilesOf(const char *path, CPLStringList &files)
{
    if (files.FindString(path) >= 0)
        return;
    files.AddString(path);
    GDALDatasetH ds = nullptr;
    {
        /* Quiet and leaving no error behind: a .aux.xml or .dbf is no dataset. */
        CPLErrorStateBackuper keep_error_state;
        CPLErrorHandlerPusher quiet(CPLQuietErrorHandler);
        GDALDriverH driver = GDALIdentifyDriverEx(path, GDAL_OF_RASTER | GDAL_OF_VECTOR,
                                                  nullptr, nullptr);
        if (driver != nullptr && !EQUAL(GDALGetDescription(driver), "GTiff"))
            ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_VECTOR | GDAL_OF_INTERNAL, nullptr,
                            nullptr, nullptr);
    }
    if (ds == nullptr)
        return;
    char **list = GDALGetFileList(ds);
    GDALClose(ds);
    for (char **file = list; file && *file; file++)
        AddFilesOf(*file, files);
    CSLDestroy(list);
}

/* A fingerprint of the graph: its .pgp.vrt bytes and each file it reads, with
 * the files those are made of (path, size, modification time). FNV-1a, 64 bits:
 * a sidecar check, not a security measure. Empty when the .pgp.vrt cannot be read. */
CPLString GraphFingerprint(const char *xml_path, const pgp_graph *graph)
{
    GByte *text = nullptr;
    vsi_l_offset size = 0;
    if (!VSIIngestFile(nullptr, xml_path, &text, &size, 64 << 20))
        return CPLString();
    uint64_t hash = 14695981039346656037ULL;
    auto mix = [&hash](const void *data, size_t n) {
        for (size_t i = 0; i < n; i++)
            hash = (hash ^ static_cast<const GByte *>(data)[i]) * 1099511628211ULL;
    };
    mix(text, static_cast<size_t>(size));
    CPLFree(text);
    CPLStringList files;
    for (char **source = graph->source_files; source && *source; source++)
        AddFilesOf(*source, files);
    for (char **file = files.List(); file && *file; file++) {
        VSIStatBufL stat;
        GIntBig facts[2] = {-1, -1};
        if (VSIStatL(*file, &stat) == 0) {
            facts[0] = static_cast<GIntBig>(stat.st_size);
            facts[1] = static_cast<GIntBig>(stat.st_mtime);
        }
        mix(*file, strlen(*file) + 1);
        mix(facts, sizeof facts);
    }
    return CPLString().Printf("%016llx", static_cast<unsigned long long>(hash));
}

class PGPRasterBand;

/* The full-resolution dataset, or (m_parent set) one overview level of it. */
class PGPDataset final : public GDALPamDataset
{
    friend class PGPRasterBand;

    PGPDataset *m_parent = nullptr;
    pgp_graph *m_graph = nullptr; /* owned by the full-resolution dataset */
    pgp_renderer *m_renderer = nullptr;
    std::vector<std::unique_ptr<PGPDataset>> m_overviews{};
    OGRSpatialReference m_srs{};
    CPLString m_xml_path{};
    CPLString m_fingerprint{};
    bool m_stale_sidecar = false;
    bool m_resampling = false; /* inside Read's resample(): the window is computed */
    DerivedMetadata m_derived{};

    PGPDataset(PGPDataset *parent, pgp_renderer *overview, int x_size, int y_size);
    void AddBands();
    bool AddOverviews(pgp_executor *executor, int prefetch);
    void LoadSidecar();
    CPLErr Read(int n_nodes, const int *nodes, int x, int y, int w, int h, void *buffer,
                int buf_w, int buf_h, GDALDataType buf_type, GSpacing pixel_space,
                GSpacing line_space, GSpacing band_space, GDALRasterIOExtraArg *extra,
                const std::function<CPLErr(int *)> &overview,
                const std::function<CPLErr()> &resample);

  public:
    PGPDataset(pgp_graph *graph, pgp_executor *executor, int prefetch, const char *path);
    ~PGPDataset() override;

    bool IsFullResolution() const { return m_parent == nullptr; }
    pgp_renderer *Renderer() const { return m_renderer; }
    int NodeOfBand(int band) const { return m_graph->bands[band - 1].node; }

    static int Identify(GDALOpenInfo *info);
    static GDALDataset *Open(GDALOpenInfo *info);

    CPLErr GetGeoTransform(double *gt) override;
    const OGRSpatialReference *GetSpatialRef() const override;
    CPLErr SetGeoTransform(double *) override;
    CPLErr SetSpatialRef(const OGRSpatialReference *) override;
    using GDALPamDataset::SetGCPs;
    CPLErr SetGCPs(int, const GDAL_GCP *, const OGRSpatialReference *) override;
    char **GetFileList() override;
    const char *GetMetadataItem(const char *name, const char *domain) override;
    char **GetMetadata(const char *domain) override;
    char **GetMetadataDomainList() override;

  protected:
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer, int buf_w,
                     int buf_h, GDALDataType buf_type, int band_count, int *band_map,
                     GSpacing pixel_space, GSpacing line_space, GSpacing band_space,
                     GDALRasterIOExtraArg *extra) override;
    CPLErr XMLInit(CPLXMLNode *tree, const char *vrt_path) override;
    CPLXMLNode *SerializeToXML(const char *vrt_path) override;
    CPLErr IBuildOverviews(const char *, int, const int *, int, const int *, GDALProgressFunc,
                           void *, CSLConstList) override;
};

class PGPRasterBand final : public GDALPamRasterBand
{
    int m_node;
    DerivedMetadata m_derived{};

  public:
    PGPRasterBand(PGPDataset *ds, int band, const pgp_band_def &def);

    double GetNoDataValue(int *has_nodata) override;
    CPLErr SetNoDataValue(double) override;
    CPLErr SetNoDataValueAsInt64(int64_t) override;
    CPLErr SetNoDataValueAsUInt64(uint64_t) override;
    CPLErr DeleteNoDataValue() override;
    void SetDescription(const char *) override;
    int GetOverviewCount() override;
    GDALRasterBand *GetOverview(int i) override;
    CPLErr ComputeStatistics(int approx_ok, double *min, double *max, double *mean,
                             double *std_dev, GDALProgressFunc progress,
                             void *progress_data) override;
    CPLErr ComputeRasterMinMax(int approx_ok, double *min_max) override;
    const char *GetMetadataItem(const char *name, const char *domain) override;
    char **GetMetadata(const char *domain) override;
    char **GetMetadataDomainList() override;

  protected:
    CPLErr XMLInit(CPLXMLNode *tree, const char *vrt_path) override;
    CPLErr IReadBlock(int block_x, int block_y, void *image) override;
    CPLErr IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer, int buf_w,
                     int buf_h, GDALDataType buf_type, GSpacing pixel_space,
                     GSpacing line_space, GDALRasterIOExtraArg *extra) override;

  private:
    PGPDataset *Dataset() { return static_cast<PGPDataset *>(poDS); }
    pgp_renderer *Renderer() { return Dataset()->m_renderer; }
    const pgp_node &Node() { return Dataset()->m_graph->nodes[m_node]; }
    CPLErr ExactStatistics(double *min, double *max, double *mean, double *std_dev,
                           GDALProgressFunc progress, void *progress_data);
    CPLErr RefuseNoData();
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
    if (m_xml_path.empty())
        nPamFlags |= GPF_DISABLED; /* opened from XML text: no file to put a sidecar by */
    AddBands();
}

PGPDataset::PGPDataset(PGPDataset *parent, pgp_renderer *overview, int x_size, int y_size)
    : m_parent(parent), m_graph(parent->m_graph), m_renderer(overview)
{
    nRasterXSize = x_size;
    nRasterYSize = y_size;
    eAccess = GA_ReadOnly;
    nPamFlags |= GPF_DISABLED; /* statistics of overviews live on the parent's bands */
    AddBands();
}

void PGPDataset::AddBands()
{
    for (int i = 0; i < m_graph->n_bands; i++)
        SetBand(i + 1, new PGPRasterBand(this, i + 1, m_graph->bands[i]));
}

PGPDataset::~PGPDataset()
{
    /* Bands may hold GDAL-cached blocks; drop them before the renderer goes, and
     * write the sidecar while the graph (fingerprint, bands) is still here. */
    FlushCache(true);
    uint64_t reads = 0, microseconds = 0;
    if (m_renderer != nullptr)
        pgp_renderer_read_time(m_renderer, &reads, &microseconds);
    if (m_parent == nullptr && reads > 0) {
        /* Time in pgp's reads against the client's own: how far threads can take it. */
        CPLDebug("PGP",
                 "%s: " CPL_FRMT_GUIB " reads took %.3f s on the calling threads; " CPL_FRMT_GUIB
                 " tiles computed, " CPL_FRMT_GUIB " of them ahead of their reads",
                 GetDescription(), static_cast<GUIntBig>(reads), microseconds / 1e6,
                 static_cast<GUIntBig>(pgp_renderer_tiles_computed(m_renderer)),
                 static_cast<GUIntBig>(pgp_renderer_tiles_ahead(m_renderer)));
    }
    m_overviews.clear();
    pgp_renderer_free(m_renderer);
    if (m_parent == nullptr)
        pgp_graph_free(m_graph);
}

/* Levels 2, 4, 8, ... with GDAL's overview sizes (rounded up), until the long
 * side is below kOverviewMinSize. */
bool PGPDataset::AddOverviews(pgp_executor *executor, int prefetch)
{
    for (int factor = 2; std::max(nRasterXSize, nRasterYSize) / (factor / 2) > kOverviewMinSize;
         factor *= 2) {
        const int x_size = (nRasterXSize + factor - 1) / factor;
        const int y_size = (nRasterYSize + factor - 1) / factor;
        pgp_renderer *renderer = pgp_renderer_new_overview(
            m_graph, executor, pgp_tile_cache_global(), prefetch, x_size, y_size);
        if (renderer == nullptr)
            return false;
        m_overviews.emplace_back(new PGPDataset(this, renderer, x_size, y_size));
        if (factor > INT_MAX / 2)
            break;
    }
    return true;
}

/* PAM's sidecar, unless it was written for another graph (see XMLInit). */
void PGPDataset::LoadSidecar()
{
    m_fingerprint = GraphFingerprint(m_xml_path, m_graph);
    TryLoadXML();
    /* Loading is not a change, but a stale sidecar must be rewritten (or
     * removed) on close even if nothing new is computed. */
    if (m_stale_sidecar)
        MarkPamDirty();
    else
        nPamFlags &= ~GPF_DIRTY;
}

void RemoveChild(CPLXMLNode *parent, CPLXMLNode *child)
{
    if (child != nullptr && CPLRemoveXMLChild(parent, child)) /* detached: destroys it alone */
        CPLDestroyXMLNode(child);
}

/* What a stale sidecar holds that the pixels gave: each band's statistics and
 * histograms. What clients stored there themselves (metadata, scale, offset,
 * units, colour tables, categories) stays: it does not depend on the pixels. */
void DropComputedFromSidecar(CPLXMLNode *tree)
{
    for (CPLXMLNode *band = tree->psChild; band; band = band->psNext) {
        if (band->eType != CXT_Element || !EQUAL(band->pszValue, "PAMRasterBand"))
            continue;
        RemoveChild(band, CPLGetXMLNode(band, "Histograms"));
        for (CPLXMLNode *md = band->psChild; md; md = md->psNext) {
            if (md->eType != CXT_Element || !EQUAL(md->pszValue, "Metadata") ||
                *CPLGetXMLValue(md, "domain", "") != '\0')
                continue;
            for (CPLXMLNode *item = md->psChild, *next; item; item = next) {
                next = item->psNext;
                if (item->eType == CXT_Element &&
                    STARTS_WITH_CI(CPLGetXMLValue(item, "key", ""), "STATISTICS_"))
                    RemoveChild(md, item);
            }
        }
    }
}

CPLErr PGPDataset::XMLInit(CPLXMLNode *tree, const char *vrt_path)
{
    const char *stored = CPLGetXMLValue(tree, "PGPFingerprint", "");
    if (m_fingerprint.empty() || m_fingerprint != stored) {
        CPLDebug("PGP", "%s: dropping the statistics of %s: it was written for another "
                 "version of the graph or of its files", m_xml_path.c_str(), BuildPamFilename());
        m_stale_sidecar = true;
        DropComputedFromSidecar(tree);
    }
    return GDALPamDataset::XMLInit(tree, vrt_path);
}

CPLXMLNode *PGPDataset::SerializeToXML(const char *vrt_path)
{
    CPLXMLNode *tree = GDALPamDataset::SerializeToXML(vrt_path);
    if (tree != nullptr)
        CPLCreateXMLElementAndValue(tree, "PGPFingerprint", m_fingerprint);
    return tree;
}

/* gdaladdo would write a .ovr of pixels computed once, which nothing reads and
 * which goes stale with the graph: the levels are computed on demand instead. */
CPLErr PGPDataset::IBuildOverviews(const char *, int, const int *, int, const int *,
                                   GDALProgressFunc, void *, CSLConstList)
{
    CPLError(CE_Failure, CPLE_NotSupported,
             "PGP datasets compute their overview levels on demand (factors 2, 4, 8, ...; "
             "open option OVERVIEWS=NO turns them off): building overviews is not needed");
    return CE_Failure;
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
        CPLError(CE_Failure, CPLE_NoWriteAccess,
                 "PGP datasets are read-only: a graph changes by editing its .pgp.vrt "
                 "(metadata can go to its .aux.xml: gdal_edit.py -ro)");
        return nullptr;
    }

    CPLString origin;
    int threads;
    char err[512];
    const char *value = OptionValue(info, "EXECUTOR", "PGP_EXECUTOR", &origin);
    if (pgp_setting_executor(value, origin, &threads, err, sizeof err) != 0)
        return Invalid(err);
    long cache_mb = -1, prefetch = 2L * threads;
    int overviews = 1;
    value = OptionValue(info, "CACHE_MB", "PGP_CACHE_MB", &origin);
    if (value &&
        pgp_setting_count(value, origin, PGP_SETTINGS_MAX_CACHE_MB, &cache_mb, err, sizeof err))
        return Invalid(err);
    value = OptionValue(info, "PREFETCH", "PGP_PREFETCH", &origin);
    if (value &&
        pgp_setting_count(value, origin, PGP_SETTINGS_MAX_PREFETCH, &prefetch, err, sizeof err))
        return Invalid(err);
    value = OptionValue(info, "OVERVIEWS", "PGP_OVERVIEWS", &origin);
    if (value && pgp_setting_bool(value, origin, &overviews, err, sizeof err) != 0)
        return Invalid(err);

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
    /* The budget is process-wide and changes only when asked (docs/driver.md, Memory):
     * an open with neither CACHE_MB nor PGP_CACHE_MB keeps the one in force. */
    pgp_tile_cache *cache = pgp_tile_cache_global();
    if (cache_mb >= 0) {
        pgp_tile_cache_set_budget(cache, static_cast<size_t>(cache_mb) << 20);
        pgp_tile_cache_set_budget(pgp_block_cache_global(),
                                  (static_cast<size_t>(cache_mb) << 20) / PGP_BLOCK_CACHE_SHARE);
    }
    pgp_tile_cache_stats cache_stats;
    pgp_tile_cache_get_stats(cache, &cache_stats);

    std::unique_ptr<PGPDataset> ds(new PGPDataset(graph, executor, static_cast<int>(prefetch),
                                                  from_text ? nullptr : info->pszFilename));
    if (ds->m_renderer == nullptr) /* out of memory, reported */
        return nullptr;
    ds->SetDescription(info->pszFilename);
    if (overviews && !ds->AddOverviews(executor, static_cast<int>(prefetch)))
        return nullptr;
    DerivedMetadata &md = ds->m_derived;
    md.Set("EXECUTOR", threads ? CPLSPrintf("threading:%d", threads) : "serial", "PGP");
    md.Set("CACHE_MB", CPLSPrintf("%zu", cache_stats.budget_bytes >> 20), "PGP");
    md.Set("PREFETCH", CPLSPrintf("%ld", prefetch), "PGP");
    md.Set("OVERVIEWS", CPLSPrintf("%d", static_cast<int>(ds->m_overviews.size())), "PGP");
    if (!from_text)
        ds->LoadSidecar();
    return ds.release();
}

CPLErr PGPDataset::GetGeoTransform(double *gt)
{
    memcpy(gt, m_graph->geotransform, 6 * sizeof(double));
    if (m_parent != nullptr) { /* same extent, bigger pixels */
        const double sx = static_cast<double>(m_graph->x_size) / nRasterXSize;
        const double sy = static_cast<double>(m_graph->y_size) / nRasterYSize;
        gt[1] *= sx;
        gt[4] *= sx;
        gt[2] *= sy;
        gt[5] *= sy;
    }
    return m_graph->has_geotransform ? CE_None : CE_Failure;
}

const OGRSpatialReference *PGPDataset::GetSpatialRef() const
{
    const PGPDataset *root = m_parent ? m_parent : this;
    return root->m_srs.IsEmpty() ? nullptr : &root->m_srs;
}

/* PAM would keep these in the sidecar, where GetGeoTransform, GetSpatialRef and
 * GetNoDataValue (the graph's) never look: `gdal_edit.py -ro -a_ullr/-a_srs/-a_nodata`
 * would succeed and change nothing. */
CPLErr RefuseGraphProperty(const char *path, const char *what)
{
    CPLError(CE_Failure, CPLE_NotSupported,
             "%s: the %s of a PGP graph comes from its .pgp.vrt: edit the XML to change it",
             path, what);
    return CE_Failure;
}

CPLErr PGPDataset::SetGeoTransform(double *)
{
    return RefuseGraphProperty(GetDescription(), "geotransform");
}

CPLErr PGPDataset::SetSpatialRef(const OGRSpatialReference *)
{
    return RefuseGraphProperty(GetDescription(), "spatial reference");
}

CPLErr PGPDataset::SetGCPs(int, const GDAL_GCP *, const OGRSpatialReference *)
{
    return RefuseGraphProperty(GetDescription(), "georeferencing");
}

char **PGPDataset::GetFileList()
{
    if (m_xml_path.empty())
        return nullptr;
    char **files = GDALPamDataset::GetFileList(); /* the .pgp.vrt and its sidecar */
    for (char **source = m_graph->source_files; source && *source; source++)
        if (CSLFindString(files, *source) < 0)
            files = CSLAddString(files, *source);
    return files;
}

const char *PGPDataset::GetMetadataItem(const char *name, const char *domain)
{
    if (name && domain && EQUAL(domain, "PGP")) {
        /* Live counters, summed over the overview levels where asked. */
        uint64_t (*counter)(const pgp_renderer *) = nullptr;
        const bool overview = STARTS_WITH_CI(name, "OVERVIEW_");
        const char *what = overview ? name + strlen("OVERVIEW_") : name;
        if (EQUAL(what, "TILES_COMPUTED"))
            counter = pgp_renderer_tiles_computed;
        else if (EQUAL(what, "TILES_AHEAD"))
            counter = pgp_renderer_tiles_ahead;
        else if (EQUAL(what, "SOURCE_PIXELS_READ"))
            counter = pgp_renderer_source_pixels;
        else if (EQUAL(what, "SOURCE_BLOCKS_DECODED"))
            counter = pgp_renderer_blocks_decoded;
        if (counter != nullptr) {
            uint64_t total = overview ? 0 : counter(m_renderer);
            for (size_t i = 0; overview && i < m_overviews.size(); i++)
                total += counter(m_overviews[i]->m_renderer);
            return CPLSPrintf(CPL_FRMT_GUIB, static_cast<GUIntBig>(total));
        }
    }
    const char *derived = m_derived.Item(name, domain);
    return derived ? derived : GDALPamDataset::GetMetadataItem(name, domain);
}

char **PGPDataset::GetMetadata(const char *domain)
{
    return m_derived.Merge(domain, GDALPamDataset::GetMetadata(domain));
}

char **PGPDataset::GetMetadataDomainList()
{
    return m_derived.Domains(GDALPamDataset::GetMetadataDomainList());
}

/* The one read path of the dataset and its bands. At full resolution the
 * nodes' tiles are copied out of the tile cache. A resampled read takes the
 * best overview, else computes the window's tiles in parallel, once for all
 * the nodes, and leaves the resampling to GDAL (resample()); the band reads
 * that GDAL makes meanwhile find them computed and go straight to GDAL's
 * resampling (m_resampling). */
CPLErr PGPDataset::Read(int n_nodes, const int *nodes, int x, int y, int w, int h,
                        void *buffer, int buf_w, int buf_h, GDALDataType buf_type,
                        GSpacing pixel_space, GSpacing line_space, GSpacing band_space,
                        GDALRasterIOExtraArg *extra, const std::function<CPLErr(int *)> &overview,
                        const std::function<CPLErr()> &resample)
{
    if (buf_w == w && buf_h == h)
        return pgp_renderer_read(m_renderer, n_nodes, nodes, x, y, w, h, buffer, buf_type,
                                 pixel_space, line_space, band_space,
                                 extra ? extra->pfnProgress : nullptr,
                                 extra ? extra->pProgressData : nullptr);
    int tried = FALSE;
    if ((buf_w < w || buf_h < h) && !m_overviews.empty()) {
        const CPLErr err = overview(&tried);
        if (tried)
            return err;
    }
    if (pgp_renderer_compute(m_renderer, n_nodes, nodes, x, y, w, h, nullptr, nullptr) !=
        CE_None)
        return CE_Failure;
    m_resampling = true;
    const CPLErr err = resample();
    m_resampling = false;
    return err;
}

CPLErr PGPDataset::IRasterIO(GDALRWFlag rw, int x, int y, int w, int h, void *buffer,
                             int buf_w, int buf_h, GDALDataType buf_type, int band_count,
                             int *band_map, GSpacing pixel_space, GSpacing line_space,
                             GSpacing band_space, GDALRasterIOExtraArg *extra)
{
    if (rw != GF_Read)
        return RefuseWrite();
    /* All bands' tiles in one batch: more parallelism, shared inputs stay hot. */
    std::vector<int> nodes(band_count);
    for (int i = 0; i < band_count; i++)
        nodes[i] = m_graph->bands[band_map[i] - 1].node;
    return Read(
        band_count, nodes.data(), x, y, w, h, buffer, buf_w, buf_h, buf_type, pixel_space,
        line_space, band_space, extra,
        [&](int *tried) {
            return TryOverviewRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                       band_count, band_map, pixel_space, line_space,
                                       band_space, extra, tried);
        },
        [&] {
            return GDALPamDataset::IRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                             band_count, band_map, pixel_space, line_space,
                                             band_space, extra);
        });
}

/* ---- band ------------------------------------------------------------------- */

PGPRasterBand::PGPRasterBand(PGPDataset *ds, int band, const pgp_band_def &def)
    : m_node(def.node)
{
    poDS = ds;
    nBand = band;
    eDataType = ds->m_graph->nodes[def.node].data_type;
    nRasterXSize = ds->nRasterXSize;
    nRasterYSize = ds->nRasterYSize;
    nBlockXSize = ds->m_graph->block_x;
    nBlockYSize = ds->m_graph->block_y;
    const pgp_node &node = Node();
    /* GDALMajorObject's own: a description is not PAM state to be saved. */
    GDALMajorObject::SetDescription(def.description && *def.description ? def.description
                                                                         : node.name);
    m_derived.Set("PGP_NODE", node.name);
    if (node.def->metadata)
        node.def->metadata(
            &node,
            [](void *self, const char *key, const char *value) {
                static_cast<DerivedMetadata *>(self)->Set(key, value);
            },
            &m_derived);
    if (node.signed_byte)
        m_derived.Set("PIXELTYPE", "SIGNEDBYTE", "IMAGE_STRUCTURE");
}

double PGPRasterBand::GetNoDataValue(int *has_nodata)
{
    if (has_nodata)
        *has_nodata = Node().nodata.present;
    return Node().nodata.present ? Node().nodata.value : 0.0;
}

/* PAM sets the description from the sidecar, even to "" when it holds none (and
 * a stale one holds the old graph's); a band's is the graph's <Band description>. */
CPLErr PGPRasterBand::XMLInit(CPLXMLNode *tree, const char *vrt_path)
{
    const CPLString own = GetDescription();
    const CPLErr err = GDALPamRasterBand::XMLInit(tree, vrt_path);
    GDALMajorObject::SetDescription(own);
    return err;
}

void PGPRasterBand::SetDescription(const char *)
{
    RefuseGraphProperty(CPLSPrintf("%s band %d", poDS->GetDescription(), nBand),
                        "description (<Band description>)");
}

CPLErr PGPRasterBand::RefuseNoData()
{
    const std::string what = std::string("nodata (noData of ") + Node().where + ")";
    return RefuseGraphProperty(CPLSPrintf("%s band %d", poDS->GetDescription(), nBand),
                               what.c_str());
}

CPLErr PGPRasterBand::SetNoDataValue(double)
{
    return RefuseNoData();
}

CPLErr PGPRasterBand::SetNoDataValueAsInt64(int64_t)
{
    return RefuseNoData();
}

CPLErr PGPRasterBand::SetNoDataValueAsUInt64(uint64_t)
{
    return RefuseNoData();
}

CPLErr PGPRasterBand::DeleteNoDataValue()
{
    return RefuseNoData();
}

int PGPRasterBand::GetOverviewCount()
{
    return static_cast<int>(Dataset()->m_overviews.size());
}

GDALRasterBand *PGPRasterBand::GetOverview(int i)
{
    if (i < 0 || i >= GetOverviewCount())
        return nullptr;
    return Dataset()->m_overviews[i]->GetRasterBand(nBand);
}

const char *PGPRasterBand::GetMetadataItem(const char *name, const char *domain)
{
    const char *derived = m_derived.Item(name, domain);
    return derived ? derived : GDALPamRasterBand::GetMetadataItem(name, domain);
}

char **PGPRasterBand::GetMetadata(const char *domain)
{
    return m_derived.Merge(domain, GDALPamRasterBand::GetMetadata(domain));
}

char **PGPRasterBand::GetMetadataDomainList()
{
    return m_derived.Domains(GDALPamRasterBand::GetMetadataDomainList());
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
    auto resample = [&] {
        return GDALPamRasterBand::IRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                            pixel_space, line_space, extra);
    };
    if (Dataset()->m_resampling)
        return resample();
    return Dataset()->Read(
        1, &m_node, x, y, w, h, buffer, buf_w, buf_h, buf_type, pixel_space, line_space, 0,
        extra,
        [&](int *tried) {
            return TryOverviewRasterIO(rw, x, y, w, h, buffer, buf_w, buf_h, buf_type,
                                       pixel_space, line_space, extra, tried);
        },
        resample);
}

/* Statistics of every pixel of this level, the same for every executor. */
CPLErr PGPRasterBand::ExactStatistics(double *min, double *max, double *mean, double *std_dev,
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
    *std_dev = sqrt(stats.m2 / static_cast<double>(stats.valid));
    *min = stats.min;
    *max = stats.max;
    *mean = stats.mean;
    SetMetadataItem("STATISTICS_VALID_PERCENT",
                    CPLSPrintf("%.4g", 100.0 * stats.valid / stats.total));
    return CE_None;
}

/* Exact statistics over every full-resolution pixel; approximate ones (as GDAL
 * computes them for other drivers) over the overview GDAL would sample. */
CPLErr PGPRasterBand::ComputeStatistics(int approx_ok, double *min, double *max, double *mean,
                                        double *std_dev, GDALProgressFunc progress,
                                        void *progress_data)
{
    double values[4];
    GDALRasterBand *sample =
        approx_ok ? GetRasterSampleOverview(GDALSTAT_APPROX_NUMSAMPLES) : this;
    auto *level = sample == this ? this : dynamic_cast<PGPRasterBand *>(sample);
    if (level == nullptr ||
        level->ExactStatistics(&values[0], &values[1], &values[2], &values[3], progress,
                               progress_data) != CE_None)
        return CE_Failure;
    SetStatistics(values[0], values[1], values[2], values[3]);
    if (level != this)
        SetMetadataItem("STATISTICS_VALID_PERCENT",
                        level->GetMetadataItem("STATISTICS_VALID_PERCENT", ""));
    SetMetadataItem("STATISTICS_APPROXIMATE", level != this ? "YES" : nullptr);
    double *const outputs[4] = {min, max, mean, std_dev};
    for (int i = 0; i < 4; i++)
        if (outputs[i])
            *outputs[i] = values[i];
    return CE_None;
}

CPLErr PGPRasterBand::ComputeRasterMinMax(int approx_ok, double *min_max)
{
    /* Min/max come out of the same tile summaries; the tiles are what costs. */
    return ComputeStatistics(approx_ok, &min_max[0], &min_max[1], nullptr, nullptr, nullptr,
                             nullptr);
}

/* The driver answers process-wide counters in its PGP domain:
 * TILES_COMPUTED and OVERVIEW_TILES_COMPUTED over every dataset opened so far,
 * including those a client such as QGIS opens out of the caller's reach. */
class PGPDriver final : public GDALDriver
{
  public:
    const char *GetMetadataItem(const char *name, const char *domain) override
    {
        if (name && domain && EQUAL(domain, "PGP")) {
            uint64_t full = 0, overview = 0;
            pgp_render_process_totals(&full, &overview);
            if (EQUAL(name, "TILES_COMPUTED"))
                return CPLSPrintf(CPL_FRMT_GUIB, static_cast<GUIntBig>(full));
            if (EQUAL(name, "OVERVIEW_TILES_COMPUTED"))
                return CPLSPrintf(CPL_FRMT_GUIB, static_cast<GUIntBig>(overview));
        }
        return GDALDriver::GetMetadataItem(name, domain);
    }
};

void UnloadDriver(GDALDriver *)
{
    pgp_executor_shutdown_all();
    pgp_tile_cache_shutdown_global();
}

/* A graph's own files: the .pgp.vrt and its PAM sidecar. GDAL's default
 * Delete and Rename act on every file GetFileList names, the graph's sources
 * included: `gdalmanage delete`, or any driver's Create over an existing
 * .pgp.vrt (GDAL deletes what is there first), would delete the user's
 * rasters, and a copy would copy each source to the new name. GDAL's VRT
 * driver keeps its sources the same way. */
CPLErr ApplyToGraphFiles(const char *path, const char *what,
                         const std::function<int(const std::string &, const char *)> &apply)
{
    VSIStatBufL stat;
    if (VSIStatL(path, &stat) != 0 || VSI_ISDIR(stat.st_mode)) {
        CPLError(CE_Failure, CPLE_OpenFailed, "%s: not a .pgp.vrt file", path);
        return CE_Failure;
    }
    for (const char *suffix : {"", ".aux.xml"}) { /* apply(file, suffix): path + suffix */
        const std::string file = std::string(path) + suffix;
        if (*suffix && VSIStatL(file.c_str(), &stat) != 0)
            continue;
        if (apply(file, suffix) != 0) {
            CPLError(CE_Failure, CPLE_FileIO, "%s: cannot %s: %s", file.c_str(), what,
                     VSIStrerror(errno));
            return CE_Failure;
        }
    }
    return CE_None;
}

CPLErr DeleteGraph(const char *path)
{
    return ApplyToGraphFiles(path, "delete", [](const std::string &file, const char *) {
        return VSIUnlink(file.c_str());
    });
}

CPLErr RenameGraph(const char *new_path, const char *old_path)
{
    return ApplyToGraphFiles(old_path, "rename", [&](const std::string &file, const char *suffix) {
        return VSIRename(file.c_str(), (std::string(new_path) + suffix).c_str());
    });
}

CPLErr CopyGraph(const char *new_path, const char *old_path)
{
    return ApplyToGraphFiles(old_path, "copy", [&](const std::string &file, const char *suffix) {
        return CPLCopyFile((std::string(new_path) + suffix).c_str(), file.c_str());
    });
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
    auto *driver = new PGPDriver();
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
    driver->pfnDelete = DeleteGraph;
    driver->pfnRename = RenameGraph;
    driver->pfnCopyFiles = CopyGraph;
    GetGDALDriverManager()->RegisterDriver(driver);
    pgp_register_pixel_functions();
    pgp_convolve_init();
}

PGP_EXPORT void GDALRegisterMe()
{
    GDALRegister_PGP();
}

/* pgp.render's direct path (pgp/target.h): computes bands[0..n_bands) (1-based)
 * of an open PGP dataset on its own executor and writes them into target.
 * Python reaches it with ctypes; 0, or -1 after CPLError. */
PGP_EXPORT int pgp_render_into(GDALDatasetH graph, int n_bands, const int *bands,
                               pgp_target *target, GDALProgressFunc progress, void *progress_arg)
{
    auto *dataset = dynamic_cast<PGPDataset *>(GDALDataset::FromHandle(graph));
    if (dataset == nullptr || !dataset->IsFullResolution()) {
        CPLError(CE_Failure, CPLE_IllegalArg, "%s is not an open .pgp.vrt graph",
                 graph ? GDALGetDescription(graph) : "(null)");
        return -1;
    }
    std::vector<int> nodes(n_bands);
    for (int i = 0; i < n_bands; i++) {
        if (bands[i] < 1 || bands[i] > dataset->GetRasterCount()) {
            CPLError(CE_Failure, CPLE_IllegalArg, "%s has no band %d", dataset->GetDescription(),
                     bands[i]);
            return -1;
        }
        nodes[i] = dataset->NodeOfBand(bands[i]);
    }
    return pgp_target_render(target, dataset->Renderer(), nodes.data(), progress,
                             progress_arg) == CE_None
               ? 0
               : -1;
}
