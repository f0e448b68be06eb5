// safetensors files: the format's layout, every dtype back as written, hostile headers refused,
// and train.init_from copying an export into a model. The real safetensors package and an
// independent forward pass read the exports in tests/tools/export_test.sh.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "tests/support/support.h"
#include "train/export.h"

namespace longnet::testing {
namespace {

class ExportTest : public SeededTest {
 protected:
  TempDir dir;

  // The header JSON of a safetensors file's bytes.
  static nlohmann::json header_of(const std::string& bytes) {
    uint64_t len;
    std::memcpy(&len, bytes.data(), 8);
    return nlohmann::json::parse(bytes.substr(8, len));
  }
  std::string write(const std::string& name, const std::string& bytes) {
    data::write_file_atomic(dir.path() / name, bytes);
    return dir.str(name);
  }
  // A file of one F32 tensor "t" whose header entry is replaced by `entry` (the data kept).
  std::string with_entry(const nlohmann::json& entry) {
    nlohmann::json h = {{"t", entry}};
    std::string json = h.dump();
    json.append((8 - json.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const uint64_t len = json.size();
    std::memcpy(out.data(), &len, 8);
    return write("hostile.safetensors", out + json + std::string(16, '\0'));
  }
};

TEST_F(ExportTest, SafetensorsHaveTheFormatsLayoutAndReadBackEveryDtype) {
  const train::NamedTensors tensors = {{"f32", torch::randn({2, 3})},
                                       {"bf16", torch::randn({4}).to(torch::kBFloat16)},
                                       {"f16", torch::randn({1, 1, 2}).to(torch::kFloat16)},
                                       {"f64", torch::randn({3}, torch::kFloat64)},
                                       {"i64", torch::arange(5)},
                                       {"i32", torch::arange(3, torch::kInt32)},
                                       {"empty", torch::zeros({0, 4})}};
  const std::string bytes = train::safetensors_bytes(tensors, {{"producer", "test"}});
  uint64_t len;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ(len % 8, 0u) << "the header is padded to 8 bytes";
  EXPECT_EQ(bytes[8], '{');
  const auto header = header_of(bytes);
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(header["__metadata__"]["producer"], "test");
  EXPECT_EQ(header["f32"]["dtype"], "F32");
  EXPECT_EQ(header["f32"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(header["f32"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["bf16"]["data_offsets"], nlohmann::json({24, 32}));  // packed, in order
  EXPECT_EQ(bytes.size(), 8 + len + 24 + 8 + 4 + 24 + 40 + 12);
  const auto back = train::read_safetensors(write("all.safetensors", bytes));
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
}

TEST_F(ExportTest, AHostileSafetensorsFileIsRefusedNamingWhatIsWrong) {
  const auto refused = [](const std::string& path, const std::string& why) {
    try {
      train::read_safetensors(path);
      ADD_FAILURE() << "accepted " << why;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  refused(write("short", "abc"), "not a safetensors file");
  std::string huge(8, '\xff');
  refused(write("huge_header", huge + "{}"), "its header claims");
  refused(with_entry({{"dtype", "Q4"}, {"shape", {4}}, {"data_offsets", {0, 16}}}), "dtype 'Q4'");
  // 2^60 elements: refused from the header, nothing allocated.
  refused(with_entry({{"dtype", "F32"}, {"shape", {1ull << 30, 1ull << 30}}, {"data_offsets", {0, 16}}}),
          "more elements than the file has bytes");
  refused(with_entry({{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}), "do not hold its 16 bytes");
  refused(with_entry({{"dtype", "F32"}, {"shape", {-4}}, {"data_offsets", {0, 16}}}), "not a size");
  refused(with_entry({{"dtype", "F32"}, {"shape", {4}}}), "expected an object with dtype, shape and data_offsets");
  EXPECT_EQ(train::read_safetensors(with_entry({{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}})).at("t").numel(), 4);
}

TEST_F(ExportTest, InitFromCopiesAnExportAndNamesTheFirstTensorThatDoesNotFit) {
  model::ModelOptions o;
  o.vocab_size = 32;
  o.n_layers = 2;
  o.d_model = 16;
  o.n_heads = 2;
  o.max_seq_len = 16;
  model::LanguageModel trained(o);
  train::NamedTensors tensors;
  for (const auto& p : trained->named_parameters()) tensors.emplace_back(p.key(), p.value());
  data::write_file_atomic(dir.path() / "model.safetensors", train::safetensors_bytes(tensors));
  torch::manual_seed(99);
  model::LanguageModel fresh(o);
  train::init_from_export(dir.str(), fresh);
  for (const auto& p : trained->named_parameters()) EXPECT_TRUE(torch::equal(fresh->named_parameters()[p.key()], p.value())) << p.key();

  // Another model: refused, naming the first tensor that does not fit.
  const auto refused = [&](const model::ModelOptions& other, const std::string& why) {
    model::LanguageModel m(other);
    try {
      train::init_from_export(dir.str(), m);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  auto wider = o;
  wider.d_model = 32;
  refused(wider, "tensor 'embed.weight' has shape [32, 16], the model expects [32, 32]");
  auto deeper = o;
  deeper.n_layers = 3;
  refused(deeper, "has no tensor 'blocks.2.");
  auto shallower = o;
  shallower.n_layers = 1;
  refused(shallower, "tensor 'blocks.1.");
}

}  // namespace
}  // namespace longnet::testing
