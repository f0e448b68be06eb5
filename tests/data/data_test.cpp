// Corpus split, SentencePiece tokenizers, token shards and samplers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/corpus.h"
#include "common/errors.h"
#include "data/sampler.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

namespace fs = std::filesystem;

class DataTest : public SeededTest {
 protected:
  TempDir dir;
};

TEST_F(DataTest, SingleFileSplitsTheLastFractionOfBytes) {
  const std::string text = sample_text();
  write_text(dir.path() / "a.txt", text);
  data::DataOptions o;
  o.path = dir.str("a.txt");
  o.val_fraction = 0.1;
  auto c = data::load_corpus(o);
  ASSERT_EQ(c.train.size(), 1u);
  ASSERT_EQ(c.val.size(), 1u);
  EXPECT_EQ(c.train[0].text + c.val[0].text, text);
  EXPECT_EQ(c.train_bytes(), static_cast<int64_t>(text.size() * 0.9));
}

TEST_F(DataTest, FolderHoldsOutWholeDocumentsStably) {
  for (int i = 0; i < 60; ++i) write_text(dir.path() / ("sub" + std::to_string(i % 3)) / ("doc" + std::to_string(i) + ".txt"), sample_text(2, i));
  write_text(dir.path() / "ignored.md", "not a txt file");
  data::DataOptions o;
  o.path = dir.str();
  o.val_fraction = 0.2;
  auto c = data::load_corpus(o);
  EXPECT_EQ(c.train.size() + c.val.size(), 60u);
  EXPECT_GT(c.val.size(), 3u);
  EXPECT_LT(c.val.size(), 25u);
  std::set<std::string> val_names;
  for (const auto& d : c.val) val_names.insert(d.name);
  for (const auto& d : c.train) EXPECT_EQ(val_names.count(d.name), 0u) << d.name;
  // Adding a document does not move any other document between splits.
  write_text(dir.path() / "zzz_new.txt", sample_text(2, 999));
  auto c2 = data::load_corpus(o);
  for (const auto& d : c2.val)
    if (d.name != "zzz_new.txt") EXPECT_EQ(val_names.count(d.name), 1u) << d.name;
  EXPECT_NE(c.fingerprint, c2.fingerprint);
}

TEST_F(DataTest, MissingOrEmptyCorpusNamesThePath) {
  data::DataOptions o;
  o.path = dir.str("nope");
  try {
    data::load_corpus(o);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("data.path"), std::string::npos);
  }
  fs::create_directories(dir.path() / "empty");
  o.path = dir.str("empty");
  EXPECT_THROW(data::load_corpus(o), DataError);
}

// Char-level: identity normalisation, newlines and repeated spaces survive the round trip.
TEST_F(DataTest, CharTokenizerRoundTripsExactly) {
  const std::string text = "First Citizen:\nBefore we  proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";
  write_text(dir.path() / "c.txt", text + text + text);
  data::DataOptions d;
  d.path = dir.str("c.txt");
  data::TokenizerOptions t;
  t.path = dir.str("char.model");
  t.type = "char";
  t.vocab_size = 256;
  data::train_tokenizer(t, data::load_corpus(d));
  data::Tokenizer tok(t.path);
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(tok.encode("speak").size(), 5u);
  EXPECT_LT(tok.vocab_size(), 60);
  EXPECT_GE(tok.eos_id(), 0);
}

TEST_F(DataTest, BpeTokenizerRoundTripsAndCompresses) {
  write_text(dir.path() / "b.txt", sample_text(200));
  data::DataOptions d;
  d.path = dir.str("b.txt");
  data::TokenizerOptions t;
  t.path = dir.str("sub/bpe.model");
  t.type = "bpe";
  t.vocab_size = 600;
  data::train_tokenizer(t, data::load_corpus(d));
  data::Tokenizer tok(t.path);
  const std::string s = "The king speaks to her loyal court.\n  Ünïcödé falls back to bytes.\n";
  EXPECT_EQ(tok.decode(tok.encode(s)), s);
  EXPECT_EQ(tok.vocab_size(), 600);
  EXPECT_LT(tok.encode(sample_text(5)).size(), sample_text(5).size() / 2);
}

TEST_F(DataTest, MissingOrInvalidTokenizerNamesTheFile) {
  EXPECT_THROW(data::Tokenizer(dir.str("none.model")), DataError);
  write_text(dir.path() / "bad.model", "this is not a protobuf");
  try {
    data::Tokenizer t(dir.str("bad.model"));
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.model"), std::string::npos);
  }
}

