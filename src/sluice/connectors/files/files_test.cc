#include "sluice/connectors/files/files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

void WriteText(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Columns named in alphabetical order: a `schema` option is a mapping, read back sorted.
SchemaPtr AllTypes() {
  return MakeSchema({{"a_bool", TypeId::kBool},
                     {"b_int", TypeId::kInt64},
                     {"c_float", TypeId::kFloat64},
                     {"d_string", TypeId::kString},
                     {"e_bytes", TypeId::kBytes},
                     {"f_time", TypeId::kTimestamp},
                     {"g_geom", TypeId::kGeometry},
                     {"h_json", TypeId::kJson}});
}

nlohmann::json AllTypesOption() {
  return {{"a_bool", "bool"},     {"b_int", "int64"},   {"c_float", "float64"},
          {"d_string", "string"}, {"e_bytes", "bytes"}, {"f_time", "timestamp"},
          {"g_geom", "geometry"}, {"h_json", "json"}};
}

BatchPtr AllTypesBatch() {
  auto b =
      BatchFromJson(AllTypes(),
                    R"([[true,-42,1.5,"multi\nline, \"quoted\"","00ff","2024-05-01T12:00:00.25Z",
          "0101000020e6100000000000000000f03f0000000000000040",{"a":[1,2.5]}],
          [false,9223372036854775807,3.0,"","","1969-12-31T23:59:59.999999Z","01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f",[]],
          [null,-9223372036854775808,1e-300,"日本 ok","ff","9999-12-31T00:00:00Z",null,"str"],
          [null,null,null,null,null,null,null,null]])");
  EXPECT_THAT(b, IsOk());
  return *b;
}

// Returns a batch with one int64 column "i" holding [from, to).
BatchPtr Ints(int64_t from, int64_t to) {
  ColumnBuilder b(TypeId::kInt64);
  for (int64_t i = from; i < to; ++i) b.AppendInt64(i);
  return Batch::MakeUnchecked(MakeSchema({{"i", TypeId::kInt64}}), {b.Finish()}, to - from);
}

std::string RowsOf(const std::vector<BatchPtr>& batches) {
  if (batches.empty()) return "[]";
  auto all = Concatenate(batches);
  return all.ok() ? (*all)->ToString() : all.status().ToString();
}

// Options as the config loader would pass them (with a plain, key-sorted JSON object).
NodeOptions TestOptions(const std::string& id, const nlohmann::json& values) {
  return NodeOptions::ForTest(id, values);
}

// An AckSet for batch `seq` of `queue`, as the engine makes them.
AckSet MakeAcks(const std::shared_ptr<AckQueue>& queue, uint64_t seq) {
  return AckSet(std::make_shared<AckHandle>(queue, seq));
}

std::vector<AckQueue::Event> Events(const std::shared_ptr<AckQueue>& queue) {
  std::vector<AckQueue::Event> out;
  queue->Drain(&out, /*max_wait_ms=*/0);
  return out;
}

MATCHER_P2(AckEvent, seq, delivered, "") { return arg.seq == seq && arg.delivered == delivered; }

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::path(::testing::TempDir()) / fmt::format("sluice_files_{}_{}", info->name(), getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string P(const std::string& rel) const { return (dir_ / rel).string(); }

  NodeContext* Context(const std::string& id) {
    contexts_.push_back(std::make_unique<NodeContext>(id, "file", &stats_, &cancelled_, false));
    return contexts_.back().get();
  }

  Result<std::unique_ptr<Source>> OpenSource(const nlohmann::json& options) {
    SLUICE_ASSIGN_OR_RETURN(auto source, MakeFileSource(TestOptions("src", options)));
    SLUICE_RETURN_NOT_OK(source->Open(Context("src")));
    return source;
  }

  Result<std::unique_ptr<Sink>> OpenSink(const nlohmann::json& options) {
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakeFileSink(TestOptions("out", options)));
    SLUICE_RETURN_NOT_OK(sink->Open(Context("out")));
    return sink;
  }

  // Reads every batch of a source made from `options`.
  Result<std::vector<BatchPtr>> ReadAll(const nlohmann::json& options) {
    SLUICE_ASSIGN_OR_RETURN(auto source, OpenSource(options));
    std::vector<BatchPtr> batches;
    for (uint64_t seq = 0;; ++seq) {
      SLUICE_ASSIGN_OR_RETURN(BatchPtr b, source->Next(seq));
      if (b == nullptr) break;
      batches.push_back(std::move(b));
    }
    SLUICE_RETURN_NOT_OK(source->Close());
    return batches;
  }

  // Writes `batches` through a sink made from `options`, then closes it.
  Status WriteAll(const nlohmann::json& options, const std::vector<BatchPtr>& batches) {
    SLUICE_ASSIGN_OR_RETURN(auto sink, OpenSink(options));
    for (const auto& b : batches) SLUICE_RETURN_NOT_OK(sink->Write(b, AckSet()));
    return sink->Close();
  }

  // Returns the names of the files in `rel`, sorted.
  std::vector<std::string> Files(const std::string& rel) const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / rel)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

