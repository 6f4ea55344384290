#include "sluice/history/run_history.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "sluice/core/time.h"
#include "sluice/history/history_internal.h"
#include "sluice/testing/matchers.h"

namespace sluice::history {
namespace {

namespace fs = std::filesystem;
using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

/// Return a run of `pipeline` that started `minute` minutes after 2026-11-24 22:00:00 UTC and
/// lasted 10 s.
RunRecord MakeRun(std::string run_id, std::string pipeline, std::string status, int minute) {
  RunRecord r;
  r.run_id = std::move(run_id);
  r.pipeline = std::move(pipeline);
  r.status = std::move(status);
  r.started_at_us =
      *ParseTimestamp("2026-11-24T22:00:00Z") + int64_t{minute} * 60 * kMicrosPerSecond;
  r.ended_at_us = r.started_at_us + 10 * kMicrosPerSecond;
  r.rows = 1000 + minute;
  r.bytes = 50'000 + minute;
  r.report_json = R"({"pipeline":")" + r.pipeline + R"(","run_id":")" + r.run_id + R"("})";
  r.nodes = {{"source", 0, r.rows, 0.5}, {"sink", r.rows, r.rows, 2.25}};
  return r;
}

std::vector<std::string> Ids(const std::vector<RunRecord>& runs) {
  std::vector<std::string> ids;
  ids.reserve(runs.size());
  for (const auto& r : runs) ids.push_back(r.run_id);
  return ids;
}

class SqliteRunHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("sluice_history_{}_{}", info->name(), getpid());
    fs::remove_all(dir_);
    path_ = (dir_ / "state" / "sluice" / "runs.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<RunHistory> Open() {
    auto h = OpenRunHistory(path_);
    EXPECT_OK(h);
    return h.ok() ? std::move(h).ValueOrDie() : nullptr;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(SqliteRunHistoryTest, CreatesParentDirectoriesAndRecordsAndGetsARun) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_EQ(h->description(), path_);
  const RunRecord run = MakeRun("r1", "archive", "ok", 3);
  ASSERT_OK(h->Record(run));
  ASSERT_OK_AND_ASSIGN(RunRecord got, h->Get("r1"));
  EXPECT_EQ(got, run);
  EXPECT_THAT(got.nodes, ElementsAre(NodeRunRecord{"source", 0, 1003, 0.5},
                                     NodeRunRecord{"sink", 1003, 1003, 2.25}));
}

TEST_F(SqliteRunHistoryTest, RecordingTheSameRunIdAgainReplacesIt) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  RunRecord run = MakeRun("r1", "archive", "running", 0);
  ASSERT_OK(h->Record(run));
  run.status = "ok";
  run.rows = 7;
  run.nodes = {{"only", 1, 2, 3.0}};
  ASSERT_OK(h->Record(run));
  ASSERT_OK_AND_ASSIGN(RunRecord got, h->Get("r1"));
  EXPECT_EQ(got, run);
  ASSERT_OK_AND_ASSIGN(auto all, h->List(RunFilter{.limit = 0}));
  EXPECT_EQ(all.size(), 1u);
}

TEST_F(SqliteRunHistoryTest, ListsNewestFirstWithFiltersAndLimitWithoutReports) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  ASSERT_OK(h->Record(MakeRun("a1", "archive", "ok", 1)));
  ASSERT_OK(h->Record(MakeRun("e1", "etl", "failed", 2)));
  ASSERT_OK(h->Record(MakeRun("a3", "archive", "failed", 5)));
  ASSERT_OK(h->Record(MakeRun("a2", "archive", "ok", 3)));
  ASSERT_OK(h->Record(MakeRun("e2", "etl", "ok", 4)));

  ASSERT_OK_AND_ASSIGN(auto all, h->List(RunFilter{.limit = 0}));
  EXPECT_THAT(Ids(all), ElementsAre("a3", "e2", "a2", "e1", "a1"));
  EXPECT_THAT(all[0].report_json, IsEmpty());
  EXPECT_THAT(all[0].nodes, ElementsAre(NodeRunRecord{"source", 0, 1005, 0.5},
                                        NodeRunRecord{"sink", 1005, 1005, 2.25}));
  EXPECT_EQ(all[0].started_at_us, MakeRun("a3", "archive", "failed", 5).started_at_us);

