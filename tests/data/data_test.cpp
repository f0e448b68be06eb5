// Corpus split, SentencePiece tokenizers, token shards and samplers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "data/corpus.h"
#include "data/passkey.h"
#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/targets.h"
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
    if (d.name != "zzz_new.txt") {
      EXPECT_EQ(val_names.count(d.name), 1u) << d.name;
    }
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

TEST_F(DataTest, JsonlHoldsOneDocumentPerLineAndFoldersMixBothByExtension) {
  // A JSONL file: one document per object line, blank lines passed over, other fields ignored,
  // JSON escapes decoded, data.text_key chosen.
  std::string jsonl;
  for (int i = 0; i < 40; ++i) jsonl += "{\"id\": " + std::to_string(i) + ", \"body\": \"doc " + std::to_string(i) + "\\n\\u00e9\"}\n";
  jsonl += "\r\n   \n";
  write_text(dir.path() / "docs.jsonl", jsonl);
  data::DataOptions o;
  o.path = dir.str("docs.jsonl");
  o.text_key = "body";
  o.val_fraction = 0.25;
  auto c = data::load_corpus(o);
  ASSERT_EQ(c.train.size() + c.val.size(), 40u);
  EXPECT_GT(c.val.size(), 2u);
  std::set<std::string> texts;
  for (const auto* split : {&c.train, &c.val})
    for (const auto& d : *split) texts.insert(d.text);
  EXPECT_EQ(texts.count("doc 7\n\xc3\xa9"), 1u);
  EXPECT_EQ(c.train[0].name.rfind("docs.jsonl:", 0), 0u) << c.train[0].name;

  // A folder: .txt files one document each, .jsonl files one per line, other files not read;
  // data.format restricts it to one kind.
  const fs::path folder = dir.path() / "mixed";
  for (int i = 0; i < 20; ++i) {
    const std::string n = std::to_string(i);
    write_text(folder / ("t" + n + ".txt"), "text document " + n);
  }
  write_text(folder / "sub" / "more.jsonl", jsonl);
  write_text(folder / "notes.md", "not read");
  o.path = folder.string();
  auto mixed = data::load_corpus(o);
  EXPECT_EQ(mixed.train.size() + mixed.val.size(), 60u);
  o.format = "text";
  auto text_only = data::load_corpus(o);
  EXPECT_EQ(text_only.train.size() + text_only.val.size(), 20u);
  o.format = "jsonl";
  auto jsonl_only = data::load_corpus(o);
  EXPECT_EQ(jsonl_only.train.size() + jsonl_only.val.size(), 40u);
  EXPECT_NE(mixed.fingerprint, jsonl_only.fingerprint);

  // data.format: jsonl reads a single file of any name as JSONL; text reads a .jsonl as text.
  write_text(dir.path() / "lines.data", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n{\"text\": \"d\"}\n");
  o = {};
  o.path = dir.str("lines.data");
  o.format = "jsonl";
  o.val_fraction = 0.5;
  auto forced = data::load_corpus(o);
  EXPECT_EQ(forced.train.size() + forced.val.size(), 4u);
  o.path = dir.str("docs.jsonl");
  o.format = "text";
  auto as_text = data::load_corpus(o);
  ASSERT_EQ(as_text.train.size(), 1u);
  EXPECT_EQ(as_text.train[0].text + as_text.val[0].text, jsonl);
}

TEST_F(DataTest, ABadJsonlLineIsNamedOrSkippedAndCounted) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"text\": \"unterminated}", "not valid JSON"},
      {"[\"text\", \"an array\"]", "not a JSON object"},
      {"{\"body\": \"no text field\"}", "no key 'text'"},
      {"{\"text\": 42}", "'text' is not a string"},
  };
  for (const auto& [line, why] : bad) {
    std::string jsonl;
    for (int i = 0; i < 30; ++i) jsonl += "{\"text\": \"good " + std::to_string(i) + "\"}\n";
    jsonl += line + "\n{\"text\": \"after\"}\n";
    write_text(dir.path() / "c.jsonl", jsonl);
    data::DataOptions o;
    o.path = dir.str("c.jsonl");
    try {
      data::load_corpus(o);
      ADD_FAILURE() << "accepted " << line;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(dir.str("c.jsonl") + ":31: " + why), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("data.skip_bad_lines"), std::string::npos) << e.what();
    }
    o.skip_bad_lines = true;
    const auto c = data::load_corpus(o);
    EXPECT_EQ(c.train.size() + c.val.size(), 31u) << line;
  }
}

