#include "sluice/connectors/sqlite/sqlite.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/sqlite/sqlite_test_util.h"
#include "sluice/core/log.h"
#include "sluice/io/geometry.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

using sqlite_testing::ExecSql;
using sqlite_testing::QueryInt;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           fmt::format("sluice_sqlite_{}_{}", info->name(), getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "test.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  NodeContext* Context(const std::string& id, bool dry_run = false) {
    contexts_.push_back(std::make_unique<NodeContext>(id, "sqlite", &stats_, &cancelled_, dry_run));
    return contexts_.back().get();
  }

  // Create table t(id INTEGER PRIMARY KEY, name TEXT) with rows 1..n, name "r<id>".
  void MakeTable(int n) {
    std::string sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);";
    if (n > 0)
      sql += "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " +
             std::to_string(n) + ") INSERT INTO t SELECT x, 'r' || x FROM c;";
    ExecSql(path_, sql);
  }

  Result<std::unique_ptr<Source>> OpenSource(nlohmann::json options, bool dry_run = false) {
    options["path"] = path_;
    SLUICE_ASSIGN_OR_RETURN(auto source, MakeSqliteSource(NodeOptions::ForTest("src", options)));
    SLUICE_RETURN_NOT_OK(source->Open(Context("src", dry_run)));
    return source;
  }

  Result<std::unique_ptr<Sink>> OpenSink(nlohmann::json options) {
    options["path"] = path_;
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakeSqliteSink(NodeOptions::ForTest("out", options)));
    SLUICE_RETURN_NOT_OK(sink->Open(Context("out")));
    return sink;
  }

  // Read every batch; return the row counts and the concatenated rows as JSON text.
  static std::vector<int64_t> ReadAll(Source* source, std::vector<BatchPtr>* batches = nullptr) {
    std::vector<int64_t> sizes;
    for (uint64_t seq = 0;; ++seq) {
      auto next = source->Next(seq);
      EXPECT_THAT(next, IsOk());
      if (!next.ok() || *next == nullptr) break;
      sizes.push_back((*next)->num_rows());
      if (batches != nullptr) batches->push_back(*next);
    }
    return sizes;
  }

  std::filesystem::path dir_;
  std::string path_;
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

SchemaPtr AllTypesSchema() {
  return MakeSchema({{"b", TypeId::kBool},
                     {"i", TypeId::kInt64},
                     {"f", TypeId::kFloat64},
                     {"s", TypeId::kString},
                     {"y", TypeId::kBytes},
                     {"ts", TypeId::kTimestamp},
                     {"g", TypeId::kGeometry},
                     {"j", TypeId::kJson}});
}

constexpr const char* kAllTypesRows = R"([
  [true, 1, 1.5, "a", "00ff", "2024-01-02T03:04:05.123456Z", "0101000000000000000000f03f000000000000f03f", {"k": [1, 2]}],
  [false, -9007199254740993, -0.25, "", "", "1969-12-31T23:59:59Z",
   "01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f", "text"],
  [null, null, null, null, null, null, null, null],
  [true, 9223372036854775807, 1e300, "ünïcode ✓", "000102", "2262-04-11T23:47:16Z",
   "0101000020e6100000000000000000f03f0000000000000040", 42]
])";

TEST_F(SqliteTest, SinkThenSourceRoundTripsEveryTypeWithNulls) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(AllTypesSchema(), kAllTypesRows));
  {
    ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "all_types"}}));
    ASSERT_OK(sink->Write(batch, AckSet()));
    ASSERT_OK(sink->Close());
  }
  // json is stored as TEXT, so only it needs a schema hint; the others are typed by the
  // declarations the sink wrote.
  ASSERT_OK_AND_ASSIGN(auto source,
                       OpenSource({{"table", "all_types"}, {"schema", {{"j", "json"}}}}));
  EXPECT_EQ(*source->schema(), *AllTypesSchema());
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), std::vector<int64_t>{4});
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), batch->ToString());
  EXPECT_EQ(*batches[0]->schema(), *AllTypesSchema());
  EXPECT_EQ(batches[0]->column(1).null_count(), 1);
  ASSERT_OK(source->Close());
}

