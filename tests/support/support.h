#pragma once
// Shared test helpers: a seeding fixture, one closeness check that prints the max difference,
// and temporary folders.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace longnet::testing {

// Every test starts from the same RNG state and single-threaded (bitwise-reproducible) ops.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(1234);
    at::set_num_threads(1);
  }
};

// True when every |a - b| <= atol + rtol * |b|; the message names the max difference.
::testing::AssertionResult AllClose(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol = 0.0);

// A fresh empty folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string str(const std::string& child = "") const { return (child.empty() ? path_ : path_ / child).string(); }

 private:
  std::filesystem::path path_;
};

// Bytes held by CPU tensors, through a counting allocator installed on first use (LibTorch's
// default underneath): reset_peak() then peak_bytes() is the high-water mark of what ran in
// between, independent of what malloc keeps cached.
class TensorMemory {
 public:
  static void reset_peak();
  static int64_t peak_bytes();   // above what was live at the last reset_peak
  static int64_t live_bytes();
};

// Starts `world` copies of this test binary running the gtest `test` (disabled tests included)
// as the ranks of one job: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (a free port)
// and OMP_NUM_THREADS=1 set, plus extra_env; returns their exit statuses (128 + signal if killed).
std::vector<int> run_ranks(int world, const std::string& test, const std::vector<std::string>& extra_env = {});

// Writes text to path (creating parent folders).
void write_text(const std::filesystem::path& path, const std::string& text);

// A few kilobytes of varied English-like text, deterministic, for tokenizer and training tests.
std::string sample_text(int paragraphs = 40, uint64_t seed = 7);

// Trains a BPE tokenizer of `vocab` pieces on sample_text(paragraphs) plus the words of the
// passkey documents (digits fall back to bytes) under `dir`; returns the model's path.
std::string passkey_tokenizer(const std::filesystem::path& dir, int paragraphs, int64_t vocab);

}  // namespace longnet::testing
