#include "attention/registry.h"

#include <map>
#include <mutex>
#include <stdexcept>

#include "attention/block_sparse.h"
#include "attention/dense.h"
#include "attention/dilated.h"
#include "attention/ring.h"

namespace longnet::attention {
namespace {

std::map<std::string, KernelFactory>& table() {
  static std::map<std::string, KernelFactory> factories;
  return factories;
}

// `ring` in one process: dense attention computed by the ring code over a ring of one rank (the
// sequence-parallel trainer runs it across its sequence ranks).
class RingAttention : public AttentionKernel {
 public:
  explicit RingAttention(const AttentionOptions& options) : options_(options) {}
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override {
    return ring_attention(q, k, v, causal, RingLayout(q.size(1), 0, 1, false), {}, options_.block_size,
                          options_.key_block, /*packet_rows=*/0, options_.softmax_scale, drawn());
  }
  std::string kind() const override { return "ring"; }

 private:
  AttentionOptions options_;
};

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_kernel(const std::string& kind, KernelFactory factory) {
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[kind] = std::move(factory);
}

void register_builtin_kernels() {
  register_kernel("dense", [](const AttentionOptions& o) { return std::make_shared<DenseAttention>(o); });
  register_kernel("dilated", [](const AttentionOptions& o) { return std::make_shared<DilatedAttention>(o); });
  register_kernel("ring", [](const AttentionOptions& o) { return std::make_shared<RingAttention>(o); });
  register_kernel("block_sparse", [](const AttentionOptions& o) { return std::make_shared<BlockSparseAttention>(o); });
}

bool has_kernel(const std::string& kind) {
  std::lock_guard<std::mutex> lock(table_mutex());
  return table().count(kind) > 0;
}

std::vector<std::string> kernel_kinds() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> kinds;
  for (const auto& [kind, factory] : table()) kinds.push_back(kind);
  return kinds;
}

KernelPtr make_kernel(const AttentionOptions& options) {
  KernelFactory factory;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(options.kind);
    if (it != table().end()) factory = it->second;
  }
  if (!factory) {
    std::string valid;
    for (const auto& k : kernel_kinds()) valid += (valid.empty() ? "" : ", ") + k;
    throw std::invalid_argument("unknown attention kind '" + options.kind + "' (valid: " + valid + ")");
  }
  auto kernel = factory(options);
  kernel->dropout_key().rate = options.dropout;
  return kernel;
}

}  // namespace longnet::attention