  ASSERT_OK_AND_ASSIGN(auto archive, h->List(RunFilter{.pipeline = "archive", .limit = 0}));
  EXPECT_THAT(Ids(archive), ElementsAre("a3", "a2", "a1"));
  ASSERT_OK_AND_ASSIGN(auto failed, h->List(RunFilter{.status = "failed", .limit = 0}));
  EXPECT_THAT(Ids(failed), ElementsAre("a3", "e1"));
  ASSERT_OK_AND_ASSIGN(auto both,
                       h->List(RunFilter{.pipeline = "archive", .status = "ok", .limit = 0}));
  EXPECT_THAT(Ids(both), ElementsAre("a2", "a1"));
  ASSERT_OK_AND_ASSIGN(auto two, h->List(RunFilter{.limit = 2}));
  EXPECT_THAT(Ids(two), ElementsAre("a3", "e2"));
  ASSERT_OK_AND_ASSIGN(auto none, h->List(RunFilter{.pipeline = "nope"}));
  EXPECT_THAT(none, IsEmpty());
}

TEST_F(SqliteRunHistoryTest, RunsWithTheSameStartAreOrderedByRunIdDescending) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  ASSERT_OK(h->Record(MakeRun("x-1", "p", "ok", 0)));
  ASSERT_OK(h->Record(MakeRun("x-2", "p", "ok", 0)));
  ASSERT_OK_AND_ASSIGN(auto runs, h->List(RunFilter{}));
  EXPECT_THAT(Ids(runs), ElementsAre("x-2", "x-1"));
}

TEST_F(SqliteRunHistoryTest, GetOfAnUnknownRunIsNotFound) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(
      h->Get("2026-01-01T00:00:00-deadbeef"),
      StatusIs(StatusCode::kNotFound, HasSubstr("no run with id '2026-01-01T00:00:00-deadbeef'")));
}

TEST_F(SqliteRunHistoryTest, ReopeningKeepsTheRuns) {
  {
    auto h = Open();
    ASSERT_NE(h, nullptr);
    ASSERT_OK(h->Record(MakeRun("r1", "p", "ok", 0)));
  }
  auto h = Open();
  ASSERT_NE(h, nullptr);
  ASSERT_OK_AND_ASSIGN(RunRecord got, h->Get("r1"));
  EXPECT_EQ(got.pipeline, "p");
}

TEST_F(SqliteRunHistoryTest, TwoHistoriesOnOneFileBothRecordWhileWritingConcurrently) {
  auto first = Open();
  auto second = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  constexpr int kRunsEach = 40;
  auto writer = [](RunHistory* h, const std::string& prefix, std::vector<Status>* out) {
    for (int i = 0; i < kRunsEach; ++i) {
      out->push_back(h->Record(MakeRun(fmt::format("{}-{:02}", prefix, i), prefix, "ok", i)));
    }
  };
  std::vector<Status> first_st, second_st;
  std::thread t1(writer, first.get(), "one", &first_st);
  std::thread t2(writer, second.get(), "two", &second_st);
  t1.join();
  t2.join();
  for (const Status& st : first_st) EXPECT_THAT(st, IsOk());
  for (const Status& st : second_st) EXPECT_THAT(st, IsOk());
  ASSERT_OK_AND_ASSIGN(auto all, first->List(RunFilter{.limit = 0}));
  EXPECT_EQ(all.size(), 2u * kRunsEach);
  ASSERT_OK_AND_ASSIGN(auto two, first->List(RunFilter{.pipeline = "two", .limit = 0}));
  EXPECT_EQ(two.size(), static_cast<size_t>(kRunsEach));
  EXPECT_EQ(two.front().run_id, "two-39");
  EXPECT_EQ(two.front().nodes.size(), 2u);
}

TEST_F(SqliteRunHistoryTest, SeveralHistoriesCreateAFreshFileAtOnce) {
  constexpr int kWriters = 4;
  std::vector<Status> statuses(kWriters);
  std::vector<std::thread> threads;
  threads.reserve(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      auto h = OpenRunHistory(path_);
      statuses[w] =
          h.ok() ? (*h)->Record(MakeRun(fmt::format("w{}", w), "p", "ok", w)) : h.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& st : statuses) EXPECT_THAT(st, IsOk());
  auto h = Open();
  ASSERT_NE(h, nullptr);
  ASSERT_OK_AND_ASSIGN(auto all, h->List(RunFilter{.limit = 0}));
  EXPECT_THAT(Ids(all), ElementsAre("w3", "w2", "w1", "w0"));
}