TEST_F(SqliteTest, CreatesPrimaryKeyAndIndexes) {
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"s", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([[7, "a"], [9, "b"]])"));
  ASSERT_OK_AND_ASSIGN(
      auto sink,
      OpenSink({{"table", "t"}, {"primary_key", "id"}, {"indexes", nlohmann::json::array({"s"})}}));
  ASSERT_OK(sink->Write(batch, AckSet()));
  ASSERT_OK(sink->Close());
  // id is the rowid, and `s` has its own index.
  EXPECT_EQ(QueryInt(path_, "SELECT rowid FROM t WHERE s = 'b'"), 9);
  EXPECT_EQ(QueryInt(path_,
                     "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                     "tbl_name = 't' AND sql LIKE '%(\"s\")%'"),
            1);
  ASSERT_OK_AND_ASSIGN(auto bad, OpenSink({{"table", "u"}, {"primary_key", "s"}}));
  EXPECT_THAT(bad->Write(batch, AckSet()),
              StatusIs(StatusCode::kConfigError, HasSubstr("must be an int64 column")));
}

TEST_F(SqliteTest, TimestampsStoredAsMicrosRoundTrip) {
  auto schema = MakeSchema({{"ts", TypeId::kTimestamp}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(schema, R"([["2024-01-02T03:04:05.5Z"], [null], [0]])"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"timestamp_format", "micros"}}));
  ASSERT_OK(sink->Write(batch, AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_EQ(QueryInt(path_, "SELECT typeof(ts) = 'integer' FROM t LIMIT 1"), 1);
  EXPECT_EQ(QueryInt(path_, "SELECT ts FROM t LIMIT 1"), 1704164645500000);

  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"}}));
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), batch->ToString());
}