TEST_F(FilesTest, GlobExpandsSortedRegularFiles) {
  WriteText(dir_ / "in/b.jsonl", "");
  WriteText(dir_ / "in/a.jsonl", "");
  WriteText(dir_ / "in/c.csv", "");
  fs::create_directories(dir_ / "in/d.jsonl");  // a directory is not a file
  ASSERT_OK_AND_ASSIGN(auto files, ExpandGlob(P("in/*.jsonl")));
  EXPECT_THAT(files, ElementsAre(P("in/a.jsonl"), P("in/b.jsonl")));
  ASSERT_OK_AND_ASSIGN(auto braces, ExpandGlob(P("in/{c.csv,b.jsonl}")));
  EXPECT_THAT(braces, ElementsAre(P("in/b.jsonl"), P("in/c.csv")));
  EXPECT_THAT(ExpandGlob(P("in/*.parquet")),
              StatusIs(StatusCode::kNotFound, HasSubstr("no file matches '" + P("in/*.parquet"))));
  EXPECT_THAT(OpenSource({{"path", P("nothing/*.csv")}}),
              StatusIs(StatusCode::kNotFound, HasSubstr(P("nothing/*.csv"))));
}

TEST_F(FilesTest, SourceReadsFilesInNameOrderWithOneSchema) {
  WriteText(dir_ / "in/2.jsonl", "{\"id\":3,\"name\":\"c\"}\n");
  WriteText(dir_ / "in/1.jsonl", "{\"id\":1,\"name\":\"a\"}\n{\"id\":2}\n");
  ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({{"path", P("in/*.jsonl")}}));
  EXPECT_EQ(RowsOf(batches), R"([[1,"a"],[2,null],[3,"c"]])");
  EXPECT_EQ(stats_.Counters()["files"], 2);
}

TEST_F(FilesTest, SchemaComesFromTheFirstFileWithRows) {
  WriteText(dir_ / "in/1.csv", "id,name\n");
  WriteText(dir_ / "in/2.csv", "id,name\n1,a\n");
  WriteText(dir_ / "in/3.csv", "name,id\nb,2\n");
  ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({{"path", P("in/*.csv")}}));
  EXPECT_EQ(RowsOf(batches), R"([[1,"a"],[2,"b"]])");
  EXPECT_EQ(batches[0]->schema()->ToString(), "id:int64, name:string");
}

TEST_F(FilesTest, SourceStreamsLargeCompressedFilesInBatches) {
  std::string text;
  for (int i = 0; i < 60000; ++i) text += fmt::format("{},row number {}\n", i, i);
  ASSERT_OK_AND_ASSIGN(std::string packed, io::Compress(io::Codec::kZstd, "id,name\n" + text));
  WriteText(dir_ / "big.csv.zst", packed);
  ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({{"path", P("big.csv.zst")}, {"batch_rows", 5000}}));
  int64_t rows = 0;
  for (const auto& b : batches) {
    EXPECT_LE(b->num_rows(), 5000);
    rows += b->num_rows();
  }
  EXPECT_EQ(rows, 60000);
  EXPECT_EQ(batches.back()->column(0).GetInt64(batches.back()->num_rows() - 1), 59999);
}