TEST_F(DataTest, ShardsUseUint16WhenTheVocabularyFitsAndRoundTrip) {
  std::vector<int32_t> small = {0, 1, 65535, 7}, large = {0, 70000, 3};
  data::TokenShard::write(dir.str("s.bin"), small, 65536);
  data::TokenShard::write(dir.str("l.bin"), large, 70001);
  data::TokenShard s(dir.str("s.bin")), l(dir.str("l.bin"));
  EXPECT_EQ(s.bytes_per_token(), 2);
  EXPECT_EQ(l.bytes_per_token(), 4);
  EXPECT_EQ(fs::file_size(dir.path() / "s.bin"), 64u + 8u);
  EXPECT_TRUE(torch::equal(s.slice(0, 4), torch::tensor({0, 1, 65535, 7}, torch::kLong)));
  EXPECT_TRUE(torch::equal(l.slice(1, 2), torch::tensor({70000, 3}, torch::kLong)));
}

TEST_F(DataTest, TruncatedShardIsRefusedWithAHint) {
  std::vector<int32_t> t(100, 5);
  data::TokenShard::write(dir.str("t.bin"), t, 100);
  fs::resize_file(dir.path() / "t.bin", 64 + 150);
  try {
    data::TokenShard s(dir.str("t.bin"));
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("longnet prepare"), std::string::npos) << e.what();
  }
}

TEST_F(DataTest, ShardsAreCachedByContentAndCoverBothSplits) {
  write_text(dir.path() / "c.txt", sample_text(100));
  data::DataOptions d;
  d.path = dir.str("c.txt");
  d.cache_dir = dir.str("cache");
  data::TokenizerOptions t;
  t.path = dir.str("char.model");
  t.type = "char";
  auto corpus = data::load_corpus(d);
  data::train_tokenizer(t, corpus);
  data::Tokenizer tok(t.path);
  auto a = data::prepare_shards(d, corpus, tok);
  const auto stamp = fs::last_write_time(fs::path(a.dir) / "train.bin");
  auto b = data::prepare_shards(d, corpus, tok);
  EXPECT_EQ(a.dir, b.dir);
  EXPECT_EQ(fs::last_write_time(fs::path(b.dir) / "train.bin"), stamp);
  // Char-level: one token per byte, plus one </s> per document.
  EXPECT_EQ(a.train.size(), corpus.train_bytes() + 1);
  EXPECT_EQ(a.val.size(), corpus.val_bytes() + 1);
  EXPECT_EQ(a.val_bytes, corpus.val_bytes());
  // Another corpus gets another cache entry.
  write_text(dir.path() / "c.txt", sample_text(100, 8));
  auto other = data::prepare_shards(d, data::load_corpus(d), tok);
  EXPECT_NE(other.dir, a.dir);
}

TEST_F(DataTest, SamplerIsAFunctionOfSeedStepAndRank) {
  std::vector<int32_t> t(1000);
  for (int i = 0; i < 1000; ++i) t[i] = i % 97;
  data::TokenShard::write(dir.str("t.bin"), t, 100);
  data::TokenShard s(dir.str("t.bin"));
  data::WindowSampler a(s, 16, 4, 42), b(s, 16, 4, 42), c(s, 16, 4, 43);
  auto x = a.batch(5), y = b.batch(5);
  EXPECT_TRUE(torch::equal(x.tokens, y.tokens));
  EXPECT_FALSE(torch::equal(x.tokens, a.batch(6).tokens));
  EXPECT_FALSE(torch::equal(x.tokens, c.batch(5).tokens));
  EXPECT_FALSE(torch::equal(x.tokens, a.batch(5, 0, 1).tokens));
  EXPECT_EQ(x.tokens.sizes(), (std::vector<int64_t>{4, 16}));
  // Targets are the next tokens.
  EXPECT_TRUE(torch::equal(x.targets.narrow(1, 0, 15), x.tokens.narrow(1, 1, 15)));
  EXPECT_THROW(data::WindowSampler(s, 1000, 1, 0), DataError);
}

TEST_F(DataTest, SequentialWindowsPredictEveryTokenOnce) {
  std::vector<int32_t> t(103);
  for (int i = 0; i < 103; ++i) t[i] = i;
  data::TokenShard::write(dir.str("t.bin"), t, 200);
  data::TokenShard s(dir.str("t.bin"));
  data::SequentialWindows w(s, 10);
  EXPECT_EQ(w.count(), 11);  // 102 targets: 10 full windows and one of 2
  int64_t predicted = 0, expected_next = 1;
  for (int64_t i = 0; i < w.count(); ++i) {
    auto b = w.windows(i, 1);
    for (int64_t j = 0; j < b.targets.size(1); ++j) EXPECT_EQ(b.targets[0][j].item<int64_t>(), expected_next++);
    predicted += b.targets.numel();
  }
  EXPECT_EQ(predicted, 102);
}

}  // namespace
}  // namespace longnet::testing