TEST_F(SqliteRunHistoryTest, UsesWalAndHasTheTwoIndexes) {
  ASSERT_NE(Open(), nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto query = [&](const char* sql) {
    std::vector<std::string> rows;
    sqlite3_exec(
        db, sql,
        [](void* out, int n, char** values, char**) {
          std::string row;
          for (int i = 0; i < n; ++i) row += std::string(i ? "|" : "") + (values[i] ?: "");
          static_cast<std::vector<std::string>*>(out)->push_back(row);
          return 0;
        },
        &rows, nullptr);
    return rows;
  };
  EXPECT_THAT(query("PRAGMA journal_mode"), ElementsAre("wal"));
  EXPECT_THAT(query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                    "'sluice_runs' AND sql IS NOT NULL ORDER BY name"),
              ElementsAre("sluice_runs_pipeline_started_idx", "sluice_runs_status_started_idx"));
  EXPECT_THAT(query("SELECT name FROM pragma_index_info('sluice_runs_status_started_idx') "
                    "ORDER BY seqno"),
              ElementsAre("status", "started_at"));
  EXPECT_THAT(query("SELECT name FROM pragma_index_info('sluice_runs_pipeline_started_idx') "
                    "ORDER BY seqno"),
              ElementsAre("pipeline", "started_at"));
  sqlite3_close(db);
}

TEST_F(SqliteRunHistoryTest, ACorruptFileIsAClearError) {
  fs::create_directories(fs::path(path_).parent_path());
  {
    std::ofstream out(path_, std::ios::binary);
    out << std::string(8192, 'x');
  }
  auto h = OpenRunHistory(path_);
  EXPECT_THAT(h, StatusIs(StatusCode::kIOError, AllOf(HasSubstr(path_), HasSubstr("not a database"),
                                                      HasSubstr("not a usable SQLite database"))));
}

TEST_F(SqliteRunHistoryTest, AnUncreatableDirectoryIsAClearError) {
  fs::create_directories(dir_);
  { std::ofstream(dir_ / "file") << "x"; }
  auto h = OpenRunHistory((dir_ / "file" / "runs.db").string());
  EXPECT_THAT(h, StatusIs(StatusCode::kIOError, HasSubstr("cannot create directory")));
}

TEST(OpenRunHistoryTest, TellsPostgresLocationsFromPaths) {
  EXPECT_TRUE(IsPostgresLocation("postgres://u@h/db"));
  EXPECT_TRUE(IsPostgresLocation("postgresql://h:5432/db?sslmode=disable"));
  EXPECT_TRUE(IsPostgresLocation("host=127.0.0.1 port=5432 dbname=sluice"));
  EXPECT_TRUE(IsPostgresLocation("dbname=sluice"));
  EXPECT_FALSE(IsPostgresLocation("runs.db"));
  EXPECT_FALSE(IsPostgresLocation("/var/lib/sluice/runs.db"));
  EXPECT_FALSE(IsPostgresLocation("/tmp/a=b/runs.db"));
  // Without libpq: the same answers from the DSN's first keyword.
  EXPECT_TRUE(StartsAsKeyValueDsn("host=127.0.0.1 port=5432 dbname=sluice"));
  EXPECT_TRUE(StartsAsKeyValueDsn("dbname=sluice"));
  EXPECT_TRUE(StartsAsKeyValueDsn("  user = me dbname=x"));
  EXPECT_FALSE(StartsAsKeyValueDsn("runs.db"));
  EXPECT_FALSE(StartsAsKeyValueDsn("/tmp/a=b/runs.db"));
  EXPECT_FALSE(StartsAsKeyValueDsn("runs=3.db"));
  EXPECT_FALSE(StartsAsKeyValueDsn("=dbname"));
  EXPECT_THAT(OpenRunHistory(""), StatusIs(StatusCode::kConfigError, HasSubstr("empty")));
}