TEST_F(FilesTest, MalformedRowNamesFileAndLine) {
  WriteText(dir_ / "data/x.csv", "id,name\n1,a\n2,b\nabc,c\n");
  EXPECT_THAT(ReadAll({{"path", P("data/x.csv")}, {"schema", {{"id", "int64"}, {"name", "text"}}}}),
              StatusIs(StatusCode::kInvalidArgument,
                       P("data/x.csv") + ":4: expected int64 for 'id', got 'abc'"));
  WriteText(dir_ / "data/y.jsonl", "{\"id\":1}\n{\"id\":\n");
  EXPECT_THAT(ReadAll({{"path", P("data/y.jsonl")}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr(P("data/y.jsonl") + ":2: ")));
}

TEST_F(FilesTest, SkippedRowsAreCountedAsDiscarded) {
  WriteText(dir_ / "data/x.csv", "id\n1\nx\n3\ny\n");
  ASSERT_OK_AND_ASSIGN(
      auto batches,
      ReadAll({{"path", P("data/x.csv")}, {"schema", {{"id", "int64"}}}, {"on_error", "skip"}}));
  EXPECT_EQ(RowsOf(batches), "[[1],[3]]");
  EXPECT_EQ(stats_.discarded_rows.load(), 2);
}

TEST_F(FilesTest, CorruptCompressedFileNamesTheFile) {
  ASSERT_OK_AND_ASSIGN(std::string packed, io::Compress(io::Codec::kGzip, "{\"a\":1}\n"));
  WriteText(dir_ / "x.jsonl.gz", packed.substr(0, packed.size() - 4));
  EXPECT_THAT(
      ReadAll({{"path", P("x.jsonl.gz")}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr(P("x.jsonl.gz") + ": truncated gzip data")));
}

TEST_F(FilesTest, SourceOptionErrors) {
  EXPECT_THAT(MakeFileSource(TestOptions("src", {{"path", "x"}, {"batch_rows", 0}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("batch_rows")));
  EXPECT_THAT(MakeFileSource(TestOptions("src", {{"path", "x"}, {"delimiter", "ab"}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("delimiter")));
  EXPECT_THAT(MakeFileSource(TestOptions("src", {{"path", "x"}, {"schema", {{"a", "uuid"}}}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown type 'uuid'")));
  WriteText(dir_ / "x.txt", "hello\n");
  EXPECT_THAT(ReadAll({{"path", P("x.txt")}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("set option 'format'")));
}

struct RoundTripCase {
  std::string ext;
  std::string compression;
};

class FilesRoundTrip : public FilesTest, public ::testing::WithParamInterface<RoundTripCase> {};

TEST_P(FilesRoundTrip, SinkThenSourceGivesTheSameRows) {
  const std::string ext = GetParam().ext;
  const BatchPtr batch = AllTypesBatch();
  ASSERT_OK(WriteAll({{"path", P("out/data-{n}" + ext)}, {"verify", true}}, {batch, batch}));
  EXPECT_THAT(Files("out"), ElementsAre("data-00000" + ext));
  ASSERT_OK_AND_ASSIGN(auto back,
                       ReadAll({{"path", P("out/*" + ext)}, {"schema", AllTypesOption()}}));
  EXPECT_EQ(RowsOf(back), RowsOf({batch, batch}));
  ASSERT_OK(back.empty() ? Status::Internal("no batches") : Status::OK());
  EXPECT_EQ(*back[0]->schema(), *AllTypes());
  // The compression really is what the extension says.
  const std::string raw = ReadText(dir_ / ("out/data-00000" + ext));
  if (GetParam().compression == "gzip") {
    EXPECT_EQ(raw.substr(0, 2), "\x1f\x8b");
  }
  if (GetParam().compression == "zstd") {
    EXPECT_EQ(raw.substr(0, 4), "\x28\xb5\x2f\xfd");
  }
}

TEST_P(FilesRoundTrip, InferredSchemaRoundTrip) {
  const std::string ext = GetParam().ext;
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"name", TypeId::kString},
                            {"score", TypeId::kFloat64},
                            {"ok", TypeId::kBool}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, R"([[1,"a, b",1.5,true],
                                                             [2,"line\nbreak",-2.0,false],
                                                             [3,null,null,null]])"));
  ASSERT_OK(WriteAll({{"path", P("out/x" + ext)}}, {batch}));
  ASSERT_OK_AND_ASSIGN(auto back, ReadAll({{"path", P("out/x" + ext)}}));
  EXPECT_EQ(RowsOf(back), batch->ToString());
  EXPECT_EQ(*back[0]->schema(), *schema);
}

INSTANTIATE_TEST_SUITE_P(
    FormatsAndCodecs, FilesRoundTrip,
    ::testing::Values(RoundTripCase{".jsonl", "none"}, RoundTripCase{".jsonl.gz", "gzip"},
                      RoundTripCase{".jsonl.zst", "zstd"}, RoundTripCase{".csv", "none"},
                      RoundTripCase{".csv.gz", "gzip"}, RoundTripCase{".csv.zst", "zstd"}),
    [](const auto& info) {
      std::string name = info.param.ext.substr(1);
      std::replace(name.begin(), name.end(), '.', '_');
      return name;
    });

TEST_F(FilesTest, RollsByRowsIntoExactlySizedFiles) {
  ASSERT_OK(WriteAll({{"path", P("out/part-{n}.csv.gz")}, {"roll_rows", 3}},
                     {Ints(0, 4), Ints(4, 9), Ints(9, 10)}));
  EXPECT_THAT(Files("out"), ElementsAre("part-00000.csv.gz", "part-00001.csv.gz",
                                        "part-00002.csv.gz", "part-00003.csv.gz"));
  ASSERT_OK_AND_ASSIGN(std::string first,
                       io::Decompress(io::Codec::kGzip, ReadText(dir_ / "out/part-00000.csv.gz")));
  EXPECT_EQ(first, "i\n0\n1\n2\n");
  ASSERT_OK_AND_ASSIGN(std::string last,
                       io::Decompress(io::Codec::kGzip, ReadText(dir_ / "out/part-00003.csv.gz")));
  EXPECT_EQ(last, "i\n9\n");
  ASSERT_OK_AND_ASSIGN(auto back, ReadAll({{"path", P("out/*.csv.gz")}}));
  EXPECT_EQ(RowsOf(back), "[[0],[1],[2],[3],[4],[5],[6],[7],[8],[9]]");
  EXPECT_EQ(stats_.Counters()["files"], 4 + 4);  // written, then read
}

TEST_F(FilesTest, RollsByBytesBeforeAFileWouldExceedTheLimit) {
  // Each row is `{"i":1000}\n`, 11 bytes: 3 rows (33 bytes) fit in 35.
  ASSERT_OK(WriteAll({{"path", P("out/{node}-{n}.jsonl")}, {"roll_bytes", 35}},
                     {Ints(1000, 1004), Ints(1004, 1010)}));
  EXPECT_THAT(Files("out"), ElementsAre("out-00000.jsonl", "out-00001.jsonl", "out-00002.jsonl",
                                        "out-00003.jsonl"));
  for (const auto& name : Files("out")) EXPECT_LE(fs::file_size(dir_ / "out" / name), 35u);
  EXPECT_EQ(ReadText(dir_ / "out/out-00003.jsonl"), "{\"i\":1009}\n");
  // A row larger than the limit gets a file of its own.
  ASSERT_OK(WriteAll({{"path", P("big/{n}.jsonl")}, {"roll_bytes", "5"}}, {Ints(1, 3)}));
  EXPECT_THAT(Files("big"), ElementsAre("00000.jsonl", "00001.jsonl"));
}

TEST_F(FilesTest, AcksAreReleasedOnlyAfterTheRename) {
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"path", P("out/a-{n}.jsonl")}, {"roll_rows", 5}}));
  ASSERT_OK(sink->Write(Ints(0, 3), MakeAcks(queue, 0)));
  EXPECT_TRUE(Events(queue).empty());
  // Only the temporary file exists while the acks are held.
  ASSERT_EQ(Files("out").size(), 1u);
  EXPECT_THAT(Files("out")[0], HasSubstr("a-00000.jsonl.tmp-"));

  // Batch 1 fills the first file (closing it: batch 0 is durable) and starts the second.
  ASSERT_OK(sink->Write(Ints(3, 7), MakeAcks(queue, 1)));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true)));
  EXPECT_TRUE(fs::exists(dir_ / "out/a-00000.jsonl"));

  // Batch 1 has rows in the second file too: it is done only when that file is published.
  ASSERT_OK(sink->Flush());
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(1u, true)));
  EXPECT_THAT(Files("out"), ElementsAre("a-00000.jsonl", "a-00001.jsonl"));

  // A sink dropped with a file open fails its acks and leaves no file behind.
  ASSERT_OK(sink->Write(Ints(7, 8), MakeAcks(queue, 2)));
  sink.reset();
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(2u, false)));
  EXPECT_THAT(Files("out"), ElementsAre("a-00000.jsonl", "a-00001.jsonl"));
}

