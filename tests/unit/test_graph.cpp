// test_graph.cpp — parsing, name resolution, cycles, grids and every error class.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpl_conv.h"
#include "cpl_error.h"
#include "cpl_vsi.h"
#include "raster_fixture.h"

extern "C" {
#include "pgp/graph.h"
}

namespace {

class GraphTest : public ::testing::Test
{
  protected:
    void SetUp() override
    {
        const std::vector<double> ones(20 * 10, 1.0);
        pgp_test::WriteRaster("/vsimem/g/a.tif", 20, 10, GDT_Int16, ones, true, -1);
        pgp_test::WriteRaster("/vsimem/g/b.tif", 20, 10, GDT_Float32, ones);
        pgp_test::WriteRaster("/vsimem/g/small.tif", 19, 10, GDT_Float32, ones);
        pgp_test::WriteRaster("/vsimem/g/shifted.tif", 20, 10, GDT_Float32, ones, false, 0,
                              1015);
    }
    void TearDown() override { VSIRmdirRecursive("/vsimem/g"); }

    // Opening xml fails and the message contains every one of parts.
    static void ExpectError(const std::string &xml, const std::vector<std::string> &parts)
    {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        pgp_graph *graph = pgp_graph_open(xml.c_str());
        CPLPopErrorHandler();
        ASSERT_EQ(graph, nullptr) << xml;
        EXPECT_EQ(CPLGetLastErrorType(), CE_Failure);
        const std::string message = CPLGetLastErrorMsg();
        for (const auto &part : parts)
            EXPECT_NE(message.find(part), std::string::npos)
                << "message: " << message << "\nexpected to contain: " << part;
    }
};

const std::string kSources = "<Source name='a' file='/vsimem/g/a.tif'/>"
                             "<Source name='b' file='/vsimem/g/b.tif'/>";

std::string Doc(const std::string &body, const std::string &root_attributes = "")
{
    return "<PGPDataset" + root_attributes + ">" + body + "</PGPDataset>";
}

TEST_F(GraphTest, ParsesSourcesCalcsAndBandsInAnyOrder)
{
    // 'c' is read by 'd' before it is declared: names resolve in any order.
    const std::string xml = Doc("<Band ref='d' description='out'/>" + kSources +
                                "<Calc name='d' dataType='Int32' noData='-5'>"
                                "<Expression>c * 2</Expression></Calc>"
                                "<Calc name='c' noData='-1'><Expression>a + b</Expression></Calc>"
                                "<Band ref='a'/>",
                                " blockXSize='8' blockYSize='4'");
    pgp_graph *g = pgp_graph_open(xml.c_str());
    ASSERT_NE(g, nullptr) << CPLGetLastErrorMsg();
    EXPECT_EQ(g->x_size, 20);
    EXPECT_EQ(g->y_size, 10);
    EXPECT_EQ(g->block_x, 8);
    EXPECT_EQ(g->block_y, 4);
    EXPECT_EQ(g->geotransform[0], 1000);
    EXPECT_EQ(g->geotransform[5], -30);
    ASSERT_EQ(g->n_nodes, 4);
    ASSERT_EQ(g->n_bands, 2);
    const int d = pgp_graph_find(g, "d"), c = pgp_graph_find(g, "c");
    EXPECT_EQ(g->bands[0].node, d);
    EXPECT_STREQ(g->bands[0].description, "out");
    EXPECT_EQ(g->bands[1].node, pgp_graph_find(g, "a"));
    EXPECT_EQ(g->nodes[d].data_type, GDT_Int32);
    EXPECT_TRUE(g->nodes[d].nodata.present);
    EXPECT_TRUE(g->nodes[d].nodata.exact);
    EXPECT_EQ(g->nodes[d].nodata.value, -5);
    ASSERT_EQ(g->nodes[d].n_inputs, 1);
    EXPECT_EQ(g->nodes[d].input_nodes[0], c);
    EXPECT_EQ(g->nodes[c].n_inputs, 2);
    EXPECT_EQ(g->nodes[c].data_type, GDT_Float64);
    const pgp_node &a = g->nodes[pgp_graph_find(g, "a")];
    EXPECT_EQ(a.data_type, GDT_Int16);
    EXPECT_TRUE(a.nodata.present && a.nodata.exact);
    EXPECT_EQ(a.nodata.value, -1);
    EXPECT_FALSE(g->nodes[pgp_graph_find(g, "b")].nodata.present);
    pgp_graph_free(g);
}

TEST_F(GraphTest, BlocksAreClampedToTheRaster)
{
    pgp_graph *g = pgp_graph_open(Doc(kSources + "<Band ref='b'/>").c_str());
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->block_x, 20); // default 256, raster is 20x10
    EXPECT_EQ(g->block_y, 10);
    pgp_graph_free(g);
}

