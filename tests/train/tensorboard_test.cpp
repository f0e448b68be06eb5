// TensorBoard's record framing and Event encoding against hand-computed bytes; reading the files
// back with the real tensorboard package is tests/tools/tensorboard_test.sh.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "train/metrics.h"
#include "train/tensorboard.h"

namespace longnet::testing {
namespace {

using train::Scalars;

TEST(TensorBoardTest, Crc32cIsCastagnolisAndTfRecordFramesWithMaskedCrcs) {
  EXPECT_EQ(train::crc32c("123456789", 9), 0xE3069283u);  // the standard check value
  EXPECT_EQ(train::crc32c("", 0), 0u);
  const uint32_t crc = train::crc32c("abc", 3);
  EXPECT_EQ(train::masked_crc32c("abc", 3), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);

  const std::string rec = train::tfrecord("abc");
  ASSERT_EQ(rec.size(), 8u + 4u + 3u + 4u);
  uint64_t len;
  uint32_t len_crc, data_crc;
  std::memcpy(&len, rec.data(), 8);
  std::memcpy(&len_crc, rec.data() + 8, 4);
  std::memcpy(&data_crc, rec.data() + 15, 4);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(len_crc, train::masked_crc32c(rec.data(), 8));
  EXPECT_EQ(rec.substr(12, 3), "abc");
  EXPECT_EQ(data_crc, train::masked_crc32c("abc", 3));
}

TEST(TensorBoardTest, AnEventIsEncodedAsTheProtobufWireFormatSays) {
  // wall_time 1.0 (field 1, 64-bit), step 3 (field 2, varint), summary (field 5) holding one
  // value (field 1) with tag "a" (field 1) and simple_value 0.5f (field 2, 32-bit).
  const std::string want("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f"
                         "\x10\x03"
                         "\x2a\x0a"
                         "\x0a\x08"
                         "\x0a\x01" "a"
                         "\x15\x00\x00\x00\x3f",
                         9 + 2 + 2 + 2 + 3 + 5);
  EXPECT_EQ(train::event_message(1.0, 3, {{"a", 0.5}}), want);
  // The version event; a step past 2^7 takes two varint bytes.
  EXPECT_EQ(train::event_message(1.0, 300, {}),
            std::string("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10\xac\x02\x1a\x0d", 14) + "brain.Event:2");
}

TEST(TensorBoardTest, MetricsRecordsBecomeTrainAndValScalars) {
  const nlohmann::json record = {{"step", 7}, {"time", 1.5}, {"loss", 2.0}, {"val_loss", 3.0}, {"skipped", 1},
                                 {"note", "text"}, {"flag", true}};
  auto scalars = train::scalars_of(record);
  std::sort(scalars.begin(), scalars.end());
  EXPECT_EQ(scalars, (Scalars{{"train/loss", 2.0}, {"train/skipped", 1.0}, {"val/loss", 3.0}}));
}

}  // namespace
}  // namespace longnet::testing