TEST_F(DataTest, ACorpusTooSmallToHoldOutValidationSaysWhatToChange) {
  write_text(dir.path() / "two" / "a.txt", "first document");
  write_text(dir.path() / "two" / "b.txt", "second document");
  data::DataOptions o;
  o.path = dir.str("two");
  o.val_fraction = 0.01;
  try {
    data::load_corpus(o);
    FAIL();
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("holds 2 documents"), std::string::npos) << what;
    EXPECT_NE(what.find("data.val_fraction"), std::string::npos) << what;
    EXPECT_NE(what.find("add documents"), std::string::npos) << what;
  }
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

// tokenizer.split_digits: a corpus full of the same numbers merges their digits into pieces,
// unless every digit is its own piece.
TEST_F(DataTest, SplitDigitsMakesEveryDigitAPiece) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "In 2023 the court held 1999 sessions and 4096 pages, page " + std::to_string(i % 7) + ".\n";
  write_text(dir.path() / "n.txt", text);
  data::DataOptions d;
  d.path = dir.str("n.txt");
  for (const bool split : {false, true}) {
    data::TokenizerOptions t;
    t.path = dir.str(split ? "split.model" : "merged.model");
    t.vocab_size = 300;
    t.split_digits = split;
    data::train_tokenizer(t, data::load_corpus(d));
    data::Tokenizer tok(t.path);
    EXPECT_EQ(tok.decode(tok.encode("20231999")), "20231999");
    if (split)
      EXPECT_EQ(tok.encode("20231999").size(), 8u);
    else
      EXPECT_LT(tok.encode("20231999").size(), 8u);
  }
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

// The message a shard is refused with (empty when it opens).
std::string shard_problem(const std::string& path) {
  try {
    data::TokenShard s(path);
    return "";
  } catch (const DataError& e) {
    return e.what();
  }
}

TEST_F(DataTest, TruncatedFlippedOrOverclaimingShardsAreRefused) {
  std::vector<int32_t> t(100);
  for (int i = 0; i < 100; ++i) t[i] = i;
  data::TokenShard::write(dir.str("t.bin"), t, 100);
  EXPECT_EQ(shard_problem(dir.str("t.bin")), "");
  const std::string whole = data::read_file(dir.path() / "t.bin");

  fs::resize_file(dir.path() / "t.bin", 64 + 150);
  EXPECT_NE(shard_problem(dir.str("t.bin")).find("t.bin: token shard is truncated"), std::string::npos);

  std::string flipped = whole;
  flipped[64 + 101] ^= 0x10;  // one bit of token 50
  write_text(dir.path() / "t.bin", flipped);
  EXPECT_NE(shard_problem(dir.str("t.bin")).find("t.bin: token shard is corrupt"), std::string::npos);

  std::string huge = whole;  // a header that claims 2^62 tokens
  const uint64_t count = uint64_t{1} << 62;
  std::memcpy(huge.data() + 16, &count, 8);
  write_text(dir.path() / "t.bin", huge);
  EXPECT_NE(shard_problem(dir.str("t.bin")).find("header says 4611686018427387904 tokens"), std::string::npos)
      << shard_problem(dir.str("t.bin"));
}

// A 100-line corpus in dir, its options (cache under dir) and a char tokenizer trained on it.
struct CharCorpus {
  data::DataOptions d;
  data::Corpus corpus;
  std::optional<data::Tokenizer> tok;
};
CharCorpus char_corpus(const TempDir& dir) {
  write_text(dir.path() / "c.txt", sample_text(100));
  CharCorpus c;
  c.d.path = dir.str("c.txt");
  c.d.cache_dir = dir.str("cache");
  data::TokenizerOptions t;
  t.path = dir.str("char.model");
  t.type = "char";
  c.corpus = data::load_corpus(c.d);
  data::train_tokenizer(t, c.corpus);
  c.tok.emplace(t.path);
  return c;
}