TEST_F(GraphTest, RelativePathsResolveAgainstTheDocument)
{
    const std::string xml = Doc("<Source name='a' file='a.tif'/><Band ref='a'/>");
    VSILFILE *f = VSIFOpenL("/vsimem/g/doc.pgp.vrt", "wb");
    VSIFWriteL(xml.data(), 1, xml.size(), f);
    VSIFCloseL(f);
    pgp_graph *g = pgp_graph_open("/vsimem/g/doc.pgp.vrt");
    ASSERT_NE(g, nullptr) << CPLGetLastErrorMsg();
    EXPECT_STREQ(g->nodes[0].path, "/vsimem/g/a.tif");
    pgp_graph_free(g);
}

TEST_F(GraphTest, SourceNoDataAttributeOverridesTheBand)
{
    pgp_graph *g = pgp_graph_open(
        Doc("<Source name='b' file='/vsimem/g/b.tif' noData='nan'/><Band ref='b'/>").c_str());
    ASSERT_NE(g, nullptr) << CPLGetLastErrorMsg();
    EXPECT_TRUE(g->nodes[0].nodata.present);
    EXPECT_FALSE(g->nodes[0].nodata.exact);
    EXPECT_TRUE(CPLIsNan(g->nodes[0].nodata.value));
    pgp_graph_free(g);
}

TEST_F(GraphTest, MalformedXml)
{
    ExpectError("<PGPDataset><Source name='a'", {"malformed XML"});
}

TEST_F(GraphTest, WrongRoot) { ExpectError("<VRTDataset/>", {"root element", "PGPDataset"}); }

TEST_F(GraphTest, MissingFile)
{
    ExpectError(Doc("<Source name='m' file='/vsimem/g/missing.tif'/><Band ref='m'/>"),
                {"<Source name='m'>", "cannot open", "missing.tif"});
}

TEST_F(GraphTest, BandZeroAndBandBeyondCount)
{
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif' band='0'/><Band ref='a'/>"),
                {"<Source name='a'>", "band '0'"});
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif' band='2'/><Band ref='a'/>"),
                {"<Source name='a'>", "band 2 does not exist", "has 1 band"});
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif' band='x'/><Band ref='a'/>"),
                {"band 'x'"});
}

TEST_F(GraphTest, UnknownNameInExpression)
{
    ExpectError(Doc(kSources + "<Calc name='c' noData='0'><Expression>a + zz</Expression></Calc>"
                               "<Band ref='c'/>"),
                {"<Calc name='c'>", "column 5", "zz"});
}

TEST_F(GraphTest, UnknownBandRef)
{
    ExpectError(Doc(kSources + "<Band ref='nope'/>"), {"<Band> #1", "'nope'"});
    ExpectError(Doc(kSources + "<Band/>"), {"<Band> #1", "missing attribute 'ref'"});
}

TEST_F(GraphTest, NoBandsNoSources)
{
    ExpectError(Doc(kSources), {"no <Band"});
    ExpectError(Doc("<Calc name='c'><Expression>1</Expression></Calc><Band ref='c'/>"),
                {"no <Source>"});
}

TEST_F(GraphTest, Cycle)
{
    ExpectError(Doc(kSources +
                    "<Calc name='x'><Expression>y + b</Expression></Calc>"
                    "<Calc name='y'><Expression>z * 2</Expression></Calc>"
                    "<Calc name='z'><Expression>x - 1</Expression></Calc><Band ref='x'/>"),
                {"cycle", "x -> y -> z -> x"});
}

TEST_F(GraphTest, SelfReference)
{
    ExpectError(Doc(kSources + "<Calc name='s'><Expression>s + b</Expression></Calc>"
                               "<Band ref='s'/>"),
                {"<Calc name='s'>", "cycle", "s -> s"});
}

TEST_F(GraphTest, DuplicateName)
{
    ExpectError(Doc(kSources + "<Calc name='a'><Expression>b</Expression></Calc><Band ref='a'/>"),
                {"<Calc name='a'>", "duplicate name"});
}

TEST_F(GraphTest, BadExpressionNamesTheColumn)
{
    ExpectError(Doc(kSources + "<Calc name='c'><Expression>b + * b</Expression></Calc>"
                               "<Band ref='c'/>"),
                {"<Calc name='c'>", "'b + * b' at column 5"});
}

TEST_F(GraphTest, WrongArity)
{
    ExpectError(Doc(kSources + "<Calc name='c'><Expression>atan2(b)</Expression></Calc>"
                               "<Band ref='c'/>"),
                {"<Calc name='c'>", "atan2", "2"});
}