TEST_F(FilesTest, CancelledRunDoesNotPublishTheOpenFile) {
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"path", P("out/c-{n}.jsonl")}}));
  ASSERT_OK(sink->Write(Ints(0, 3), MakeAcks(queue, 0)));
  cancelled_ = true;
  ASSERT_OK(sink->Close());
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_TRUE(Files("out").empty());
}

TEST_F(FilesTest, FailedWriteFailsTheAcks) {
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"path", P("out/x.csv")}}));
  ASSERT_OK(sink->Write(Ints(0, 2), MakeAcks(queue, 0)));
  ASSERT_OK(sink->Flush());
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true)));
  // The name has no {n}, so there is no name for a second file.
  EXPECT_THAT(sink->Write(Ints(2, 3), MakeAcks(queue, 1)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("has no {n}")));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(1u, false)));
}

TEST_F(FilesTest, NeverOverwritesNumberedFilesOfEarlierRuns) {
  WriteText(dir_ / "out/r-00000.jsonl", "earlier run\n");
  ASSERT_OK(WriteAll({{"path", P("out/r-{n}.jsonl")}}, {Ints(0, 1)}));
  EXPECT_THAT(Files("out"), ElementsAre("r-00000.jsonl", "r-00001.jsonl"));
  EXPECT_EQ(ReadText(dir_ / "out/r-00000.jsonl"), "earlier run\n");
  // A name without {n} is replaced, as a shell redirection would.
  WriteText(dir_ / "out/plain.jsonl", "old\n");
  ASSERT_OK(WriteAll({{"path", P("out/plain.jsonl")}}, {Ints(5, 6)}));
  EXPECT_EQ(ReadText(dir_ / "out/plain.jsonl"), "{\"i\":5}\n");
}