TEST(DefaultRunHistoryPathTest, PrefersXdgStateHomeThenHome) {
  const char* old_state = std::getenv("XDG_STATE_HOME");
  const std::string saved_state = old_state ? old_state : "";
  setenv("XDG_STATE_HOME", "/state", 1);
  EXPECT_EQ(DefaultRunHistoryPath(), "/state/sluice/runs.db");
  unsetenv("XDG_STATE_HOME");
  const std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
  if (!home.empty()) {
    EXPECT_EQ(DefaultRunHistoryPath(), home + "/.local/state/sluice/runs.db");
  }
  if (old_state != nullptr) setenv("XDG_STATE_HOME", saved_state.c_str(), 1);
}

TEST(RunRecordFromReportTest, ReadsAVersion2Report) {
  const std::string report = R"({
    "version": 2, "pipeline": "archive", "run_id": "r-1", "status": "ok",
    "started_at": "2026-11-24T22:36:40Z", "ended_at": "2026-11-24T22:37:42.5Z",
    "duration_s": 62.5, "rows_read": 1000,
    "nodes": [
      {"id": "src", "kind": "source", "rows_in": 0, "rows_out": 1000, "bytes_out": 4000,
       "busy_s": 1.5},
      {"id": "out", "kind": "sink", "rows_in": 1000, "rows_out": 1000, "bytes_out": 9,
       "busy_s": 60.25}]})";
  ASSERT_OK_AND_ASSIGN(RunRecord r, RunRecordFromReport(report, 0));
  EXPECT_EQ(r.pipeline, "archive");
  EXPECT_EQ(r.run_id, "r-1");
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(r.started_at_us, *ParseTimestamp("2026-11-24T22:36:40Z"));
  EXPECT_EQ(r.ended_at_us, r.started_at_us + 62'500'000);
  EXPECT_EQ(r.rows, 1000);
  EXPECT_EQ(r.bytes, 4000);
  EXPECT_THAT(r.nodes, ElementsAre(NodeRunRecord{"src", 0, 1000, 1.5},
                                   NodeRunRecord{"out", 1000, 1000, 60.25}));
  EXPECT_EQ(r.report_json, report);
}

TEST(RunRecordFromReportTest, AVersion1ReportEndsNow) {
  ASSERT_OK_AND_ASSIGN(
      RunRecord r,
      RunRecordFromReport(
          R"({"pipeline":"p","run_id":"r","status":"failed","duration_s":2.0,"nodes":[]})",
          10'000'000));
  EXPECT_EQ(r.ended_at_us, 10'000'000);
  EXPECT_EQ(r.started_at_us, 8'000'000);
  EXPECT_EQ(r.rows, 0);
}

TEST(RunRecordFromReportTest, RejectsBadReports) {
  EXPECT_THAT(RunRecordFromReport("{", 0),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));
  EXPECT_THAT(RunRecordFromReport(R"({"pipeline":"p","status":"ok"})", 0),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'run_id'")));
  EXPECT_THAT(
      RunRecordFromReport(R"({"pipeline":"p","run_id":"r","status":"ok","started_at":"x"})", 0),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("'started_at'")));
}

TEST(FormatRunListTest, PrintsAnAlignedTable) {
  RunRecord a = MakeRun("2026-11-24T22:05:00-0000abcd", "archive", "ok", 5);
  a.ended_at_us = a.started_at_us + 62 * kMicrosPerSecond;
  a.rows = 1'240'000;
  RunRecord b = MakeRun("r2", "etl", "failed", 1);
  b.ended_at_us = b.started_at_us + 2'500'000;
  b.rows = 5;
  RunRecord c = MakeRun("r3", "etl", "running", 0);
  c.ended_at_us = 0;
  EXPECT_EQ(FormatRunList({a, b, c}),
            "RUN ID                        PIPELINE  STATUS   STARTED (UTC)        DURATION"
            "       ROWS  ROWS/S\n"
            "2026-11-24T22:05:00-0000abcd  archive   ok       2026-11-24 22:05:00     1m02s"
            "  1,240,000  20,000\n"
            "r2                            etl       failed   2026-11-24 22:01:00      2.5s"
            "          5       2\n"
            "r3                            etl       running  2026-11-24 22:00:00         -"
            "      1,000       -\n");
  EXPECT_EQ(FormatRunList({}), "no runs recorded\n");
}

}  // namespace
}  // namespace sluice::history
