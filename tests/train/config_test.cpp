// YAML -> RunConfig: defaults, overrides, and a clear error for every kind of bad input.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <set>

#include "common/errors.h"
#include "tests/support/support.h"
#include "train/config.h"
#include "train/runtime.h"

namespace longnet::testing {
namespace {

class ConfigTest : public SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    write_text(dir.path() / "corpus.txt", sample_text());
    base = "data:\n  path: " + dir.str("corpus.txt") + "\ntokenizer:\n  path: " + dir.str("tok.model") + "\n";
  }
  // The ConfigError message of parsing yaml with overrides; empty when it parses.
  std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
    try {
      train::parse_config(yaml, "test.yaml", sets);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  TempDir dir;
  std::string base;
};

TEST_F(ConfigTest, DefaultsFillEverythingAndMaxSeqLenFollowsSeqLen) {
  auto c = train::parse_config(base, "test.yaml", {"data.seq_len=96"});
  EXPECT_EQ(c.data.seq_len, 96);
  EXPECT_EQ(c.model.max_seq_len, 96);
  EXPECT_EQ(c.model.attention.kind, "dense");
  EXPECT_EQ(c.train.threads, 0);
}

TEST_F(ConfigTest, SetOverridesAnyKeyWithYamlValues) {
  auto c = train::parse_config(base, "test.yaml", {"train.lr=0.5", "model.n_layers=7", "attention.kind=dense",
                                                   "train.out_dir=/tmp/x y"});
  EXPECT_DOUBLE_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.model.n_layers, 7);
  EXPECT_EQ(c.train.out_dir, "/tmp/x y");
}

TEST_F(ConfigTest, ResolvedYamlRoundTrips) {
  auto c = train::parse_config(base, "test.yaml", {"train.lr=0.00123", "model.d_model=96", "model.n_heads=3"});
  auto again = train::parse_config(train::to_yaml(c), "resolved.yaml");
  EXPECT_EQ(train::to_yaml(again), train::to_yaml(c));
  EXPECT_DOUBLE_EQ(again.train.lr, 0.00123);
}

TEST_F(ConfigTest, UnknownKeyNamesFileKeyAndValidKeys) {
  const auto e = error_of(base + "train:\n  stpes: 10\n");
  EXPECT_NE(e.find("test.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("train.stpes"), std::string::npos) << e;
  EXPECT_NE(e.find("steps"), std::string::npos) << e;
}

TEST_F(ConfigTest, DistributedAndDeviceKeysAreValidatedByName) {
  EXPECT_NE(error_of(base, {"train.device=tpu"}).find("train.device: expected cpu or cuda, got 'tpu'"), std::string::npos);
  EXPECT_NE(error_of(base, {"distributed.sequence_parallel=0"}).find("distributed.sequence_parallel"), std::string::npos);
  EXPECT_NE(error_of(base, {"data.seq_len=8", "distributed.sequence_parallel=8"}).find("at most data.seq_len / 2 = 4"),
            std::string::npos);
  EXPECT_NE(error_of(base, {"distributed.bucket_mb=0"}).find("distributed.bucket_mb"), std::string::npos);
  auto c = train::parse_config(base, "test.yaml", {"train.device=cuda", "distributed.sequence_parallel=2"});
  EXPECT_EQ(train::parse_config(train::to_yaml(c), "resolved.yaml").train.device, "cuda");
  // The CPU build, or a CUDA build without a GPU, refuses a CUDA run by name.
  if (!torch::cuda::is_available()) {
    try {
      train::training_device(c.train, 0);
      FAIL() << "expected a ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(train::kBuiltWithCuda ? "train.device: cuda: no CUDA device is present"
                                                                 : "train.device: cuda: this is longnet's CPU build"),
                std::string::npos);
    }
  }
}

TEST_F(ConfigTest, UnknownSectionIsAnError) {
  EXPECT_NE(error_of(base + "optimizer:\n  lr: 1\n").find("optimizer: unknown section"), std::string::npos);
}