TEST_F(FilesTest, CreatesMissingDirectoriesDurably) {
  // Each directory the sink creates is made durable (CreateDirectoriesDurably fsyncs its
  // parent); one that exists is not created again, and without fsync none is counted.
  ASSERT_OK(WriteAll({{"path", P("new/a/b/f-{n}.jsonl")}}, {Ints(0, 1)}));
  EXPECT_THAT(Files("new/a/b"), ElementsAre("f-00000.jsonl"));
  EXPECT_EQ(stats_.Counters()["directories_created"], 3);
  ASSERT_OK(WriteAll({{"path", P("new/a/c/f-{n}.jsonl")}}, {Ints(0, 1)}));
  EXPECT_EQ(stats_.Counters()["directories_created"], 4);
  ASSERT_OK(WriteAll({{"path", P("scratch/d/f-{n}.jsonl")}, {"fsync", false}}, {Ints(0, 1)}));
  EXPECT_THAT(Files("scratch/d"), ElementsAre("f-00000.jsonl"));
  EXPECT_EQ(stats_.Counters()["directories_created"], 4);
  // A file where a directory should be fails the write, naming it.
  WriteText(dir_ / "blocked", "x");
  auto sink = OpenSink({{"path", P("blocked/f-{n}.jsonl")}});
  ASSERT_OK(sink);
  EXPECT_THAT((*sink)->Write(Ints(0, 1), AckSet()),
              StatusIs(StatusCode::kIOError, HasSubstr("creating directory " + P("blocked"))));
}

TEST_F(FilesTest, DirectoryPathNamesFilesAfterTheNode) {
  fs::create_directories(dir_ / "outdir");
  ASSERT_OK(
      WriteAll({{"path", P("outdir")}, {"compression", "zstd"}, {"format", "csv"}}, {Ints(0, 2)}));
  EXPECT_THAT(Files("outdir"), ElementsAre("out-00000.csv.zst"));
}

TEST_F(FilesTest, TemplateExpansion) {
  EXPECT_EQ(ExpandPathTemplate("d/{date}/{node}-{n}.jsonl", 42, "audit", "2024-05-01"),
            "d/2024-05-01/audit-00042.jsonl");
  ASSERT_OK(WriteAll({{"path", P("out/{date}/f.jsonl")}}, {Ints(0, 1)}));
  EXPECT_TRUE(fs::exists(dir_ / "out" / FormatTimestamp(NowMicros()).substr(0, 10) / "f.jsonl"));
}

