#include "tests/support/support.h"

#include "common/process.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "train/distributed.h"

#include <c10/core/CPUAllocator.h>
#include <sys/wait.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

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

namespace {

std::atomic<int64_t> g_live{0}, g_peak{0}, g_base{0};

// Sizes by address: LibTorch also uses the raw_allocate / raw_deleter API, which needs the
// data pointer itself as the context and one fixed deleter.
std::mutex g_mutex;
std::unordered_map<void*, int64_t> g_sizes;
c10::Allocator* g_base_allocator = nullptr;

void counted_free(void* ptr) {
  int64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_sizes.find(ptr);
    if (it != g_sizes.end()) {
      bytes = it->second;
      g_sizes.erase(it);
    }
  }
  g_live -= bytes;
  g_base_allocator->raw_deallocate(ptr);
}

class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    void* data = g_base_allocator->raw_allocate(n);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      g_sizes[data] = static_cast<int64_t>(n);
    }
    const int64_t live = g_live += static_cast<int64_t>(n);
    int64_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
    }
    return {data, data, &counted_free, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &counted_free; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

void install_counting_allocator() {
  static CountingAllocator* counting = [] {
    g_base_allocator = c10::GetDefaultCPUAllocator();
    auto* a = new CountingAllocator();
    c10::SetCPUAllocator(a, /*priority=*/100);
    return a;
  }();
  (void)counting;
}

}  // namespace

void TensorMemory::reset_peak() {
  install_counting_allocator();
  g_base = g_live.load();
  g_peak = g_base.load();
}
int64_t TensorMemory::peak_bytes() { return g_peak.load() - g_base.load(); }
int64_t TensorMemory::live_bytes() { return g_live.load(); }

std::vector<int> run_ranks(int world, const std::string& test, const std::vector<std::string>& extra_env) {
  const std::string exe = self_exe();
  const int port = train::free_local_port();
  std::vector<std::string> extra = {"OMP_NUM_THREADS=1"};
  extra.insert(extra.end(), extra_env.begin(), extra_env.end());
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank)
    pids.push_back(spawn(exe, {exe, "--gtest_also_run_disabled_tests", "--gtest_filter=" + test, "--gtest_brief=1"},
                         rank_environment(rank, world, port, extra)));
  std::vector<int> status;
  for (pid_t pid : pids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    status.push_back(exit_code(st));
  }
  return status;
}


std::string passkey_tokenizer(const std::filesystem::path& dir, int paragraphs, int64_t vocab) {
  write_text(dir / "passkey_corpus.txt",
             sample_text(paragraphs) + "The grass is green. The sky is blue. What is the pass key?\n");
  data::DataOptions d;
  d.path = (dir / "passkey_corpus.txt").string();
  data::TokenizerOptions t;
  t.path = (dir / "passkey_bpe.model").string();
  t.vocab_size = vocab;
  data::train_tokenizer(t, data::load_corpus(d));
  return t.path;
}

}  // namespace longnet::testing
