// Against the PostgreSQL of `scripts/services start` ($SLUICE_PG_DSN). Each test works in a
// schema of its own (through the DSN's search_path), dropped at the end, so reruns and
// concurrent test processes do not collide.

#include <thread>

#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_test_util.h"
#include "sluice/core/time.h"
#include "sluice/history/run_history.h"
#include "sluice/testing/matchers.h"

namespace sluice::history {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

RunRecord MakeRun(std::string run_id, std::string pipeline, std::string status, int minute) {
  RunRecord r;
  r.run_id = std::move(run_id);
  r.pipeline = std::move(pipeline);
  r.status = std::move(status);
  // A µs fraction, to check timestamps survive timestamptz exactly.
  r.started_at_us =
      *ParseTimestamp("2026-11-24T22:00:00.123456Z") + int64_t{minute} * 60 * kMicrosPerSecond;
  r.ended_at_us = r.started_at_us + 10 * kMicrosPerSecond + 7;
  r.rows = 1000 + minute;
  r.bytes = 50'000 + minute;
  r.report_json = R"({"pipeline": ")" + r.pipeline + R"(",  "run_id":")" + r.run_id + R"("})";
  r.nodes = {{"source", 0, r.rows, 0.5}, {"sink", r.rows, r.rows, 2.25}};
  return r;
}

std::vector<std::string> Ids(const std::vector<RunRecord>& runs) {
  std::vector<std::string> ids;
  ids.reserve(runs.size());
  for (const auto& r : runs) ids.push_back(r.run_id);
  return ids;
}

class PgRunHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_dsn_ = pg::TestDsn();
    ASSERT_FALSE(base_dsn_.empty());
    auto conn = pg::PgConnection::Connect(base_dsn_);
    ASSERT_OK(conn);
    admin_ = std::move(conn).ValueOrDie();
    schema_ = pg::UniqueTableName("history");
    ASSERT_OK(admin_->Exec("CREATE SCHEMA " + schema_));
    dsn_ = base_dsn_ + " options='-csearch_path=" + schema_ + "'";
  }
  void TearDown() override {
    if (admin_ != nullptr) EXPECT_OK(admin_->Exec("DROP SCHEMA " + schema_ + " CASCADE"));
  }

  std::unique_ptr<RunHistory> Open() {
    auto h = OpenRunHistory(dsn_);
    EXPECT_OK(h);
    return h.ok() ? std::move(h).ValueOrDie() : nullptr;
  }

  std::string base_dsn_;
  std::string dsn_;
  std::string schema_;
  std::unique_ptr<pg::PgConnection> admin_;
};

TEST_F(PgRunHistoryTest, RecordsAndGetsARunExactly) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(h->description(), HasSubstr("postgresql"));
  const RunRecord run = MakeRun("r1", "archive", "ok", 3);
  ASSERT_OK(h->Record(run));
  ASSERT_OK_AND_ASSIGN(RunRecord got, h->Get("r1"));
  EXPECT_EQ(got, run);
  EXPECT_EQ(pg::QueryText(admin_.get(),
                          "SELECT started_at AT TIME ZONE 'UTC' FROM " + schema_ + ".sluice_runs"),
            "2026-11-24 22:03:00.123456");
}

TEST_F(PgRunHistoryTest, RecordingTheSameRunIdAgainReplacesIt) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  RunRecord run = MakeRun("r1", "archive", "running", 0);
  run.report_json.clear();
  ASSERT_OK(h->Record(run));
  run = MakeRun("r1", "archive", "ok", 0);
  run.nodes = {{"only", 1, 2, 3.0}};
  ASSERT_OK(h->Record(run));
  ASSERT_OK_AND_ASSIGN(RunRecord got, h->Get("r1"));
  EXPECT_EQ(got, run);
}