TEST_F(GraphTest, BadDataType)
{
    ExpectError(Doc(kSources + "<Calc name='c' dataType='Float128'><Expression>b</Expression>"
                               "</Calc><Band ref='c'/>"),
                {"<Calc name='c'>", "dataType 'Float128'"});
    ExpectError(Doc(kSources + "<Calc name='c' dataType='CFloat32'><Expression>b</Expression>"
                               "</Calc><Band ref='c'/>"),
                {"dataType 'CFloat32'"});
}

TEST_F(GraphTest, MismatchedSizesNameBothSources)
{
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif'/>"
                    "<Source name='s' file='/vsimem/g/small.tif'/><Band ref='s'/>"),
                {"<Source name='s'>", "19x10", "<Source name='a'>", "20x10", "<Align>"});
}

TEST_F(GraphTest, MismatchedGeotransformsNameBothSources)
{
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif'/>"
                    "<Source name='t' file='/vsimem/g/shifted.tif'/><Band ref='t'/>"),
                {"<Source name='t'>", "geotransform", "1015", "<Source name='a'>", "<Align>"});
}

TEST_F(GraphTest, AbsurdBlockSizes)
{
    const std::string body = kSources + "<Band ref='a'/>";
    ExpectError(Doc(body, " blockXSize='0'"), {"blockXSize '0'"});
    ExpectError(Doc(body, " blockYSize='1000000'"), {"blockYSize '1000000'"});
    ExpectError(Doc(body, " blockXSize='abc'"), {"blockXSize 'abc'"});
    ExpectError(Doc(body, " blockXSize='8192' blockYSize='8192'"), {"exceeds the limit"});
}

TEST_F(GraphTest, UnknownElementsAndAttributes)
{
    ExpectError(Doc(kSources + "<Sauce name='q'/><Band ref='a'/>"),
                {"<Sauce name='q'>", "unknown element"});
    ExpectError(Doc("<Source name='a' file='/vsimem/g/a.tif' nodata='3'/><Band ref='a'/>"),
                {"<Source name='a'>", "unknown attribute 'nodata'"});
    ExpectError(Doc(kSources + "<Band ref='a'/>", " blockSize='3'"),
                {"<PGPDataset>", "unknown attribute 'blockSize'"});
    ExpectError(Doc(kSources + "<Calc name='c'><Expression>b</Expression><Foo/></Calc>"
                               "<Band ref='c'/>"),
                {"<Calc name='c'>", "<Foo>"});
}

TEST_F(GraphTest, BadNames)
{
    ExpectError(Doc("<Source file='/vsimem/g/a.tif'/><Band ref='a'/>"),
                {"<Source>", "missing attribute 'name'"});
    ExpectError(Doc("<Source name='1a' file='/vsimem/g/a.tif'/><Band ref='a'/>"),
                {"<Source name='1a'>", "identifier"});
}

TEST_F(GraphTest, PropagateNeedsANoData)
{
    // 'a' has nodata -1; the Calc declares none.
    ExpectError(Doc(kSources + "<Calc name='c'><Expression>a + 1</Expression></Calc>"
                               "<Band ref='c'/>"),
                {"<Calc name='c'>", "input 'a' has nodata", "noData"});
    // With noDataPolicy='expression' it is accepted.
    pgp_graph *g = pgp_graph_open(
        Doc(kSources + "<Calc name='c' noDataPolicy='expression'><Expression>a + 1</Expression>"
                       "</Calc><Band ref='c'/>")
            .c_str());
    EXPECT_NE(g, nullptr) << CPLGetLastErrorMsg();
    pgp_graph_free(g);
}

TEST_F(GraphTest, BadNoDataAndPolicy)
{
    ExpectError(Doc(kSources + "<Calc name='c' dataType='Byte' noData='-1'><Expression>b"
                               "</Expression></Calc><Band ref='c'/>"),
                {"<Calc name='c'>", "noData -1 cannot be represented in Byte"});
    ExpectError(Doc(kSources + "<Calc name='c' noData='x1'><Expression>b</Expression></Calc>"
                               "<Band ref='c'/>"),
                {"noData 'x1' is not a number"});
    ExpectError(Doc(kSources + "<Calc name='c' noDataPolicy='ignore'><Expression>b"
                               "</Expression></Calc><Band ref='c'/>"),
                {"noDataPolicy 'ignore'"});
    ExpectError(Doc(kSources + "<Calc name='c'><Expression>  </Expression></Calc><Band ref='c'/>"),
                {"<Calc name='c'>", "empty <Expression>"});
}

TEST_F(GraphTest, NextValidOpenWorksAfterErrors)
{
    ExpectError(Doc("<Source name='m' file='/vsimem/g/missing.tif'/><Band ref='m'/>"),
                {"cannot open"});
    pgp_graph *g = pgp_graph_open(Doc(kSources + "<Band ref='b'/>").c_str());
    EXPECT_NE(g, nullptr);
    pgp_graph_free(g);
}

} // namespace