TEST_F(ConfigTest, WrongTypeNamesKeyValueAndExpectedType) {
  const auto e = error_of(base + "train:\n  steps: many\n");
  EXPECT_NE(e.find("train.steps: expected an integer, got 'many'"), std::string::npos) << e;
  EXPECT_NE(error_of(base + "model:\n  n_layers: [1, 2]\n").find("model.n_layers: expected an integer, got a list"),
            std::string::npos);
  EXPECT_NE(error_of(base, {"model.bias=maybe"}).find("model.bias: expected true or false"), std::string::npos);
}

TEST_F(ConfigTest, OutOfRangeValuesAreRejected) {
  EXPECT_NE(error_of(base, {"train.steps=0"}).find("train.steps: expected an integer >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of(base, {"data.val_fraction=1.5"}).find("data.val_fraction"), std::string::npos);
  EXPECT_NE(error_of(base, {"model.n_heads=5"}).find("a divisor of model.d_model"), std::string::npos);
  EXPECT_NE(error_of(base, {"train.min_lr=1"}).find("train.min_lr"), std::string::npos);
  EXPECT_NE(error_of(base, {"tokenizer.type=wordpiece"}).find("one of bpe, unigram, char"), std::string::npos);
  EXPECT_NE(error_of(base, {"data.seq_len=512", "model.max_seq_len=256"}).find("model.max_seq_len"), std::string::npos);
  EXPECT_NE(error_of(base, {"attention.softmax_scale=-1"}).find("attention.softmax_scale: expected a number > 0, or 0"),
            std::string::npos);
  EXPECT_EQ(train::parse_config(train::to_yaml(train::parse_config(base, "t.yaml", {"attention.softmax_scale=0.25"})),
                                "resolved.yaml")
                .model.attention.softmax_scale,
            0.25);
  EXPECT_NE(error_of(base, {"attention.length_scale=1"})
                .find("attention.length_scale: expected 0 (off) or a number of keys >= 2, got 1"),
            std::string::npos);
  EXPECT_EQ(train::parse_config(train::to_yaml(train::parse_config(base, "t.yaml", {"attention.length_scale=128"})),
                                "resolved.yaml")
                .model.attention.length_scale,
            128);
  EXPECT_NE(error_of(base, {"attention.dropout=1"}).find("attention.dropout: expected a number in [0, 1), got 1"),
            std::string::npos);
  EXPECT_EQ(train::parse_config(train::to_yaml(train::parse_config(base, "t.yaml", {"attention.dropout=0.1"})),
                                "resolved.yaml")
                .model.attention.dropout,
            0.1);
}

TEST_F(ConfigTest, UnknownAttentionKindListsTheRegisteredOnes) {
  const auto e = error_of(base, {"attention.kind=magic"});
  EXPECT_NE(e.find("attention.kind: expected one of block_sparse, dense, dilated, ring, got 'magic'"), std::string::npos) << e;
}

TEST_F(ConfigTest, DilatedAndBlockSparseOptionsAreParsedAndValidated) {
  auto c = train::parse_config(base, "test.yaml", {"attention.kind=dilated", "attention.segment_lengths=[64, 128]",
                                                   "attention.dilation_rates=[1, 2]", "attention.mix=head_groups",
                                                   "attention.dilate=keys"});
  EXPECT_EQ(c.model.attention.dilated.segment_lengths, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(c.model.attention.dilated.mix, attention::Mix::kHeadGroups);
  EXPECT_EQ(c.model.attention.dilated.dilate, attention::Dilate::kKeys);
  auto again = train::parse_config(train::to_yaml(c), "resolved.yaml");
  EXPECT_EQ(again.model.attention.dilated.dilation_rates, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(again.model.attention.dilated.dilate, attention::Dilate::kKeys);
  EXPECT_EQ(train::parse_config(base, "test.yaml").model.attention.dilated.dilate, attention::Dilate::kQueriesAndKeys);
  EXPECT_EQ(train::parse_config(base, "test.yaml", {"attention.dilate=every_offset"}).model.attention.dilated.dilate,
            attention::Dilate::kEveryOffset);
  const std::vector<std::string> dil = {"attention.kind=dilated"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), dil.begin(), dil.end());
    return extra;
  };
  EXPECT_NE(error_of(base, with({"attention.segment_lengths=[64, 128]", "attention.dilation_rates=[1]"}))
                .find("attention.dilation_rates: expected one rate per segment length (2), got 1 rates"),
            std::string::npos);
  EXPECT_NE(error_of(base, with({"attention.segment_lengths=[64, 0]", "attention.dilation_rates=[1, 2]"}))
                .find("attention.segment_lengths[1]: expected an integer >= 1, got 0"),
            std::string::npos);
  EXPECT_NE(error_of(base, with({"attention.segment_lengths=[64]", "attention.dilation_rates=[-2]"}))
                .find("attention.dilation_rates[0]"),
            std::string::npos);
  EXPECT_NE(error_of(base, with({"attention.segment_lengths=[64, x]"})).find("attention.segment_lengths[1]: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of(base, with({"attention.mix=average"})).find("attention.mix: expected one of lse, head_groups, got 'average'"), std::string::npos);
  EXPECT_NE(error_of(base, with({"attention.dilate=queries"}))
                .find("attention.dilate: expected one of queries_and_keys, keys, every_offset, distance, got 'queries'"),
            std::string::npos);

  auto b = train::parse_config(base, "test.yaml", {"attention.kind=block_sparse", "attention.block_size=32",
                                                   "attention.pairs=[[0, 3], [5, 1]]", "attention.global_blocks=1"});
  EXPECT_EQ(b.model.attention.block_sparse.pairs.size(), 2u);
  EXPECT_EQ(train::parse_config(train::to_yaml(b), "resolved.yaml").model.attention.block_sparse.pairs[1], std::make_pair(int64_t{5}, int64_t{1}));
  EXPECT_NE(error_of(base, {"attention.kind=block_sparse", "attention.block_size=512"}).find("at most data.seq_len"),
            std::string::npos);
  EXPECT_NE(error_of(base, {"attention.kind=block_sparse", "attention.pairs=[[1]]"}).find("attention.pairs[0]"),
            std::string::npos);
  EXPECT_NE(error_of(base, {"attention.kind=block_sparse", "attention.local_blocks=-1"}).find("at least one of"),
            std::string::npos);
}

TEST_F(ConfigTest, ModelOptionsAreParsedValidatedAndRoundTrip) {
  auto c = train::parse_config(base + "model:\n  norm: subln\n  norm_type: rmsnorm\n  mlp: swiglu\n  pos: xpos\n"
                                      "  n_heads: 4\n  n_kv_heads: 2\n  d_model: 96\n",
                               "test.yaml");
  EXPECT_EQ(c.model.norm, model::NormPlacement::kSubLn);
  EXPECT_EQ(c.model.norm_type, model::NormType::kRmsNorm);
  EXPECT_EQ(c.model.mlp, model::MlpKind::kSwiGlu);
  EXPECT_EQ(c.model.pos, model::PositionKind::kXpos);
  EXPECT_EQ(c.model.kv_heads(), 2);
  EXPECT_EQ(c.model.ffn_dim(), 256);  // 8/3 * 96 = 256, already a multiple of 64
  auto again = train::parse_config(train::to_yaml(c), "resolved.yaml");
  EXPECT_EQ(train::to_yaml(again), train::to_yaml(c));
  EXPECT_EQ(train::parse_config(base, "test.yaml").model.norm, model::NormPlacement::kPre);

  auto e = error_of(base, {"model.norm=sandwich"});
  EXPECT_NE(e.find("model.norm: expected one of pre, post, subln, deepnorm, got 'sandwich'"), std::string::npos) << e;
  e = error_of(base, {"model.norm_type=batchnorm"});
  EXPECT_NE(e.find("model.norm_type: expected one of layernorm, rmsnorm"), std::string::npos) << e;
  e = error_of(base, {"model.mlp=relu"});
  EXPECT_NE(e.find("model.mlp: expected one of gelu, swiglu"), std::string::npos) << e;
  e = error_of(base, {"model.pos=alibi"});
  EXPECT_NE(e.find("model.pos: expected one of rope, xpos, none"), std::string::npos) << e;
  e = error_of(base, {"train.precision=fp16"});
  EXPECT_NE(e.find("train.precision: expected one of float32, bfloat16, got 'fp16'"), std::string::npos) << e;
  EXPECT_EQ(train::parse_config(base + "train:\n  precision: bfloat16\n", "test.yaml").train.precision,
            model::Precision::kBFloat16);
  e = error_of(base, {"model.n_heads=4", "model.n_kv_heads=3"});
  EXPECT_NE(e.find("model.n_kv_heads: expected a divisor of model.n_heads = 4"), std::string::npos) << e;
  e = error_of(base, {"model.n_kv_heads=-1"});
  EXPECT_NE(e.find("model.n_kv_heads"), std::string::npos) << e;
  // xPos at 64K positions with the default base would overflow float32.
  e = error_of(base, {"model.pos=xpos", "data.seq_len=65536"});
  EXPECT_NE(e.find("model.xpos_scale_base: expected at least"), std::string::npos) << e;
  EXPECT_EQ(error_of(base, {"model.pos=xpos", "data.seq_len=65536", "model.xpos_scale_base=4096"}), "");
  // Without rotation an odd head dimension is fine.
  EXPECT_EQ(error_of(base, {"model.pos=none", "model.d_model=12", "model.n_heads=4"}), "");
  EXPECT_NE(error_of(base, {"model.d_model=12", "model.n_heads=4"}).find("model.d_model"), std::string::npos);
}

TEST_F(ConfigTest, MissingDataPathIsReportedBeforeAnythingIsBuilt) {
  const auto e = error_of(base, {"data.path=/nonexistent/corpus"});
  EXPECT_NE(e.find("data.path"), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/corpus"), std::string::npos) << e;
}

TEST_F(ConfigTest, MalformedOverridesAndYamlAreErrors) {
  EXPECT_NE(error_of(base, {"train.steps"}).find("expected key.path=value"), std::string::npos);
  EXPECT_NE(error_of(base, {"train..steps=3"}).find("empty key"), std::string::npos);
  EXPECT_NE(error_of(base + "train:\n  steps: 3\n", {"train.steps.x=3"}).find("not a section"), std::string::npos);
  EXPECT_NE(error_of("data: [unclosed\n").find("invalid YAML at line"), std::string::npos);
  EXPECT_THROW(train::load_config(dir.str("missing.yaml")), ConfigError);
}

TEST_F(ConfigTest, TokenizerVocabularyMustMatchAnExplicitModelVocabulary) {
  auto c = train::parse_config(base, "test.yaml", {"model.vocab_size=100"});
  EXPECT_THROW(train::resolve_vocab(c, 67, "tok.model"), ConfigError);
  auto d = train::parse_config(base, "test.yaml");
  train::resolve_vocab(d, 67, "tok.model");
  EXPECT_EQ(d.model.vocab_size, 67);
}

// The configuration reference (docs/configuration.md) lists exactly the keys the code reads and
// writes back: the leaves of the resolved config's YAML.
TEST_F(ConfigTest, TheReferenceListsExactlyTheKeysTheCodeKnows) {
  const char* source = std::getenv("LONGNET_SOURCE_DIR");
  ASSERT_TRUE(source) << "run through ctest, which sets LONGNET_SOURCE_DIR";
  std::set<std::string> code;
  std::function<void(const YAML::Node&, const std::string&)> leaves = [&](const YAML::Node& n, const std::string& at) {
    if (!n.IsMap()) {
      code.insert(at);
      return;
    }
    for (const auto& kv : n) leaves(kv.second, at.empty() ? kv.first.as<std::string>() : at + "." + kv.first.as<std::string>());
  };
  leaves(YAML::Load(train::to_yaml(train::parse_config(base, "t.yaml", {}))), "");
  std::set<std::string> docs;
  std::ifstream in(std::string(source) + "/docs/configuration.md");
  ASSERT_TRUE(in) << source << "/docs/configuration.md";
  const std::regex key("`([a-z_]+\\.[a-z0-9_.]+)`");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::string first = line.substr(0, line.find(" | ", 2));
    for (std::sregex_iterator m(first.begin(), first.end(), key), e; m != e; ++m) docs.insert((*m)[1]);
  }
  for (const auto& k : code) EXPECT_TRUE(docs.count(k)) << k << " is read by the code but not in docs/configuration.md";
  for (const auto& k : docs) EXPECT_TRUE(code.count(k)) << k << " is in docs/configuration.md but the code does not know it";
}

}  // namespace
}  // namespace longnet::testing
