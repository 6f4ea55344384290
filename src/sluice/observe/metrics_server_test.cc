#include "sluice/observe/metrics_server.h"

#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "sluice/observe/metrics.h"
#include "sluice/testing/matchers.h"

namespace sluice::observe {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsServerTest, ServesMetricsAndRunJson) {
  MetricsRegistry registry;
  registry.GetCounter("sluice_node_rows_in_total", "Rows.", {{"node", "src"}}).Add(42);
  MetricsRoutes routes;
  routes.metrics_text = [&] { return registry.PrometheusText(); };
  routes.run_json = [] { return std::string(R"({"pipeline":"p1","status":"running"})"); };
  ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1:0", routes));
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->host(), "127.0.0.1");

  httplib::Client client("127.0.0.1", server->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->get_header_value("Content-Type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(metrics->body, HasSubstr("sluice_node_rows_in_total{node=\"src\"} 42\n"));

  auto run = client.Get("/api/v1/run");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->status, 200);
  EXPECT_EQ(run->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(run->body, R"({"pipeline":"p1","status":"running"})");

  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  // Scrapes see live values.
  registry.GetCounter("sluice_node_rows_in_total", "Rows.", {{"node", "src"}}).Add(1);
  auto again = client.Get("/metrics");
  ASSERT_TRUE(again);
  EXPECT_THAT(again->body, HasSubstr("sluice_node_rows_in_total{node=\"src\"} 43\n"));
}

TEST(MetricsServerTest, AnUnsetRouteIsNotFoundAndAThrowingOneIs500) {
  MetricsRoutes routes;
  routes.run_json = []() -> std::string { throw std::runtime_error("run state unavailable"); };
  ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1:0", routes));
  httplib::Client client("127.0.0.1", server->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 404);
  auto run = client.Get("/api/v1/run");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->status, 500);
  EXPECT_THAT(run->body, HasSubstr("run state unavailable"));
}

TEST(MetricsServerTest, StopIsIdempotentAndClosesThePort) {
  MetricsRoutes routes;
  routes.metrics_text = [] { return std::string("x 1\n"); };
  ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1:0", routes));
  const int port = server->port();
  server->Stop();
  server->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  EXPECT_FALSE(client.Get("/metrics"));
  // The port is free again: a new server can take it.
  ASSERT_OK_AND_ASSIGN(auto second,
                       MetricsServer::Start("127.0.0.1:" + std::to_string(port), routes));
  EXPECT_EQ(second->port(), port);
}

TEST(MetricsServerTest, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1:0", MetricsRoutes{}));
  }
}

TEST(MetricsServerTest, APortInUseIsAClearError) {
  ASSERT_OK_AND_ASSIGN(auto first, MetricsServer::Start("127.0.0.1:0", MetricsRoutes{}));
  const std::string listen = "127.0.0.1:" + std::to_string(first->port());
  auto second = MetricsServer::Start(listen, MetricsRoutes{});
  EXPECT_THAT(second, StatusIs(StatusCode::kIOError, HasSubstr("cannot listen on '" + listen +
                                                               "': Address already in use")));
}

TEST(MetricsServerTest, RejectsMalformedListenAddresses) {
  for (const std::string listen :
       {"", "localhost", "127.0.0.1:", ":9464", "127.0.0.1:abc", "127.0.0.1:70000", "127.0.0.1:-1",
        "127.0.0.1:+80", "127.0.0.1:9464x", "127.0.0.1:123456"}) {
    auto server = MetricsServer::Start(listen, MetricsRoutes{});
    EXPECT_THAT(server, StatusIs(StatusCode::kInvalidArgument,
                                 ::testing::AllOf(HasSubstr("'" + listen + "'"),
                                                  HasSubstr("expected host:port"))))
        << listen;
  }
  EXPECT_THAT(MetricsServer::Start("::1:9464", MetricsRoutes{}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("[::1]:9464")));
}

TEST(ParseListenAddressTest, SplitsHostAndPort) {
  ASSERT_OK_AND_ASSIGN(auto v4, ParseListenAddress("127.0.0.1:9464"));
  EXPECT_EQ(v4, std::make_pair(std::string("127.0.0.1"), 9464));
  ASSERT_OK_AND_ASSIGN(auto v6, ParseListenAddress("[::1]:0"));
  EXPECT_EQ(v6, std::make_pair(std::string("::1"), 0));
  ASSERT_OK_AND_ASSIGN(auto name, ParseListenAddress("localhost:65535"));
  EXPECT_EQ(name, std::make_pair(std::string("localhost"), 65535));
}

}  // namespace
}  // namespace sluice::observe