TEST_F(SqliteTest, SinkStoresTimestampsAsIsoTextByDefault) {
  auto schema = MakeSchema({{"ts", TypeId::kTimestamp}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([["2024-01-02T03:04:05Z"]])"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}}));
  ASSERT_OK(sink->Write(batch, AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_EQ(QueryInt(path_, "SELECT ts = '2024-01-02T03:04:05Z' FROM t"), 1);
}

TEST_F(SqliteTest, SinkReleasesAcksOnlyAfterCommitting) {
  auto queue = std::make_shared<AckQueue>();
  AckSet acks(std::make_shared<AckHandle>(queue, 7));
  auto schema = MakeSchema({{"x", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, "[[1], [2], [3]]"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"batch_rows", 2}}));
  ASSERT_OK(sink->Write(batch, std::move(acks)));
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, /*max_wait_ms=*/0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq, 7u);
  EXPECT_TRUE(events[0].delivered);
  // Visible to another connection: committed, not merely buffered.
  EXPECT_EQ(QueryInt(path_, "SELECT COUNT(*) FROM t"), 3);
  EXPECT_GT(stats_.Phases()["insert"], 0);
  ASSERT_OK(sink->Close());
}

TEST_F(SqliteTest, SinkReplaceModeOverwritesRowsWithTheSameKey) {
  ExecSql(path_, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"v", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"mode", "replace"}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, BatchFromJson(schema, R"([[1, "a"], [2, "b"]])"));
  ASSERT_OK_AND_ASSIGN(BatchPtr second, BatchFromJson(schema, R"([[2, "c"], [3, "d"]])"));
  ASSERT_OK(sink->Write(first, AckSet()));
  ASSERT_OK(sink->Write(second, AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_EQ(QueryInt(path_, "SELECT COUNT(*) FROM t"), 3);
  EXPECT_EQ(QueryInt(path_, "SELECT v = 'c' FROM t WHERE id = 2"), 1);
}

TEST_F(SqliteTest, SinkInsertModeFailsOnDuplicateKeyAndKeepsNothingOfTheBatch) {
  ExecSql(path_, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (2);");
  auto schema = MakeSchema({{"id", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, "[[1], [2]]"));
  EXPECT_THAT(sink->Write(batch, AckSet()),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("node 'out'"), HasSubstr("UNIQUE constraint failed"))));
  EXPECT_EQ(QueryInt(path_, "SELECT COUNT(*) FROM t"), 1);  // row 1 was rolled back
}

TEST_F(SqliteTest, SinkUsesWalJournalByDefault) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}}));
  EXPECT_EQ(QueryInt(path_, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
  ASSERT_OK(sink->Close());
}

// A VFS that wraps the default one and counts xSync calls on every file (database, journal,
// WAL), as LevelDB's tests wrap their Env: it observes what SQLite really asks of the disk.
class SyncCountingVfs {
 public:
  SyncCountingVfs() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.zName = "sluice_sync_counting";
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.xOpen = &Open;
    vfs_.pAppData = this;
    EXPECT_EQ(sqlite3_vfs_register(&vfs_, /*makeDflt=*/1), SQLITE_OK);
  }
  ~SyncCountingVfs() {
    sqlite3_vfs_register(real_, /*makeDflt=*/1);
    sqlite3_vfs_unregister(&vfs_);
  }
  int syncs() const { return syncs_; }
  void Reset() { syncs_ = 0; }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;  // the wrapped file, stored right after this struct
    SyncCountingVfs* owner;
  };
  static sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out) {
    auto* self = static_cast<SyncCountingVfs*>(vfs->pAppData);
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(f + 1);
    f->owner = self;
    const int rc = self->real_->xOpen(self->real_, name, f->real, flags, out);
    f->base.pMethods = f->real->pMethods != nullptr ? &kMethods : nullptr;
    return rc;
  }
  static int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
  static int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
    return Real(f)->pMethods->xRead(Real(f), p, n, off);
  }
  static int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
    return Real(f)->pMethods->xWrite(Real(f), p, n, off);
  }
  static int Truncate(sqlite3_file* f, sqlite3_int64 size) {
    return Real(f)->pMethods->xTruncate(Real(f), size);
  }
  static int Sync(sqlite3_file* f, int flags) {
    ++reinterpret_cast<File*>(f)->owner->syncs_;
    return Real(f)->pMethods->xSync(Real(f), flags);
  }
  static int FileSize(sqlite3_file* f, sqlite3_int64* size) {
    return Real(f)->pMethods->xFileSize(Real(f), size);
  }
  static int Lock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
  static int Unlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
  static int CheckReservedLock(sqlite3_file* f, int* out) {
    return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
  }
  static int FileControl(sqlite3_file* f, int op, void* arg) {
    return Real(f)->pMethods->xFileControl(Real(f), op, arg);
  }
  static int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
  static int DeviceCharacteristics(sqlite3_file* f) {
    return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
  }
  static int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
    return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
  }
  static int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
    return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
  }
  static void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
  static int ShmUnmap(sqlite3_file* f, int del) {
    return Real(f)->pMethods->xShmUnmap(Real(f), del);
  }
  static int Fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
    return Real(f)->pMethods->xFetch(Real(f), off, n, out);
  }
  static int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
    return Real(f)->pMethods->xUnfetch(Real(f), off, p);
  }
  static constexpr sqlite3_io_methods kMethods = {3,
                                                  &Close,
                                                  &Read,
                                                  &Write,
                                                  &Truncate,
                                                  &Sync,
                                                  &FileSize,
                                                  &Lock,
                                                  &Unlock,
                                                  &CheckReservedLock,
                                                  &FileControl,
                                                  &SectorSize,
                                                  &DeviceCharacteristics,
                                                  &ShmMap,
                                                  &ShmLock,
                                                  &ShmBarrier,
                                                  &ShmUnmap,
                                                  &Fetch,
                                                  &Unfetch};

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
  int syncs_ = 0;
};

TEST_F(SqliteTest, SinkSyncsEveryCommitByDefault) {
  // The acks a sink releases may let a source delete the rows: each commit must reach the disk
  // first. In WAL mode only synchronous=FULL syncs the WAL at every commit.
  SyncCountingVfs vfs;
  auto schema = MakeSchema({{"x", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, "[[1], [2]]"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}}));
  ASSERT_OK(sink->Write(batch, AckSet()));  // creates the table
  vfs.Reset();
  ASSERT_OK(sink->Write(batch, AckSet()));
  EXPECT_GE(vfs.syncs(), 1) << "a commit the sink acked was not synced";
  ASSERT_OK(sink->Close());

  // The user may trade durability for speed: then the same commit is not synced.
  ASSERT_OK_AND_ASSIGN(auto fast, OpenSink({{"table", "u"}, {"synchronous", "normal"}}));
  ASSERT_OK(fast->Write(batch, AckSet()));
  vfs.Reset();
  ASSERT_OK(fast->Write(batch, AckSet()));
  EXPECT_EQ(vfs.syncs(), 0);
  ASSERT_OK(fast->Close());
}

