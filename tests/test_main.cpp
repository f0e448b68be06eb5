// The test binary's main: registers the kernels once and skips *_CUDA tests without a GPU,
// as PyTorch's own C++ tests do (STYLE.md, rule 15).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include "attention/registry.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  spdlog::set_level(spdlog::level::warn);
  longnet::attention::register_builtin_kernels();
  if (!torch::cuda::is_available()) {
    auto& filter = ::testing::GTEST_FLAG(filter);
    filter += (filter.find('-') == std::string::npos ? "-" : ":") + std::string("*_CUDA");
  }
  return RUN_ALL_TESTS();
}
