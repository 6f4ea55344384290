#include "sluice/engine/channel.h"

#include <thread>

#include <gtest/gtest.h>

namespace sluice {
namespace {

Message MakeMessage(int64_t rows) {
  ColumnBuilder b(TypeId::kInt64);
  for (int64_t i = 0; i < rows; ++i) b.AppendInt64(i);
  Message m;
  m.batch = Batch::MakeUnchecked(MakeSchema({{"x", TypeId::kInt64}}), {b.Finish()}, rows);
  return m;
}

TEST(ChannelTest, BoundedByBytesAdmitsOversizedIntoEmpty) {
  Channel ch(100, 1000, 1);
  int64_t blocked = 0;
  ASSERT_TRUE(ch.Push(MakeMessage(500), &blocked));  // 4000 bytes > bound, but channel empty
  EXPECT_EQ(ch.depth(), 1u);
  std::thread consumer([&] {
    auto m = ch.Pop();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->seq, 0u);
  });
  ASSERT_TRUE(ch.Push(MakeMessage(10), &blocked));  // waits until the consumer drains
  consumer.join();
  ch.ProducerDone();
  auto last = ch.Pop();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->seq, 1u);
  EXPECT_FALSE(ch.Pop().has_value());
}

TEST(ChannelTest, CancelWakesBlockedProducer) {
  Channel ch(1, 0, 1);
  int64_t blocked = 0;
  ASSERT_TRUE(ch.Push(MakeMessage(1), &blocked));
  std::thread producer([&] { EXPECT_FALSE(ch.Push(MakeMessage(1), &blocked)); });
  ch.Cancel();
  producer.join();
  EXPECT_FALSE(ch.Pop().has_value());
}

}  // namespace
}  // namespace sluice