TEST_F(SqliteTest, SinkCreatesTheFolderOfANewDatabase) {
  // `path: demo/audit.db` on a fresh checkout: the folder does not exist yet.
  path_ = (dir_ / "demo" / "nested" / "audit.db").string();
  auto schema = MakeSchema({{"x", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, "[[1], [2]]"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}}));
  ASSERT_OK(sink->Write(batch, AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_EQ(QueryInt(path_, "SELECT COUNT(*) FROM t"), 2);

  // A file where the folder should be: an error naming the node and the database.
  std::ofstream((dir_ / "blocked").string()) << "x";
  path_ = (dir_ / "blocked" / "audit.db").string();
  EXPECT_THAT(OpenSink({{"table", "t"}}),
              StatusIs(StatusCode::kIOError,
                       AllOf(HasSubstr("node 'out'"), HasSubstr("creating the folder"),
                             HasSubstr("Not a directory"))));
}

TEST_F(SqliteTest, SinkWithoutCreateTableReportsTheMissingTable) {
  ExecSql(path_, "CREATE TABLE other (x INTEGER)");
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "missing"}, {"create_table", false}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(MakeSchema({{"x", TypeId::kInt64}}), "[[1]]"));
  EXPECT_THAT(sink->Write(batch, AckSet()),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("node 'out'"), HasSubstr("no such table: missing"))));
}

TEST_F(SqliteTest, SinkReportsABusyDatabaseAsRetryable) {
  ExecSql(path_, "CREATE TABLE t (x INTEGER)");
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto made = MakeSqliteSink(NodeOptions::ForTest(
      "out",
      {{"path", path_}, {"table", "t"}, {"busy_timeout", 1000}, {"journal_mode", "delete"}}));
  ASSERT_OK(made);
  auto sink = std::move(*made);
  Status open = sink->Open(Context("out"));
  EXPECT_THAT(open, StatusIs(StatusCode::kUnavailable, HasSubstr("locked")));
  EXPECT_TRUE(open.IsRetryable());
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
}

TEST_F(SqliteTest, SourceReadsInKeysetPagesSmallerThanTheTable) {
  MakeTable(25);
  ASSERT_OK_AND_ASSIGN(auto source,
                       OpenSource({{"table", "t"}, {"key", "id"}, {"batch_rows", 10}}));
  EXPECT_EQ(source->EstimatedRows(), 25);
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), (std::vector<int64_t>{10, 10, 5}));
  ASSERT_OK_AND_ASSIGN(BatchPtr all, Concatenate(batches));
  for (int64_t i = 0; i < 25; ++i) EXPECT_EQ(all->column(0).GetInt64(i), i + 1);
  EXPECT_EQ(all->column(1).GetView(24), "r25");
  EXPECT_EQ(all->num_columns(), 2);  // the key, already among *, is not repeated
}

TEST_F(SqliteTest, SourceCountsAnUnindexedKey) {
  ExecSql(path_, "CREATE TABLE u (k INTEGER, v TEXT); INSERT INTO u VALUES (2, 'b'), (1, 'a');");
  SetLogLevel(LogLevel::kError);  // the warning itself is not under test
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "u"}, {"key", "k"}}));
  SetLogLevel(LogLevel::kInfo);
  EXPECT_EQ(stats_.Counters()["unindexed_key"], 1);
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), R"([[1,"a"],[2,"b"]])");
}

TEST_F(SqliteTest, SourceDoesNotFlagAnIndexedKey) {
  MakeTable(3);
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"}, {"key", "id"}}));
  EXPECT_EQ(stats_.Counters().count("unindexed_key"), 0u);
}

TEST_F(SqliteTest, SourceKeysetPagingEndsCleanlyOnAnExactMultiple) {
  MakeTable(20);
  ASSERT_OK_AND_ASSIGN(auto source,
                       OpenSource({{"table", "t"}, {"key", "rowid"}, {"batch_rows", 10}}));
  EXPECT_EQ(ReadAll(source.get()), (std::vector<int64_t>{10, 10}));
}