TEST_F(FilesTest, SinkOptionErrors) {
  EXPECT_THAT(MakeFileSink(TestOptions("o", {{"path", P("x.jsonl")}, {"roll_rows", 5}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("needs {n}")));
  EXPECT_THAT(MakeFileSink(TestOptions("o", {{"path", P("x.dat")}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("set option 'format'")));
  EXPECT_THAT(MakeFileSink(TestOptions("o", {{"path", P("x.csv")}, {"delimiter", "\""}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("delimiter")));
}

TEST_F(FilesTest, RecordsPhasesAndFileCount) {
  ASSERT_OK(
      WriteAll({{"path", P("o/{n}.jsonl.gz")}, {"verify", true}, {"roll_rows", 2}}, {Ints(0, 3)}));
  const auto phases = stats_.Phases();
  for (const char* phase : {"serialize", "compress", "write", "verify"}) {
    EXPECT_EQ(phases.count(phase), 1u) << phase;
  }
  EXPECT_EQ(stats_.Counters()["files"], 2);
}

TEST_F(FilesTest, VerifyCatchesTruncatedAndCorruptFiles) {
  ASSERT_OK(WriteAll({{"path", P("v/a.jsonl.gz")}}, {Ints(0, 1000)}));
  ASSERT_OK(WriteAll({{"path", P("v/b.csv")}}, {Ints(0, 1000)}));
  const std::string gz = ReadText(dir_ / "v/a.jsonl.gz");
  const std::string csv = ReadText(dir_ / "v/b.csv");
  ASSERT_OK_AND_ASSIGN(std::string plain, io::Decompress(io::Codec::kGzip, gz));
  FileExpectation gz_expect{1000, static_cast<int64_t>(plain.size()),
                            static_cast<int64_t>(gz.size()), false};
  FileExpectation csv_expect{1000, static_cast<int64_t>(csv.size()),
                             static_cast<int64_t>(csv.size()), true};
  EXPECT_OK(VerifyFile(P("v/a.jsonl.gz"), io::Format::kJsonl, io::Codec::kGzip, gz_expect));
  EXPECT_OK(VerifyFile(P("v/b.csv"), io::Format::kCsv, io::Codec::kNone, csv_expect));

  WriteText(dir_ / "v/a.jsonl.gz", gz.substr(0, gz.size() - 100));
  EXPECT_THAT(VerifyFile(P("v/a.jsonl.gz"), io::Format::kJsonl, io::Codec::kGzip, gz_expect),
              StatusIs(StatusCode::kDataLoss, HasSubstr("bytes on disk, expected")));
  // Same size, but a flipped byte: the gzip checks catch it.
  std::string flipped = gz;
  flipped[flipped.size() / 2] ^= 0x20;
  WriteText(dir_ / "v/a.jsonl.gz", flipped);
  EXPECT_THAT(VerifyFile(P("v/a.jsonl.gz"), io::Format::kJsonl, io::Codec::kGzip, gz_expect),
              StatusIs(StatusCode::kDataLoss, HasSubstr("verifying " + P("v/a.jsonl.gz"))));
  // A truncated file whose expectation was taken afterwards still fails on the row count.
  const std::string cut = csv.substr(0, csv.size() - 4);
  WriteText(dir_ / "v/b.csv", cut);
  csv_expect.file_bytes = csv_expect.uncompressed_bytes = static_cast<int64_t>(cut.size());
  EXPECT_THAT(VerifyFile(P("v/b.csv"), io::Format::kCsv, io::Codec::kNone, csv_expect),
              StatusIs(StatusCode::kDataLoss, HasSubstr("999 rows, expected 1000")));
}

TEST_F(FilesTest, RegistersSourceAndSink) {
  NodeRegistry registry;
  RegisterFileNodes(&registry);
  ASSERT_NE(registry.Find(kFileSourceType), nullptr);
  EXPECT_EQ(registry.Find(kFileSourceType)->kind, NodeKind::kSource);
  ASSERT_NE(registry.Resolve(kFileSinkType, /*has_inputs=*/true), nullptr);
  EXPECT_EQ(registry.Resolve(kFileSinkType, /*has_inputs=*/true)->kind, NodeKind::kSink);
}

}  // namespace
}  // namespace sluice