// A cached shard changed after it was written (a flipped byte, a truncation) is found when the
// cache is opened and rebuilt with the same tokens.
TEST_F(DataTest, ACorruptCachedShardIsRebuilt) {
  auto [d, corpus, opt_tok] = char_corpus(dir);
  const data::Tokenizer& tok = *opt_tok;
  const auto a = data::prepare_shards(d, corpus, tok);
  const auto train = fs::path(a.dir) / "train.bin";
  const auto tokens = a.train.slice(0, a.train.size());  // a copy: the map shows what is written next
  const std::string whole = data::read_file(train);
  std::string flipped = whole;
  flipped[flipped.size() / 2] ^= 0x01;
  write_text(train, flipped);
  const auto b = data::prepare_shards(d, corpus, tok);
  EXPECT_EQ(data::read_file(train), whole);
  EXPECT_TRUE(torch::equal(b.train.slice(0, b.train.size()), tokens));
  fs::resize_file(fs::path(a.dir) / "val.bin", 70);
  const auto c = data::prepare_shards(d, corpus, tok);
  EXPECT_EQ(c.val.size(), a.val.size());
}

TEST_F(DataTest, ShardsAreCachedByContentAndCoverBothSplits) {
  auto [d, corpus, opt_tok] = char_corpus(dir);
  const data::Tokenizer& tok = *opt_tok;
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

// A BPE tokenizer of the sample text (digits fall back to bytes), for passkey documents.
class PasskeyTest : public SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    tok = std::make_unique<data::Tokenizer>(passkey_tokenizer(dir.path(), 100, 400));
  }

  // A shard of 5000 tokens counting 0..96 over and over, for the samplers.
  data::TokenShard counting_shard() {
    std::vector<int32_t> t(5000);
    for (int i = 0; i < 5000; ++i) t[i] = i % 97;
    data::TokenShard::write(dir.str("t.bin"), t, 400);
    return data::TokenShard(dir.str("t.bin"));
  }
  TempDir dir;
  std::unique_ptr<data::Tokenizer> tok;
};

TEST_F(PasskeyTest, DocumentsHaveTheExactLengthAndTheKeyAtTheAskedDepth) {
  data::PasskeyBuilder builder(*tok);
  for (int64_t length : {builder.min_length(), int64_t{300}, int64_t{1001}}) {
    for (double depth : {0.0, 0.25, 0.5, 0.9, 1.0}) {
      const int key = data::passkey_key(3, length, static_cast<int64_t>(depth * 100), 0);
      const auto d = builder.build(length, depth, key);
      SCOPED_TRACE(::testing::Message() << "length " << length << " depth " << depth);
      ASSERT_EQ(static_cast<int64_t>(d.tokens.size()), length);
      // The key sentence follows depth * filler filler tokens (within a token) after the task line.
      EXPECT_LE(std::abs(static_cast<double>(d.filler_before) - depth * static_cast<double>(d.filler)), 0.5 + 1e-9);
      const auto task = tok->encode(
          "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
          "about the important information there.\n");
      EXPECT_EQ(d.key_begin, static_cast<int64_t>(task.size()) + d.filler_before);
      const std::string k = std::to_string(key);
      const auto from_key = tok->decode(std::vector<int>(d.tokens.begin() + d.key_begin, d.tokens.end()));
      EXPECT_EQ(from_key.rfind("The pass key is " + k + ". Remember it. " + k + " is the pass key. ", 0), 0u) << from_key;
      EXPECT_EQ(tok->decode(std::vector<int>(d.tokens.begin() + d.answer_begin, d.tokens.end())), " " + k);
      const auto before_answer = tok->decode(std::vector<int>(d.tokens.begin(), d.tokens.begin() + d.answer_begin));
      EXPECT_EQ(before_answer.substr(before_answer.size() - 37), "What is the pass key? The pass key is");
      EXPECT_EQ(before_answer.find(k), before_answer.find("The pass key is " + k) + 16) << "the key appears first in its sentence";
    }
  }
  // min_length() holds any key; a length that cannot hold the fixed pieces is refused.
  for (int64_t t = 0; t < 3000; ++t)
    EXPECT_EQ(builder.build(builder.min_length(), 0.5, data::passkey_key(1, 0, 0, t)).tokens.size(),
              static_cast<size_t>(builder.min_length()));
  EXPECT_THROW(builder.build(20, 0.5, 12345), std::invalid_argument);
  EXPECT_THROW(builder.build(500, 1.5, 12345), std::invalid_argument);
}