TEST_F(SqliteTest, SourceAppliesWhereAndColumns) {
  MakeTable(30);
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"},
                                                {"where", "id % 3 = 0"},
                                                {"columns", {"name"}},
                                                {"key", "id"},
                                                {"batch_rows", 4}}));
  EXPECT_EQ(source->EstimatedRows(), 10);
  ASSERT_EQ(source->schema()->num_fields(), 1);
  EXPECT_EQ(source->schema()->field(0).name, "name");
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(batches[2]->ToString(), R"([["r27"],["r30"]])");
}

TEST_F(SqliteTest, SourceStreamsAQueryInBatches) {
  MakeTable(7);
  ASSERT_OK_AND_ASSIGN(
      auto source,
      OpenSource({{"query", "SELECT id, name FROM t ORDER BY id DESC"}, {"batch_rows", 3}}));
  EXPECT_EQ(source->EstimatedRows(), -1);
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(batches[2]->ToString(), R"([[1,"r1"]])");
}

TEST_F(SqliteTest, SourceTypesExpressionsFromTheFirstRow) {
  ExecSql(path_, "CREATE TABLE dummy (x)");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"query",
                                                 "SELECT 1 AS i, 2.5 AS f, 'x' AS s, x'00ff' AS b, "
                                                 "NULL AS n, '2024-01-01 10:00:00' AS t"},
                                                {"schema", {{"t", "timestamp"}}}}));
  EXPECT_EQ(source->schema()->ToString(),
            "i:int64, f:float64, s:string, b:bytes, n:string, t:timestamp");
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), R"([[1,2.5,"x","00ff",null,"2024-01-01T10:00:00Z"]])");
}

TEST_F(SqliteTest, SourceReadsAnEmptyTableAsNoBatches) {
  MakeTable(0);
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"}, {"key", "id"}}));
  EXPECT_EQ(source->EstimatedRows(), 0);
  EXPECT_TRUE(ReadAll(source.get()).empty());
}

TEST_F(SqliteTest, SourceRejectsAValueThatDoesNotFitTheColumnType) {
  ExecSql(path_, "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), ('abc');");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"}}));
  EXPECT_THAT(source->Next(0), StatusIs(StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr("node 'src'"), HasSubstr("row 1"),
                                              HasSubstr("column 'n'"), HasSubstr("'abc'"))));
}

TEST_F(SqliteTest, GeometryColumnsReadGeoPackageEwkbAndWktAndRefuseTheRest) {
  // A GeoPackage POINT (1 2) in EPSG:3857 (no envelope), EWKB, WKT; then a blob that is none.
  ExecSql(path_,
          "CREATE TABLE t (id INTEGER, geom POINT);"
          "INSERT INTO t VALUES (1, X'4750000"
          "1110f00000101000000000000000000f03f0000000000000040'),"
          " (2, X'0101000020e6100000000000000000f03f0000000000000040'),"
          " (3, 'SRID=4326;POINT (5 6)'), (4, NULL), (5, X'00ff');");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"}, {"batch_rows", 4}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, source->Next(0));
  ASSERT_EQ(batch->num_rows(), 4);
  ASSERT_EQ(batch->schema()->field(1).type, TypeId::kGeometry);
  const char* want[] = {"SRID=3857;POINT (1 2)", "SRID=4326;POINT (1 2)", "SRID=4326;POINT (5 6)"};
  for (int r = 0; r < 3; ++r) {
    std::string wkt;
    ASSERT_OK(io::geom::AppendWkt(batch->column(1).GetView(r), true, &wkt));
    EXPECT_EQ(wkt, want[r]);
  }
  EXPECT_TRUE(batch->column(1).IsNull(3));
  EXPECT_THAT(source->Next(1),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("column 'geom'"),
                             HasSubstr("expected a GeoPackage geometry, EWKB or WKT"))));
}

class SqliteArchiveTest : public SqliteTest {
 protected:
  Result<std::unique_ptr<Source>> OpenArchiver(int batch_rows, const std::string& where = "",
                                               bool dry_run = false) {
    nlohmann::json o = {
        {"table", "t"}, {"key", "id"}, {"delete_after_ack", true}, {"batch_rows", batch_rows}};
    if (!where.empty()) o["where"] = where;
    return OpenSource(o, dry_run);
  }
  int64_t Count(const std::string& where = "1") {
    return QueryInt(path_, "SELECT COUNT(*) FROM t WHERE " + where);
  }
};

