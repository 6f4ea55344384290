// The per-row loop a person would write to enrich readings from PostgreSQL, the peer of
// bench/lookup: read the readings CSV (as sluice's file sink writes it, with a header) and, for
// each reading, run one prepared `SELECT region, tariff, capacity_kw FROM meters WHERE id = $1`
// through libpq, then write the reading with the three columns added (empty when the meter is
// unknown or the column null).
//
//   lookup_peer DSN READINGS.csv ROWS [OUT.csv]
//
// Reads at most ROWS readings; prints "<readings> <found>" to stdout. Exit 1 on any error.
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

namespace {

struct PgConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;
using PgResult = std::unique_ptr<PGresult, PgResultCloser>;

int Fail(const std::string& what) {
  std::cerr << "lookup_peer: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: lookup_peer DSN READINGS.csv ROWS [OUT.csv]\n";
    return 2;
  }
  const long long max_rows = std::atoll(argv[3]);
  std::ifstream in(argv[2]);
  if (!in) return Fail(std::string("cannot read ") + argv[2]);
  std::ofstream out;
  if (argc == 5) {
    out.open(argv[4]);
    if (!out) return Fail(std::string("cannot write ") + argv[4]);
  }

  PgConn conn(PQconnectdb(argv[1]));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Fail(std::string("connecting: ") + PQerrorMessage(conn.get()));
  }
  PgResult prepared(PQprepare(conn.get(), "meter",
                              "SELECT region, tariff, capacity_kw FROM meters WHERE id = $1", 1,
                              nullptr));
  if (PQresultStatus(prepared.get()) != PGRES_COMMAND_OK) {
    return Fail(std::string("preparing: ") + PQerrorMessage(conn.get()));
  }

  std::string line;
  if (!std::getline(in, line)) return Fail("empty CSV (no header)");
  if (out.is_open()) out << line << ",region,tariff,capacity_kw\n";
  long long rows = 0, found = 0;
  while (rows < max_rows && std::getline(in, line)) {
    // The meter id is the first field; sluice writes ids like m-000001 without quotes.
    const std::string meter = line.substr(0, line.find(','));
    const char* params[] = {meter.c_str()};
    PgResult r(PQexecPrepared(conn.get(), "meter", 1, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      return Fail("row " + std::to_string(rows + 1) + ": " + PQerrorMessage(conn.get()));
    }
    ++rows;
    const bool hit = PQntuples(r.get()) > 0;
    found += hit ? 1 : 0;
    if (out.is_open()) {
      out << line;
      for (int c = 0; c < 3; ++c) {
        out << ',';
        if (hit && !PQgetisnull(r.get(), 0, c)) out << PQgetvalue(r.get(), 0, c);
      }
      out << '\n';
    }
  }
  if (in.bad()) return Fail(std::string("reading ") + argv[2]);
  if (out.is_open() && !out.flush()) return Fail(std::string("writing ") + argv[4]);
  std::cout << rows << " " << found << "\n";
  return 0;
}
