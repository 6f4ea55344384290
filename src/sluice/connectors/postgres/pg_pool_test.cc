// PgConnection and PgPool against the server of `scripts/services start`.

#include "sluice/connectors/postgres/pg_pool.h"

#include <chrono>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_test_util.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/testing/matchers.h"

namespace sluice::pg {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

class PgConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = TestDsn();
    ASSERT_FALSE(dsn_.empty());
    ASSERT_OK_AND_ASSIGN(admin_, PgConnection::Connect(dsn_));
  }
  void TearDown() override {
    for (const auto& t : tables_) (void)admin_->Exec("DROP TABLE IF EXISTS " + t + " CASCADE");
  }
  std::string NewTable(const std::string& columns) {
    tables_.push_back(UniqueTableName("conn"));
    EXPECT_THAT(admin_->Exec("CREATE TABLE " + tables_.back() + " (" + columns + ")"), IsOk());
    return tables_.back();
  }
  // Terminate backend `pid` from the admin connection and wait until it is gone.
  void Terminate(int pid) {
    EXPECT_EQ(QueryText(admin_.get(), fmt::format("SELECT pg_terminate_backend({})", pid)), "t");
    for (int i = 0; i < 500; ++i) {
      if (QueryInt(admin_.get(),
                   fmt::format("SELECT count(*) FROM pg_stat_activity WHERE pid = {}", pid)) == 0) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "backend " << pid << " did not exit";
  }

  std::string dsn_;
  std::unique_ptr<PgConnection> admin_;
  std::vector<std::string> tables_;
};

TEST_F(PgConnectionTest, ServerErrorsCarryTheirSqlStateAndClassification) {
  EXPECT_THAT(admin_->Exec("SELECT * FROM sluice_no_such_table"),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("relation \"sluice_no_such_table\" does not exist"),
                             HasSubstr("[SQLSTATE 42P01]"))));
  EXPECT_THAT(admin_->Exec("SELEC 1"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("[SQLSTATE 42601]")));
  const std::string t = NewTable("id int PRIMARY KEY");
  ASSERT_THAT(admin_->Exec("INSERT INTO " + t + " VALUES (1)"), IsOk());
  auto dup = admin_->Exec("INSERT INTO " + t + " VALUES (1)");
  EXPECT_THAT(dup, StatusIs(StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("duplicate key"), HasSubstr("Key (id)=(1)"))));
  EXPECT_EQ(SqlState(dup.status()), "23505");
  // The connection stays usable after a failed statement.
  EXPECT_EQ(QueryInt(admin_.get(), "SELECT count(*) FROM " + t), 1);
}

TEST_F(PgConnectionTest, StatementTimeoutIsATimeout) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  ASSERT_THAT(conn->SetStatementTimeout(100), IsOk());
  const auto start = std::chrono::steady_clock::now();
  auto r = conn->Exec("SELECT pg_sleep(5)");
  EXPECT_THAT(r, StatusIs(StatusCode::kTimeout, HasSubstr("statement timeout")));
  EXPECT_EQ(SqlState(r.status()), "57014");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(QueryText(conn.get(), "SHOW statement_timeout"), "100ms");
}

TEST_F(PgConnectionTest, PreparedStatementsAndParameters) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  ASSERT_THAT(conn->Prepare("add", "SELECT $1::int8 + $2::int8"), IsOk());
  EXPECT_TRUE(conn->IsPrepared("add"));
  ASSERT_OK_AND_ASSIGN(PgResult r, conn->ExecPrepared("add", {"40", "2"}));
  EXPECT_EQ(r.Value(0, 0), "42");
  ASSERT_OK_AND_ASSIGN(PgResult n, conn->ExecParams("SELECT $1::text IS NULL", {std::nullopt}));
  EXPECT_EQ(n.Value(0, 0), "t");
  const std::string t = NewTable("id int8");
  ASSERT_OK_AND_ASSIGN(
      PgResult ins,
      conn->ExecParams("INSERT INTO " + t + " SELECT generate_series(1, $1::int)", {"7"}));
  EXPECT_EQ(ins.AffectedRows(), 7);
  ASSERT_OK_AND_ASSIGN(
      PgResult del,
      conn->ExecParams("DELETE FROM " + t + " WHERE id = ANY($1::int8[])", {"{1,2,3,99}"}));
  EXPECT_EQ(del.AffectedRows(), 3);
}

