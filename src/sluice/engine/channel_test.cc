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

Message Marker(int64_t watermark, int input = 0) {
  Message m = Message::Watermark(watermark);
  m.input = input;
  return m;
}

TEST(ChannelTest, WatermarksTakeNoRoomKeepTheirPlaceAndCoalescePerInput) {
  Channel ch(1, 0, 1);
  int64_t blocked = 0;
  ASSERT_TRUE(ch.Push(MakeMessage(1), &blocked));
  // The channel is full (one batch), yet markers go in at once, behind the batch.
  ASSERT_TRUE(ch.Push(Marker(10), &blocked));
  ASSERT_TRUE(ch.Push(Marker(20), &blocked));     // replaces 10: same input, at the back
  ASSERT_TRUE(ch.Push(Marker(15, 1), &blocked));  // another input: its own marker
  ASSERT_TRUE(ch.Push(Marker(30, 1), &blocked));  // replaces 15
  EXPECT_EQ(blocked, 0);
  EXPECT_EQ(ch.depth(), 1u) << "depth counts batches only";
  ch.ProducerDone();
  auto a = ch.Pop();
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->is_watermark());
  auto b = ch.Pop();
  ASSERT_TRUE(b.has_value() && b->is_watermark());
  EXPECT_EQ(b->watermark, 20);
  EXPECT_EQ(b->input, 0);
  auto c = ch.Pop();
  ASSERT_TRUE(c.has_value() && c->is_watermark());
  EXPECT_EQ(c->watermark, 30);
  EXPECT_EQ(c->input, 1);
  EXPECT_FALSE(ch.Pop().has_value());
}

TEST(ChannelTest, AWatermarkNeverOvertakesABatchPushedBeforeIt) {
  Channel ch(8, 0, 1);
  int64_t blocked = 0;
  ASSERT_TRUE(ch.Push(Marker(5), &blocked));
  ASSERT_TRUE(ch.Push(MakeMessage(2), &blocked));
  ASSERT_TRUE(ch.Push(Marker(9), &blocked));  // not merged into 5: a batch lies between
  ch.ProducerDone();
  std::vector<int64_t> order;  // -1 for the batch
  while (auto m = ch.Pop()) order.push_back(m->is_watermark() ? m->watermark : -1);
  EXPECT_EQ(order, (std::vector<int64_t>{5, -1, 9}));
}

TEST(ChannelTest, AClaimedMessageIsNumberedInLineWithTheQueuedOnes) {
  // Two batches fit; the third is claimed (not queued) and numbered after them, a marker
  // after it, a marker replacing that marker keeps its number, and the next batch follows.
  Channel ch(2, 0, 1);
  int64_t blocked = 0;
  Message a = MakeMessage(1), b = MakeMessage(1), c = MakeMessage(1);
  EXPECT_EQ(ch.PushOrClaim(&a), Channel::Offer::kQueued);
  EXPECT_EQ(ch.PushOrClaim(&b), Channel::Offer::kQueued);
  EXPECT_EQ(ch.PushOrClaim(&c), Channel::Offer::kClaimed);
  EXPECT_EQ(c.seq, 2u);
  ASSERT_NE(c.batch, nullptr);  // left to the caller
  ASSERT_TRUE(ch.Push(Marker(5), &blocked));
  ASSERT_TRUE(ch.Push(Marker(7), &blocked));  // replaces the marker before it
  std::vector<uint64_t> seqs;
  for (int k = 0; k < 3; ++k) seqs.push_back(ch.Pop()->seq);
  Message d = MakeMessage(1);
  EXPECT_EQ(ch.PushOrClaim(&d), Channel::Offer::kQueued);
  ch.ProducerDone();
  auto last = ch.Pop();
  ASSERT_TRUE(last.has_value());
  seqs.push_back(last->seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{0, 1, 3, 4}));
  ch.Cancel();
  Message e = MakeMessage(1);
  EXPECT_EQ(ch.PushOrClaim(&e), Channel::Offer::kCancelled);
}

TEST(ChannelTest, AMarkerAfterAClaimedMessageDoesNotReplaceTheOneBeforeIt) {
  // The claimed batch comes between the two markers: folding the second into the first would
  // put its watermark ahead of the claimed batch's rows.
  Channel ch(1, 0, 1);
  int64_t blocked = 0;
  Message a = MakeMessage(1), b = MakeMessage(1);
  EXPECT_EQ(ch.PushOrClaim(&a), Channel::Offer::kQueued);
  ASSERT_TRUE(ch.Push(Marker(5), &blocked));
  EXPECT_EQ(ch.PushOrClaim(&b), Channel::Offer::kClaimed);
  EXPECT_EQ(b.seq, 2u);
  ASSERT_TRUE(ch.Push(Marker(7), &blocked));
  ch.ProducerDone(0);  // the end marker may replace the last one: nothing was claimed since
  std::vector<std::pair<uint64_t, int64_t>> got;
  while (auto m = ch.Pop()) got.emplace_back(m->seq, m->is_watermark() ? m->watermark : -1);
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, int64_t>>{{0, -1}, {1, 5}, {3, INT64_MAX}}));
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

TEST(ChannelTest, WakeEndsTheConsumersNextIdleWaitAtOnce) {
  // The timeouts are an hour: a Wake that did not end the wait would hang the test.
  constexpr int kHourMs = 3'600'000;
  Channel ch(10, 0, 1);
  bool timed_out = false;
  std::thread waker([&] { ch.Wake(); });
  EXPECT_FALSE(ch.PopFor(kHourMs, &timed_out).has_value());
  EXPECT_TRUE(timed_out) << "a woken wait reads as a timeout: idle";
  waker.join();
  // A Wake with a message queued: the message first, then one idle return, then a real wait.
  int64_t blocked = 0;
  ASSERT_TRUE(ch.Push(MakeMessage(3), &blocked));
  ch.Wake();
  auto m = ch.PopFor(kHourMs, &timed_out);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(m->batch->num_rows(), 3);
  EXPECT_FALSE(ch.PopFor(kHourMs, &timed_out).has_value());
  EXPECT_TRUE(timed_out);
  EXPECT_FALSE(ch.PopFor(1, &timed_out).has_value());
  EXPECT_TRUE(timed_out) << "the Wake was used up: this one waited out its 1 ms";
  // The end of the stream is not a timeout.
  ch.ProducerDone();
  EXPECT_FALSE(ch.PopFor(kHourMs, &timed_out).has_value());
  EXPECT_FALSE(timed_out);
}

}  // namespace
TEST(ChannelTest, QueuesTogetherHoldAtMostHalfTheMemoryLimit) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  EXPECT_EQ(Channel::BoundBytes(0, 0, 7), 64 * kMiB);                  // no limit: the default
  EXPECT_EQ(Channel::BoundBytes(0, 256 * kMiB, 8), 16 * kMiB);         // 8 queues share half of 256
  EXPECT_EQ(Channel::BoundBytes(0, 8 * kMiB, 8), 1 * kMiB);            // never below 1 MiB
  EXPECT_EQ(Channel::BoundBytes(0, int64_t{16} << 30, 2), 64 * kMiB);  // never above the default
  EXPECT_EQ(Channel::BoundBytes(5 * kMiB, 256 * kMiB, 8), 5 * kMiB);   // queue_bytes wins
}

}  // namespace sluice