TEST_F(PasskeyTest, KeysAreSeededFiveDigitNumbers) {
  std::set<int> keys;
  for (int64_t t = 0; t < 200; ++t) {
    const int k = data::passkey_key(7, 1, 2, t);
    EXPECT_GE(k, 10000);
    EXPECT_LE(k, 99999);
    EXPECT_EQ(k, data::passkey_key(7, 1, 2, t));
    keys.insert(k);
  }
  EXPECT_GT(keys.size(), 190u);
  EXPECT_NE(data::passkey_key(7, 1, 2, 0), data::passkey_key(8, 1, 2, 0));
  EXPECT_NE(data::passkey_key(7, 1, 2, 0), data::passkey_key(7, 1, 3, 0));
}

// data.passkey_fraction: about that share of the windows are passkey documents end to end, the
// same ones for the same (seed, step), and the rest are the corpus windows they would have been.
TEST_F(PasskeyTest, TheSamplerMixesTheAskedShareOfDocuments) {
  data::TokenShard shard = counting_shard();
  data::PasskeyBuilder builder(*tok);
  const int64_t T = builder.min_length() + 40;
  data::WindowSampler plain(shard, T, 8, 42), mixed(shard, T, 8, 42), again(shard, T, 8, 42);
  mixed.mix_passkeys(&builder, 0.25, 256);
  again.mix_passkeys(&builder, 0.25, 256);
  int64_t documents = 0, rows = 0;
  const auto task = tok->encode("There is an important info");
  for (int64_t step = 0; step < 50; ++step) {
    auto a = plain.batch(step), b = mixed.batch(step);
    EXPECT_TRUE(torch::equal(b.tokens, again.batch(step).tokens));
    // Targets are the next tokens, except at a key's first appearance (random: kNoTarget).
    const auto scored = b.targets.narrow(1, 0, T - 1) != kNoTarget;
    EXPECT_TRUE(torch::equal(b.targets.narrow(1, 0, T - 1).masked_select(scored),
                             b.tokens.narrow(1, 1, T - 1).masked_select(scored)));
    for (int64_t r = 0; r < 8; ++r, ++rows) {
      if (torch::equal(a.tokens[r], b.tokens[r])) continue;
      ++documents;
      EXPECT_EQ(b.tokens[r][0].item<int64_t>(), task[0]) << "a replaced window is a passkey document";
    }
  }
  EXPECT_NEAR(static_cast<double>(documents) / static_cast<double>(rows), 0.25, 0.07);
  EXPECT_THROW(data::WindowSampler(shard, 20, 1, 0).mix_passkeys(&builder, 0.5, 256), ConfigError);
}