TEST_F(PgConnectionTest, TransactionsCommitAndRollBack) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  const std::string t = NewTable("id int");
  ASSERT_THAT(conn->Begin(), IsOk());
  EXPECT_TRUE(conn->InTransaction());
  EXPECT_FALSE(conn->IsHealthy());  // not reusable mid-transaction
  ASSERT_THAT(conn->Exec("INSERT INTO " + t + " VALUES (1)"), IsOk());
  ASSERT_THAT(conn->Rollback(), IsOk());
  ASSERT_THAT(conn->Begin(), IsOk());
  ASSERT_THAT(conn->Exec("INSERT INTO " + t + " VALUES (2)"), IsOk());
  ASSERT_THAT(conn->Commit(), IsOk());
  EXPECT_FALSE(conn->InTransaction());
  EXPECT_TRUE(conn->IsHealthy());
  EXPECT_EQ(QueryText(admin_.get(), "SELECT string_agg(id::text, ',') FROM " + t), "2");
}

TEST_F(PgConnectionTest, BinaryCopyInAndOutUseTheCodecs) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  const std::string t = NewTable("id int8, name text, at timestamptz");
  auto schema =
      MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}, {"at", TypeId::kTimestamp}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([[1, "a", "1999-12-31T23:59:59.5Z"],
                                                 [2, null, null]])"));
  ASSERT_OK_AND_ASSIGN(
      CopyBinaryEncoder encoder,
      CopyBinaryEncoder::Make(schema, {PgCodec::kInt8, PgCodec::kText, PgCodec::kTimestampTz}));
  std::string data;
  CopyBinaryEncoder::AppendHeader(&data);
  ASSERT_THAT(encoder.AppendRows(*batch, 0, 2, &data), IsOk());
  CopyBinaryEncoder::AppendTrailer(&data);
  ASSERT_OK_AND_ASSIGN(int64_t rows,
                       conn->CopyIn("COPY " + t + " FROM STDIN (FORMAT binary)", data));
  EXPECT_EQ(rows, 2);
  EXPECT_EQ(QueryText(admin_.get(), "SELECT at AT TIME ZONE 'UTC' FROM " + t + " WHERE id = 1"),
            "1999-12-31 23:59:59.5");

  ASSERT_THAT(conn->BeginCopyOut("COPY " + t + " TO STDOUT (FORMAT binary)"), IsOk());
  CopyBinaryDecoder decoder(schema, encoder.targets());
  std::vector<ColumnBuilder> builders;
  for (const Field& f : schema->fields()) builders.emplace_back(f.type);
  int64_t decoded = 0;
  for (;;) {
    std::string_view chunk;
    ASSERT_OK_AND_ASSIGN(bool more, conn->ReadCopyData(&chunk));
    if (!more) break;
    ASSERT_THAT(decoder.Consume(chunk, &builders, &decoded), IsOk());
  }
  EXPECT_TRUE(decoder.finished());
  std::vector<Column> columns;
  columns.reserve(builders.size());
  for (auto& b : builders) columns.push_back(b.Finish());
  ASSERT_OK_AND_ASSIGN(BatchPtr back, Batch::Make(schema, std::move(columns)));
  EXPECT_EQ(back->ToString(), batch->ToString());
}

TEST_F(PgConnectionTest, BinaryResultsDecodeWithResolvedColumns) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  ASSERT_OK_AND_ASSIGN(
      PgResult r,
      conn->ExecParams("SELECT 7::int2 AS a, 1.25::numeric AS n, 'x'::varchar AS v, "
                       "'{\"k\":1}'::jsonb AS j, ST_SetSRID(ST_MakePoint(1, 2), 4326) AS g, "
                       "NULL::uuid AS u, '2001-02-03'::date AS d WHERE $1",
                       {"true"}, PgFormat::kBinary));
  ASSERT_OK_AND_ASSIGN(std::vector<PgColumn> columns, ResolveColumns(conn.get(), r));
  ASSERT_EQ(columns.size(), 7u);
  EXPECT_EQ(columns[4].type_name, "geometry");
  std::vector<PgCodec> codecs;
  std::vector<Field> fields;
  std::vector<ColumnBuilder> builders;
  for (const PgColumn& c : columns) {
    ASSERT_TRUE(c.codec.has_value()) << c.name;
    codecs.push_back(*c.codec);
    fields.push_back({c.name, DefaultTypeFor(*c.codec)});
    builders.emplace_back(fields.back().type);
  }
  std::string scratch;
  ASSERT_THAT(AppendResultRows(r, codecs, &builders, &scratch), IsOk());
  std::vector<Column> cols;
  cols.reserve(builders.size());
  for (auto& b : builders) cols.push_back(b.Finish());
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, Batch::Make(MakeSchema(fields), std::move(cols)));
  EXPECT_EQ(batch->ToString(),
            R"([[7,"1.25","x","{\"k\": 1}","0101000020e6100000000000000000f03f0000000000000040",)"
            R"(null,"2001-02-03"]])");
  ASSERT_OK_AND_ASSIGN(Oid geometry, LookupTypeOid(conn.get(), "geometry"));
  EXPECT_EQ(geometry, columns[4].oid);
  EXPECT_THAT(LookupTypeOid(conn.get(), "sluice_no_such_type"),
              StatusIs(StatusCode::kNotFound, HasSubstr("sluice_no_such_type")));
}

