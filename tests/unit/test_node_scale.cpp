// test_node_scale.cpp — a newcomer's node kind, <Scale input="..." factor="..."/>
// (its input times a factor), written against pgp/node.h alone and added with
// one table row (pgp_node_kind_register): parsed, linked, scheduled, nested
// under a Calc and read at any window like the built-in kinds.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_vsi.h"
#include "raster_fixture.h"

extern "C" {
#include "pgp/alloc.h"
#include "pgp/cache.h"
#include "pgp/executor.h"
#include "pgp/graph.h"
#include "pgp/node.h"
#include "pgp/render.h"
}

namespace {

// ---- the kind: the only code a new node kind needs ----

struct Scale {
    char *input;
    double factor;
};

int ParseScale(pgp_graph *, const CPLXMLNode *element, const char *, pgp_node *node)
{
    static const char *const attributes[] = {"name", "input", "factor", nullptr};
    const char *input = CPLGetXMLValue(element, "input", nullptr);
    const char *factor = CPLGetXMLValue(element, "factor", "");
    auto *scale = static_cast<Scale *>(pgp_calloc(1, sizeof(Scale)));
    node->state = scale;
    node->data_type = GDT_Float64;
    if (scale == nullptr || pgp_graph_check_attributes(element, node->where, attributes) != 0)
        return -1;
    if (input == nullptr || pgp_graph_parse_double(factor, &scale->factor) != 0) {
        pgp_graph_report(node->where, "needs input and a numeric factor");
        return -1;
    }
    scale->input = pgp_strdup(input);
    return scale->input != nullptr ? 0 : -1;
}

int LinkScale(pgp_graph *graph, pgp_node *node, const pgp_expr_var *)
{
    return pgp_graph_link_one(graph, node, static_cast<Scale *>(node->state)->input);
}

double ScaleScratch(const pgp_graph *graph, const pgp_node *)
{
    return static_cast<double>(graph->block_x) * graph->block_y * sizeof(double);
}

void *ComputeScale(pgp_job *job, int node, const pgp_rect *t, int depth)
{
    const pgp_node *n = &pgp_job_graph(job)->nodes[node];
    const size_t count = static_cast<size_t>(t->w) * t->h;
    auto *values = static_cast<double *>(pgp_job_scratch(job, depth, count * sizeof(double)));
    if (values == nullptr || pgp_job_read(job, n->input_nodes[0], t, depth + 1, values, t->w))
        return nullptr;
    for (size_t i = 0; i < count; i++)
        values[i] *= static_cast<Scale *>(n->state)->factor;
    return pgp_job_tile(job, node, values, count);
}

void ScaleMetadata(const pgp_node *node, void (*set)(void *, const char *, const char *),
                   void *arg)
{
    set(arg, "PGP_INPUT", static_cast<Scale *>(node->state)->input);
}

void FreeScale(pgp_node *node)
{
    auto *scale = static_cast<Scale *>(node->state);
    if (scale != nullptr)
        pgp_free(scale->input);
    pgp_free(scale);
}

const pgp_node_kind_def kScaleKind = {"Scale",      ParseScale,    LinkScale, ScaleScratch,
                                      ComputeScale, ScaleMetadata, FreeScale, nullptr};

// ---- its tests ----

constexpr int kW = 45, kH = 37;

class ScaleKindTest : public ::testing::Test
{
  protected:
    static void SetUpTestSuite()
    {
        if (pgp_node_kind_find("Scale") == nullptr) {
            ASSERT_EQ(pgp_node_kind_register(&kScaleKind), 0); // the one table row
        }
    }
    void SetUp() override
    {
        a_ = pgp_test::Field(kW * kH, 100.0, 3);
        pgp_test::WriteRaster("/vsimem/scale/a.tif", kW, kH, GDT_Float64, a_);
    }
    void TearDown() override { VSIRmdirRecursive("/vsimem/scale"); }

    // Reads band node of xml with threads workers; blocks of 8x4 so windows
    // span tiles.
    std::vector<double> Read(const std::string &body, const char *band, int threads)
    {
        pgp_graph *graph = pgp_graph_open(
            ("<PGPDataset blockXSize='8' blockYSize='4'>"
             "<Source name='a' file='/vsimem/scale/a.tif'/>" +
             body + "<Band ref='" + band + "'/></PGPDataset>")
                .c_str());
        EXPECT_NE(graph, nullptr) << CPLGetLastErrorMsg();
        if (graph == nullptr)
            return {};
        pgp_tile_cache *cache = pgp_tile_cache_new(16 << 20);
        pgp_renderer *r = pgp_renderer_new(graph, pgp_executor_get(threads), cache, 0);
        int node = pgp_graph_find(graph, band);
        std::vector<double> out(kW * kH, -1);
        EXPECT_EQ(pgp_renderer_read(r, 1, &node, 0, 0, kW, kH, out.data(), GDT_Float64, 8,
                                    8 * kW, 0, nullptr, nullptr),
                  CE_None)
            << CPLGetLastErrorMsg();
        pgp_renderer_free(r);
        pgp_tile_cache_free(cache);
        pgp_graph_free(graph);
        return out;
    }

    std::vector<double> a_;
};

TEST_F(ScaleKindTest, MultipliesItsInputOnEveryExecutor)
{
    for (int threads : {0, 3}) {
        const auto out = Read("<Scale name='s' input='a' factor='2.5'/>", "s", threads);
        ASSERT_EQ(out.size(), a_.size());
        for (size_t i = 0; i < a_.size(); i++)
            ASSERT_EQ(out[i], a_[i] * 2.5) << i;
    }
}

TEST_F(ScaleKindTest, NestsWithBuiltInKinds)
{
    // A Scale of a Calc, read by a Calc: linking, nesting depth and scratch.
    const auto out = Read("<Calc name='c'><Expression>a + 1</Expression></Calc>"
                          "<Scale name='s' input='c' factor='-3'/>"
                          "<Calc name='d'><Expression>s * 2</Expression></Calc>",
                          "d", 2);
    ASSERT_EQ(out.size(), a_.size());
    for (size_t i = 0; i < a_.size(); i++)
        ASSERT_EQ(out[i], (a_[i] + 1) * -3 * 2) << i;
}

TEST_F(ScaleKindTest, ErrorsNameTheElement)
{
    CPLPushErrorHandler(CPLQuietErrorHandler);
    pgp_graph *graph = pgp_graph_open("<PGPDataset><Source name='a' file='/vsimem/scale/a.tif'/>"
                                      "<Scale name='s' input='nowhere' factor='2'/>"
                                      "<Band ref='s'/></PGPDataset>");
    CPLPopErrorHandler();
    EXPECT_EQ(graph, nullptr);
    EXPECT_NE(std::string(CPLGetLastErrorMsg()).find("<Scale name='s'>: input 'nowhere'"),
              std::string::npos)
        << CPLGetLastErrorMsg();
}

} // namespace
