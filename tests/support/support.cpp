#include "tests/support/support.h"

#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

namespace longnet::testing {

::testing::AssertionResult AllClose(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol) {
  if (a.sizes() != b.sizes()) {
    std::ostringstream ss;
    ss << "shape " << a.sizes() << " vs " << b.sizes();
    return ::testing::AssertionFailure() << ss.str();
  }
  auto ad = a.detach().to(torch::kDouble), bd = b.detach().to(torch::kDouble);
  if (ad.numel() == 0) return ::testing::AssertionSuccess();
  auto diff = (ad - bd).abs();
  auto bad = diff > (atol + rtol * bd.abs());
  bad = bad | (ad.isnan() != bd.isnan());
  const double max_diff = torch::nan_to_num(diff, 0.0, 0.0, 0.0).max().item<double>();
  if (bad.any().item<bool>()) {
    return ::testing::AssertionFailure() << "max |a - b| = " << max_diff << " exceeds atol " << atol << " + rtol " << rtol
                                         << " (" << bad.sum().item<int64_t>() << " of " << ad.numel() << " elements)";
  }
  return ::testing::AssertionSuccess() << "max |a - b| = " << max_diff;
}

TempDir::TempDir() {
  static int counter = 0;
  path_ = std::filesystem::temp_directory_path() /
          ("longnet-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string sample_text(int paragraphs, uint64_t seed) {
  static const char* words[] = {"the", "attention", "of", "a", "model", "is", "long", "and", "dilated", "segment",
                                "rate", "token", "context", "king", "queen", "speaks", "to", "her", "loyal", "court",
                                "while", "rain", "falls", "on", "old", "stone", "walls", "ring", "passes", "keys"};
  std::mt19937_64 rng(seed);
  std::ostringstream ss;
  for (int p = 0; p < paragraphs; ++p) {
    const int sentences = 2 + static_cast<int>(rng() % 4);
    for (int s = 0; s < sentences; ++s) {
      const int n = 4 + static_cast<int>(rng() % 9);
      for (int w = 0; w < n; ++w) {
        std::string word = words[rng() % (sizeof(words) / sizeof(words[0]))];
        if (w == 0) word[0] = static_cast<char>(std::toupper(word[0]));
        ss << word << (w + 1 < n ? " " : "");
      }
      ss << ". ";
    }
    ss << "\n\n";
  }
  return ss.str();
}

}  // namespace longnet::testing