TEST_F(PgConnectionTest, ConnectionKilledMidCopyInIsRetryableUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  const std::string t = NewTable("id int8");
  ASSERT_THAT(conn->BeginCopyIn("COPY " + t + " FROM STDIN (FORMAT binary)"), IsOk());
  std::string data;
  CopyBinaryEncoder::AppendHeader(&data);
  ASSERT_THAT(conn->PutCopyData(data), IsOk());
  Terminate(conn->backend_pid());
  // The next writes may still land in the socket buffer; the end of the COPY cannot succeed.
  ASSERT_OK_AND_ASSIGN(BatchPtr rows,
                       BatchFromJson(MakeSchema({{"id", TypeId::kInt64}}), "[[1], [2], [3]]"));
  ASSERT_OK_AND_ASSIGN(CopyBinaryEncoder encoder,
                       CopyBinaryEncoder::Make(rows->schema(), {PgCodec::kInt8}));
  data.clear();
  ASSERT_THAT(encoder.AppendRows(*rows, 0, 3, &data), IsOk());
  CopyBinaryEncoder::AppendTrailer(&data);
  Status st = conn->PutCopyData(data);
  if (st.ok()) st = conn->EndCopyIn().status();
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable, HasSubstr("PostgreSQL at")));
  EXPECT_TRUE(st.IsRetryable());
  EXPECT_THAT(SqlState(st), AnyOf("57P01", "08006"));
  EXPECT_FALSE(conn->IsHealthy());
  EXPECT_EQ(QueryInt(admin_.get(), "SELECT count(*) FROM " + t), 0);
}

TEST_F(PgConnectionTest, ConnectionKilledWhileIdleIsNoticedWithoutARoundTrip) {
  ASSERT_OK_AND_ASSIGN(auto conn, PgConnection::Connect(dsn_));
  EXPECT_TRUE(conn->IsHealthy());
  Terminate(conn->backend_pid());
  EXPECT_FALSE(conn->IsHealthy());
  EXPECT_THAT(conn->Ping(), StatusIs(StatusCode::kUnavailable, ::testing::_));
}

TEST_F(PgConnectionTest, WrongDatabaseIsNotFoundAndWrongUserPermissionDenied) {
  EXPECT_THAT(PgConnection::Connect(dsn_ + " dbname=sluice_no_such_db"),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("sluice_no_such_db"), HasSubstr("[SQLSTATE 3D000]"))));
  EXPECT_THAT(PgConnection::Connect(dsn_ + " user=sluice_no_such_role"),
              StatusIs(StatusCode::kPermissionDenied, HasSubstr("[SQLSTATE 28000]")));
}

class PgPoolTest : public PgConnectionTest {};

TEST_F(PgPoolTest, ReusesIdleConnections) {
  ASSERT_OK_AND_ASSIGN(auto pool, PgPool::Make(dsn_, PgPoolOptions{}));
  int pid = 0;
  {
    ASSERT_OK_AND_ASSIGN(PgLease lease, pool->Acquire());
    pid = lease->backend_pid();
  }
  ASSERT_OK_AND_ASSIGN(PgLease again, pool->Acquire());
  EXPECT_EQ(again->backend_pid(), pid);
  const PgPoolStats stats = pool->stats();
  EXPECT_EQ(stats.connects, 1);
  EXPECT_EQ(stats.reuses, 1);
  EXPECT_EQ(stats.leased, 1);
}

TEST_F(PgPoolTest, NeverOpensMoreThanMaxSizeUnderConcurrency) {
  PgPoolOptions options;
  options.max_size = 3;
  ASSERT_OK_AND_ASSIGN(auto pool, PgPool::Make(dsn_, options));
  std::atomic<int> leased{0};
  std::atomic<int> most{0};
  std::mutex mu;
  std::set<int> pids;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto lease = pool->Acquire();
        if (!lease.ok()) {
          ++failures;
          continue;
        }
        const int now = ++leased;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          pids.insert((*lease)->backend_pid());
        }
        if (!(*lease)->Exec("SELECT pg_sleep(0.01)").ok()) ++failures;
        --leased;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 2);
  EXPECT_LE(pids.size(), 3u);
  const PgPoolStats stats = pool->stats();
  EXPECT_LE(stats.connects, 3);
  EXPECT_EQ(stats.leased, 0);
  EXPECT_EQ(stats.connects + stats.reuses, 40);
}