// A passkey window: a first document of any length up to the window (the reach), then short
// documents of at most data.passkey_short_length tokens (the last may take what is left), each
// of these begun by the end-of-document token, as the corpus separates documents.
TEST_F(PasskeyTest, APasskeyWindowIsOneDocumentOfAnyLengthThenShortOnes) {
  data::TokenShard shard = counting_shard();
  data::PasskeyBuilder builder(*tok);
  ASSERT_EQ(builder.separator(), tok->eos_id());
  const int64_t shortest = builder.min_length(), short_length = shortest + 30, T = 3000;
  data::WindowSampler sampler(shard, T, 4, 7);
  sampler.mix_passkeys(&builder, 1.0, short_length);
  // The task line: what precedes the key sentence at depth 0.
  const auto first = builder.build(shortest, 0.0, 12345);
  const std::vector<int> task(first.tokens.begin(), first.tokens.begin() + first.key_begin);
  ASSERT_GE(task.size(), 3u);
  int64_t longest_first = 0, windows = 0;
  for (int64_t step = 0; step < 30; ++step) {
    const auto b = sampler.batch(step);
    for (int64_t r = 0; r < 4; ++r, ++windows) {
      const auto row = torch::cat({b.tokens[r], b.targets[r].narrow(0, T - 1, 1)});
      const auto* x = row.data_ptr<int64_t>();
      // Documents start at 0 and at each separator, and each starts with the whole task line.
      std::vector<int64_t> starts{0};
      for (int64_t i = 1; i < T + 1; ++i)
        if (x[i] == builder.separator()) starts.push_back(i);
      starts.push_back(T + 1);
      ASSERT_GE(starts.size(), 2u);
      longest_first = std::max(longest_first, starts[1]);
      EXPECT_GE(starts[1], shortest);
      for (size_t d = 0; d + 1 < starts.size(); ++d) {
        const int64_t lead = d == 0 ? 0 : 1;
        ASSERT_LE(starts[d] + lead + static_cast<int64_t>(task.size()), T + 1);
        EXPECT_TRUE(std::equal(task.begin(), task.end(), x + starts[d] + lead)) << "document " << d;
        if (d == 0) continue;
        const int64_t length = starts[d + 1] - starts[d];
        EXPECT_GE(length, shortest + 1);
        EXPECT_LT(length, d + 2 == starts.size() ? short_length + shortest + 1 : short_length + 1) << "document " << d;
      }
    }
  }
  EXPECT_GT(longest_first, T / 2) << "the first document reaches across the window now and then";
}

// data.passkey_reach_length: every window's first document is at least that long, and short
// documents still fill the rest.
TEST_F(PasskeyTest, TheReachLengthIsTheFirstDocumentsShortest) {
  data::TokenShard shard = counting_shard();
  data::PasskeyBuilder builder(*tok);
  const int64_t T = 3000, reach = 2000, short_length = builder.min_length() + 30;
  data::WindowSampler sampler(shard, T, 4, 7);
  sampler.mix_passkeys(&builder, 1.0, short_length, reach);
  int64_t shortest_first = T + 1, most_documents = 0;
  for (int64_t step = 0; step < 20; ++step) {
    const auto b = sampler.batch(step);
    for (int64_t r = 0; r < 4; ++r) {
      const auto* x = b.tokens[r].data_ptr<int64_t>();
      int64_t first = T, documents = 1;
      for (int64_t i = T - 1; i >= 1; --i) {
        if (x[i] != builder.separator()) continue;
        first = i;
        ++documents;
      }
      shortest_first = std::min(shortest_first, first);
      most_documents = std::max(most_documents, documents);
    }
  }
  EXPECT_GE(shortest_first, reach);
  EXPECT_LT(shortest_first, reach + 200) << "the first document's length starts at the reach length";
  EXPECT_GE(most_documents, 4) << "short documents fill the rest";
}