TEST_F(SqliteArchiveTest, CommitDeletesExactlyTheRowsOfTheBatch) {
  MakeTable(25);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10));
  EXPECT_EQ(ReadAll(source.get()), (std::vector<int64_t>{10, 10, 5}));
  ASSERT_OK(source->Commit(1));
  EXPECT_EQ(Count(), 15);
  EXPECT_EQ(Count("id BETWEEN 11 AND 20"), 0);
  EXPECT_GT(stats_.Phases()["delete"], 0);
  EXPECT_EQ(stats_.Counters()["deleted_rows"], 10);
  ASSERT_OK(source->Close());
}

TEST_F(SqliteArchiveTest, AbandonLeavesTheRowsForTheNextRun) {
  MakeTable(25);
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10));
    ReadAll(source.get());
    source->Abandon(0);
    ASSERT_OK(source->Commit(1));
    source->Abandon(2);
    ASSERT_OK(source->Close());
  }
  EXPECT_EQ(Count(), 15);
  ASSERT_OK_AND_ASSIGN(auto rerun, OpenArchiver(100));
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(rerun.get(), &batches), std::vector<int64_t>{15});
  EXPECT_EQ(batches[0]->column(0).GetInt64(0), 1);
  EXPECT_EQ(batches[0]->column(0).GetInt64(10), 21);
}

TEST_F(SqliteArchiveTest, CommitsOutOfOrderWork) {
  MakeTable(25);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10));
  ReadAll(source.get());
  ASSERT_OK(source->Commit(2));
  EXPECT_EQ(Count(), 20);
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 10);
  ASSERT_OK(source->Commit(1));
  EXPECT_EQ(Count(), 0);
}

TEST_F(SqliteArchiveTest, CommitsBetweenPagesDoNotDisturbReading) {
  MakeTable(35);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10));
  std::vector<BatchPtr> batches;
  for (uint64_t seq = 0;; ++seq) {
    ASSERT_OK_AND_ASSIGN(BatchPtr b, source->Next(seq));
    if (b == nullptr) break;
    batches.push_back(b);
    ASSERT_OK(source->Commit(seq));
  }
  ASSERT_OK_AND_ASSIGN(BatchPtr all, Concatenate(batches));
  ASSERT_EQ(all->num_rows(), 35);
  for (int64_t i = 0; i < 35; ++i) EXPECT_EQ(all->column(0).GetInt64(i), i + 1);
  EXPECT_EQ(Count(), 0);
}

TEST_F(SqliteArchiveTest, DeletesNonContiguousKeysOnly) {
  MakeTable(30);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(7, "id % 3 != 0"));
  EXPECT_EQ(ReadAll(source.get()), (std::vector<int64_t>{7, 7, 6}));
  for (uint64_t seq = 0; seq < 3; ++seq) ASSERT_OK(source->Commit(seq));
  EXPECT_EQ(Count(), 10);
  EXPECT_EQ(Count("id % 3 = 0"), 10);
}

TEST_F(SqliteArchiveTest, DeletesBatchesLargerThanOneDeleteStatement) {
  MakeTable(1234);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(1200));
  EXPECT_EQ(ReadAll(source.get()), (std::vector<int64_t>{1200, 34}));
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 34);
  EXPECT_EQ(Count("id > 1200"), 34);
}

TEST_F(SqliteArchiveTest, CommitOfRowsDeletedBySomeoneElseDeletesTheOthers) {
  MakeTable(10);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10));
  ReadAll(source.get());
  ExecSql(path_, "DELETE FROM t WHERE id = 5");
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 0);
  EXPECT_EQ(stats_.Counters()["deleted_rows"], 9);
  EXPECT_EQ(stats_.Counters()["changed_rows_kept"], 1);
}