TEST_F(PgPoolTest, AcquireTimesOutWhenEveryConnectionIsLeased) {
  PgPoolOptions options;
  options.max_size = 1;
  options.acquire_timeout_us = 200'000;
  ASSERT_OK_AND_ASSIGN(auto pool, PgPool::Make(dsn_, options));
  ASSERT_OK_AND_ASSIGN(PgLease held, pool->Acquire());
  EXPECT_THAT(pool->Acquire(),
              StatusIs(StatusCode::kTimeout, HasSubstr("all 1 pooled connections stayed busy")));
  // A connection coming back wakes a waiter.
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    held.Release();
  });
  EXPECT_THAT(pool->Acquire(), IsOk());
  releaser.join();
}

TEST_F(PgPoolTest, ReplacesAConnectionTheServerEnded) {
  ASSERT_OK_AND_ASSIGN(auto pool, PgPool::Make(dsn_, PgPoolOptions{}));
  int pid = 0;
  {
    ASSERT_OK_AND_ASSIGN(PgLease lease, pool->Acquire());
    pid = lease->backend_pid();
  }
  Terminate(pid);
  ASSERT_OK_AND_ASSIGN(PgLease lease, pool->Acquire());
  EXPECT_NE(lease->backend_pid(), pid);
  EXPECT_THAT(lease->Ping(), IsOk());
  EXPECT_EQ(pool->stats().discarded, 1);
  EXPECT_EQ(pool->stats().connects, 2);
}

TEST_F(PgPoolTest, DiscardsConnectionsLeftInATransactionOrPastTheirLimits) {
  FakeClock clock(1'000'000);
  PgPoolOptions options;
  options.min_size = 1;
  options.max_idle_us = 10'000'000;
  options.max_lifetime_us = 60'000'000;
  options.clock = &clock;
  ASSERT_OK_AND_ASSIGN(auto pool, PgPool::Make(dsn_, options));
  EXPECT_EQ(pool->stats().idle, 1);  // min_size opened up front
  {
    ASSERT_OK_AND_ASSIGN(PgLease lease, pool->Acquire());
    ASSERT_THAT(lease->Begin(), IsOk());  // returned mid-transaction: closed, not reused
  }
  EXPECT_EQ(pool->stats().discarded, 1);
  EXPECT_EQ(pool->stats().open, 0);
  {
    ASSERT_OK_AND_ASSIGN(PgLease a, pool->Acquire());
    ASSERT_OK_AND_ASSIGN(PgLease b, pool->Acquire());
  }
  EXPECT_EQ(pool->stats().idle, 2);
  // Idle past max_idle: closed down to min_size on the next checkout.
  clock.Advance(11'000'000);
  { ASSERT_OK_AND_ASSIGN(PgLease c, pool->Acquire()); }
  EXPECT_EQ(pool->stats().open, 1);
  // Past max_lifetime: closed on its return and on checkout.
  clock.Advance(60'000'000);
  ASSERT_OK_AND_ASSIGN(PgLease d, pool->Acquire());
  EXPECT_EQ(pool->stats().connects, 4);
}

TEST_F(PgPoolTest, ForDsnSharesOnePoolPerDatabase) {
  PgPoolOptions small;
  small.max_size = 1;
  ASSERT_OK_AND_ASSIGN(auto a, PgPool::ForDsn(dsn_, small));
  PgPoolOptions large;
  large.max_size = 2;
  ASSERT_OK_AND_ASSIGN(auto b, PgPool::ForDsn(dsn_, large));
  EXPECT_EQ(a.get(), b.get());
  // max_size grew to 2: two leases at once.
  ASSERT_OK_AND_ASSIGN(PgLease first, a->Acquire());
  ASSERT_OK_AND_ASSIGN(PgLease second, b->Acquire());
  EXPECT_EQ(a->stats().leased, 2);
  ASSERT_OK_AND_ASSIGN(auto other, PgPool::ForDsn(dsn_ + " application_name=other", small));
  EXPECT_NE(other.get(), a.get());
}

TEST_F(PgPoolTest, UnreachableServerFailsWithinTheConnectTimeout) {
  PgPoolOptions options;
  options.min_size = 1;
  options.connect_timeout_us = 1'000'000;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(PgPool::Make("host=127.0.0.1 port=1 user=u password=hunter22 dbname=d", options),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("u@127.0.0.1:1/d"), ::testing::Not(HasSubstr("hunter22")))));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace sluice::pg