// The first document's key is drawn nearer its start than the short documents' keys: its depth
// is u^2 (half of its keys in the first quarter of its filler; a uniform depth puts a quarter
// there), the short documents' uniform.
TEST_F(PasskeyTest, TheFirstDocumentsKeyLeansToItsStart) {
  data::TokenShard shard = counting_shard();
  data::PasskeyBuilder builder(*tok);
  const int64_t T = 3000, reach = 1500;
  data::WindowSampler sampler(shard, T, 4, 5);
  sampler.mix_passkeys(&builder, 1.0, builder.min_length() + 60, reach);
  // The builder's own parts, read from one document with its key at depth 0: the task line
  // before the key sentence, the sentence's words up to the key, and the sentence without its
  // two keys.
  const auto ref = builder.build(builder.min_length(), 0.0, 12345);
  const int64_t task = ref.key_begin;
  const std::vector<int> lead(ref.tokens.begin() + ref.key_begin, ref.tokens.begin() + ref.key_at);
  const auto question = tok->encode("What is the pass key? The pass key is");
  const int64_t ref_key = builder.min_length() - ref.answer_begin;
  const int64_t sentence = ref.answer_begin - static_cast<int64_t>(question.size()) - ref.key_begin -
                           (ref.filler - ref.filler_before) - 2 * ref_key;
  int64_t windows = 0, near_start = 0, short_documents = 0, short_near_start = 0;
  for (int64_t step = 0; step < 100; ++step) {
    const auto b = sampler.batch(step);
    for (int64_t r = 0; r < 4; ++r, ++windows) {
      const auto row = torch::cat({b.tokens[r], b.targets[r].narrow(0, T - 1, 1)});
      const auto* x = row.data_ptr<int64_t>();
      for (int64_t start = 0; start < T + 1;) {
        const int64_t end = std::find(x + start + 1, x + T + 1, static_cast<int64_t>(tok->eos_id())) - x;
        const int64_t key_begin = std::search(x + start, x + end, lead.begin(), lead.end()) - x;
        const int64_t question_at = std::search(x + key_begin, x + end, question.begin(), question.end()) - x;
        ASSERT_LT(question_at, end);
        // The filler before the key sentence, against all the filler.
        const int64_t body = (start ? start + 1 : start) + task;
        const int64_t key_size = end - question_at - static_cast<int64_t>(question.size());
        const int64_t filler = question_at - body - sentence - 2 * key_size;
        ASSERT_GE(filler, 1);
        const double depth = static_cast<double>(key_begin - body) / static_cast<double>(filler);
        if (start == 0) {
          near_start += depth < 0.25;
        } else {
          ++short_documents;
          short_near_start += depth < 0.25;
        }
        start = end;
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(near_start) / static_cast<double>(windows), 0.5, 0.08);
  EXPECT_LT(static_cast<double>(short_near_start) / static_cast<double>(short_documents), 0.38);
}

// The targets of each key's first appearance in a passkey window are kNoTarget, and only those:
// the key is random, while its second appearance and the answer are copies, and scored.
TEST_F(PasskeyTest, AKeysFirstAppearanceIsNotATarget) {
  data::TokenShard shard = counting_shard();
  data::PasskeyBuilder builder(*tok);
  const int64_t T = 1500;
  data::WindowSampler sampler(shard, T, 2, 11);
  sampler.mix_passkeys(&builder, 1.0, builder.min_length() + 60);
  const auto task = tok->encode("There is an important info");
  const auto lead = tok->encode("The pass key is");
  const auto question = tok->encode("What is the pass key? The pass key is");
  auto find = [](const int64_t* x, int64_t from, int64_t to, const std::vector<int>& what) {
    for (int64_t i = from; i + static_cast<int64_t>(what.size()) <= to; ++i)
      if (std::equal(what.begin(), what.end(), x + i)) return i;
    return to;
  };
  int64_t documents = 0;
  for (int64_t step = 0; step < 5; ++step) {
    const auto b = sampler.batch(step);
    for (int64_t r = 0; r < 2; ++r) {
      const auto row = torch::cat({b.tokens[r], b.targets[r].narrow(0, T - 1, 1)});
      const auto* x = row.data_ptr<int64_t>();
      const auto unscored = (b.targets[r] == kNoTarget).to(torch::kLong);
      auto expected = torch::zeros({T}, torch::kLong);
      for (int64_t start = 0; start < T + 1; ++documents) {
        // The next document's start: its separator.
        const int64_t end = std::find(x + start + 1, x + T + 1, static_cast<int64_t>(tok->eos_id())) - x;
        const int64_t key_at = find(x, start, end, lead) + static_cast<int64_t>(lead.size());
        const int64_t answer_at = find(x, key_at, end, question) + static_cast<int64_t>(question.size());
        ASSERT_LT(answer_at, end);
        const int64_t key_size = end - answer_at;
        EXPECT_TRUE(std::equal(x + key_at, x + key_at + key_size, x + answer_at)) << "the answer is the key";
        // Target i predicts token i + 1: the key's tokens are the targets before them.
        expected.narrow(0, key_at - 1, key_size).fill_(1);
        start = end;
      }
      EXPECT_TRUE(torch::equal(unscored, expected)) << "step " << step << ", row " << r;
    }
  }
  EXPECT_GT(documents, 20);
}

}  // namespace
}  // namespace longnet::testing