// The rows of a batch change between reading and committing; only those still exactly as read
// (same key, still matching `where:`, same values) may be deleted.
TEST_F(SqliteArchiveTest, CommitKeepsARowThatNoLongerMatchesTheWhereCondition) {
  // `hold` is not read, so only repeating the `where:` condition can notice the change.
  ExecSql(path_,
          "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, hold INTEGER);"
          "INSERT INTO t VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 1);");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"},
                                                {"columns", {"id", "name"}},
                                                {"where", "hold = 0"},
                                                {"key", "id"},
                                                {"delete_after_ack", true}}));
  EXPECT_EQ(ReadAll(source.get()), std::vector<int64_t>{3});
  ExecSql(path_, "UPDATE t SET hold = 1 WHERE id = 2");
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 2);
  EXPECT_EQ(Count("id = 2 AND hold = 1"), 1);  // changed after reading: kept
  EXPECT_EQ(Count("id = 4"), 1);               // never matched
  EXPECT_EQ(stats_.Counters()["changed_rows_kept"], 1);
}

TEST_F(SqliteArchiveTest, CommitKeepsARowUpdatedAfterItWasRead) {
  MakeTable(10);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10, "name LIKE 'r%'"));
  ReadAll(source.get());
  ExecSql(path_, "UPDATE t SET name = 'r7 edited' WHERE id = 7");  // still matches `where:`
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 1);
  EXPECT_EQ(Count("id = 7 AND name = 'r7 edited'"), 1);
}

TEST_F(SqliteArchiveTest, CommitKeepsANewRowThatReusedTheRowidOfAReadRow) {
  // No INTEGER PRIMARY KEY: the key is the rowid, which SQLite hands out again once the largest
  // row is deleted.
  ExecSql(path_,
          "CREATE TABLE t (name TEXT, at INTEGER);"
          "INSERT INTO t VALUES ('a', 1), ('b', 2), ('c', 3);");
  ASSERT_OK_AND_ASSIGN(
      auto source,
      OpenSource(
          {{"table", "t"}, {"where", "at < 10"}, {"key", "rowid"}, {"delete_after_ack", true}}));
  EXPECT_EQ(ReadAll(source.get()), std::vector<int64_t>{3});
  ExecSql(path_, "DELETE FROM t WHERE rowid = 3; INSERT INTO t VALUES ('new', 4);");
  ASSERT_EQ(QueryInt(path_, "SELECT rowid FROM t WHERE name = 'new'"), 3);  // reused
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 1);
  EXPECT_EQ(Count("rowid = 3 AND name = 'new'"), 1);
}

TEST_F(SqliteArchiveTest, DeletesRowsOfEveryStorageClassAsRead) {
  // The digest taken on reading must equal the one the DELETE computes, for every storage class.
  ExecSql(path_,
          "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, n, u NUMERIC);"
          "INSERT INTO t VALUES (1, 1.5, 'x', x'00ff', NULL, '12'), "
          "(-9223372036854775808, -0.0, '', x'', 2.5, 'abc'), "
          "(NULL, NULL, 'ünï ✓', NULL, 'text', NULL), (7, 1e300, 'long text value', "
          "zeroblob(100), x'01', 3.25);");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", "t"},
                                                {"key", "rowid"},
                                                {"delete_after_ack", true},
                                                {"schema", {{"n", "string"}, {"u", "string"}}}}));
  EXPECT_EQ(ReadAll(source.get()), std::vector<int64_t>{4});
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 0);
  EXPECT_EQ(stats_.Counters()["deleted_rows"], 4);
}