TEST_F(PgRunHistoryTest, ListsNewestFirstWithFiltersAndLimitWithoutReports) {
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
  ASSERT_OK_AND_ASSIGN(auto archive, h->List(RunFilter{.pipeline = "archive", .limit = 0}));
  EXPECT_THAT(Ids(archive), ElementsAre("a3", "a2", "a1"));
  ASSERT_OK_AND_ASSIGN(auto failed, h->List(RunFilter{.status = "failed"}));
  EXPECT_THAT(Ids(failed), ElementsAre("a3", "e1"));
  ASSERT_OK_AND_ASSIGN(auto both, h->List(RunFilter{.pipeline = "archive", .status = "ok"}));
  EXPECT_THAT(Ids(both), ElementsAre("a2", "a1"));
  ASSERT_OK_AND_ASSIGN(auto two, h->List(RunFilter{.limit = 2}));
  EXPECT_THAT(Ids(two), ElementsAre("a3", "e2"));
  EXPECT_EQ(two[1].nodes.size(), 2u);
}

TEST_F(PgRunHistoryTest, GetOfAnUnknownRunIsNotFound) {
  auto h = Open();
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(h->Get("missing-run"),
              StatusIs(StatusCode::kNotFound, HasSubstr("no run with id 'missing-run'")));
}

TEST_F(PgRunHistoryTest, TwoHistoriesOpenAndRecordConcurrently) {
  constexpr int kRunsEach = 20;
  std::vector<Status> statuses[2];
  auto worker = [&](int w) {
    auto h = OpenRunHistory(dsn_);  // both create the tables at once
    if (!h.ok()) {
      statuses[w].push_back(h.status());
      return;
    }
    for (int i = 0; i < kRunsEach; ++i) {
      statuses[w].push_back(
          (*h)->Record(MakeRun(fmt::format("w{}-{:02}", w, i), fmt::format("p{}", w), "ok", i)));
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  for (const auto& list : statuses) {
    for (const Status& st : list) EXPECT_THAT(st, IsOk());
  }
  auto h = Open();
  ASSERT_NE(h, nullptr);
  ASSERT_OK_AND_ASSIGN(auto all, h->List(RunFilter{.limit = 0}));
  EXPECT_EQ(all.size(), 2u * kRunsEach);
}

TEST_F(PgRunHistoryTest, HasTheTwoIndexes) {
  ASSERT_NE(Open(), nullptr);
  auto r = admin_->Exec(
      "SELECT indexname || ': ' || regexp_replace(indexdef, '^.* USING btree ', '') FROM "
      "pg_indexes WHERE schemaname = '" +
      schema_ + "' AND tablename = 'sluice_runs' AND indexname LIKE '%started%' ORDER BY 1");
  ASSERT_OK(r);
  std::vector<std::string> rows;
  rows.reserve(static_cast<size_t>(r->num_rows()));
  for (int i = 0; i < r->num_rows(); ++i) rows.emplace_back(r->Value(i, 0));
  EXPECT_THAT(rows, ElementsAre("sluice_runs_pipeline_started_idx: (pipeline, started_at)",
                                "sluice_runs_status_started_idx: (status, started_at)"));
}

TEST_F(PgRunHistoryTest, OpensAPostgresqlUri) {
  const char* port = std::getenv("SLUICE_PG_PORT");
  ASSERT_NE(port, nullptr) << "SLUICE_PG_PORT is not set: run `scripts/services start`";
  auto h = OpenRunHistory(fmt::format(
      "postgresql://postgres@127.0.0.1:{}/sluice?options=-csearch_path%3D{}", port, schema_));
  ASSERT_OK(h);
  ASSERT_OK((*h)->Record(MakeRun("u1", "p", "ok", 0)));
  EXPECT_EQ(pg::QueryInt(admin_.get(), "SELECT count(*) FROM " + schema_ + ".sluice_runs"), 1);
}

TEST(PgRunHistoryErrorsTest, AnUnreachableServerIsUnavailable) {
  auto h = OpenRunHistory("host=127.0.0.1 port=1 dbname=sluice user=postgres connect_timeout=5");
  EXPECT_THAT(h, AnyOf(StatusIs(StatusCode::kUnavailable, HasSubstr("127.0.0.1")),
                       StatusIs(StatusCode::kTimeout, HasSubstr("127.0.0.1"))));
}

}  // namespace
}  // namespace sluice::history