TEST_F(SqliteArchiveTest, AKeyThatIsNotUniqueRollsBackTheDelete) {
  // Two identical rows share key 3; the page of two rows ends after the first, so the second is
  // never read, yet it has the same values as the archived one.
  ExecSql(path_,
          "CREATE TABLE t (k INTEGER, v TEXT); CREATE INDEX t_k ON t(k);"
          "INSERT INTO t VALUES (2, 'x'), (3, 'y'), (3, 'y');");
  ASSERT_OK_AND_ASSIGN(
      auto source,
      OpenSource({{"table", "t"}, {"key", "k"}, {"delete_after_ack", true}, {"batch_rows", 2}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, source->Next(0));
  ASSERT_EQ(first->num_rows(), 2);
  EXPECT_THAT(source->Commit(0),
              StatusIs(StatusCode::kDataLoss,
                       AllOf(HasSubstr("3 rows matched 2 archived keys"), HasSubstr("rolled back"),
                             HasSubstr("'k' is not unique"))));
  EXPECT_EQ(Count(), 3);
}

TEST_F(SqliteArchiveTest, BusyDatabaseFailsTheCommitRetryably) {
  MakeTable(5);
  ASSERT_OK_AND_ASSIGN(
      auto source,
      OpenSource(
          {{"table", "t"}, {"key", "id"}, {"delete_after_ack", true}, {"busy_timeout", 1000}}));
  ReadAll(source.get());
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_THAT(source->Commit(0), StatusIs(StatusCode::kUnavailable, HasSubstr("locked")));
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  ASSERT_OK(source->Commit(0));  // the keys are kept, so a retry succeeds
  EXPECT_EQ(Count(), 0);
}

TEST_F(SqliteArchiveTest, DryRunDeletesNothing) {
  MakeTable(5);
  ASSERT_OK_AND_ASSIGN(auto source, OpenArchiver(10, "", /*dry_run=*/true));
  ReadAll(source.get());
  ASSERT_OK(source->Commit(0));
  EXPECT_EQ(Count(), 5);
}

TEST_F(SqliteTest, MissingDatabaseFileIsNotFound) {
  EXPECT_THAT(OpenSource({{"table", "t"}}),
              StatusIs(StatusCode::kNotFound, AllOf(HasSubstr("node 'src'"), HasSubstr(path_))));
  EXPECT_FALSE(std::filesystem::exists(path_));  // and was not created
}

TEST_F(SqliteTest, MissingTableIsAConfigErrorWithSqlitesMessage) {
  MakeTable(1);
  EXPECT_THAT(OpenSource({{"table", "nope"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("node 'src'"), HasSubstr("no such table: nope"))));
}

TEST_F(SqliteTest, BadSqlIsAConfigError) {
  MakeTable(1);
  EXPECT_THAT(OpenSource({{"query", "SELEKT 1"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("node 'src'"), HasSubstr("syntax error"))));
  EXPECT_THAT(OpenSource({{"table", "t"}, {"where", "id >"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("WHERE (id >)")));
}

TEST_F(SqliteTest, NonIntegerKeyIsAConfigError) {
  MakeTable(1);
  EXPECT_THAT(OpenSource({{"table", "t"}, {"key", "name"}, {"delete_after_ack", true}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("option 'key'"), HasSubstr("declared TEXT"))));
}

TEST_F(SqliteTest, SchemaNamingAnUnknownColumnIsAConfigError) {
  MakeTable(1);
  EXPECT_THAT(OpenSource({{"table", "t"}, {"schema", {{"nope", "int64"}}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("column 'nope'")));
}

TEST_F(SqliteTest, OptionErrorsNameTheOption) {
  auto make = [&](nlohmann::json o) {
    o["path"] = path_;
    return MakeSqliteSource(NodeOptions::ForTest("src", o)).status();
  };
  EXPECT_THAT(make({}), StatusIs(StatusCode::kConfigError, HasSubstr("option 'table'")));
  EXPECT_THAT(make({{"table", "t"}, {"query", "SELECT 1"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'query'")));
  EXPECT_THAT(make({{"table", "t"}, {"delete_after_ack", true}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'key'")));
  EXPECT_THAT(make({{"query", "SELECT 1"}, {"key", "id"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'key'")));
  EXPECT_THAT(make({{"table", "t"}, {"batch_rows", 0}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'batch_rows'")));
  EXPECT_THAT(make({{"table", "t"}, {"schema", {{"a", "decimal"}}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown type 'decimal'")));
  EXPECT_THAT(MakeSqliteSink(NodeOptions::ForTest("out", {{"path", path_}})).status(),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'table'")));
  EXPECT_THAT(
      MakeSqliteSink(NodeOptions::ForTest(
                         "out", {{"path", path_}, {"table", "t"}, {"synchronous", "sometimes"}}))
          .status(),
      StatusIs(StatusCode::kConfigError, HasSubstr("option 'synchronous'")));
}

TEST_F(SqliteTest, RegistersTheSourceAndTheSink) {
  NodeRegistry registry;
  RegisterSqliteNodes(&registry);
  const NodeTypeInfo* source = registry.Find(kSqliteSourceType);
  const NodeTypeInfo* sink = registry.Resolve(kSqliteSinkType, /*has_inputs=*/true);
  ASSERT_NE(source, nullptr);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(source->kind, NodeKind::kSource);
  EXPECT_EQ(sink->kind, NodeKind::kSink);
}

}  // namespace
}  // namespace sluice
