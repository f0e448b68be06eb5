#include "attention/registry.h"

#include <cmath>
#include <map>
#include <mutex>
#include <sstream>

#include "attention/block_sparse.h"
#include "attention/dense.h"
#include "attention/dilated.h"
#include "attention/ring.h"
#include "common/errors.h"

namespace longnet::attention {
namespace {

std::map<std::string, KernelEntry>& table() {
  static std::map<std::string, KernelEntry> entries;
  return entries;
}

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::string valid_kinds() {
  std::string valid;
  for (const auto& k : kernel_kinds()) valid += (valid.empty() ? "" : ", ") + k;
  return valid;
}

template <typename T>
std::string str(const T& x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

}  // namespace

void register_kernel(const std::string& kind, KernelEntry entry) {
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[kind] = std::move(entry);
}

void register_builtin_kernels() {
  register_kernel("dense", dense_entry());
  register_kernel("dilated", dilated_entry());
  register_kernel("ring", ring_entry());
  register_kernel("block_sparse", block_sparse_entry());
}

bool has_kernel(const std::string& kind) {
  std::lock_guard<std::mutex> lock(table_mutex());
  return table().count(kind) > 0;
}

std::vector<std::string> kernel_kinds() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> kinds;
  for (const auto& [kind, entry] : table()) kinds.push_back(kind);
  return kinds;
}

const KernelEntry& kernel_entry(const std::string& kind) {
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(kind);
    if (it != table().end()) return it->second;  // entries are never removed, only replaced
  }
  throw ConfigError("unknown attention kind '" + kind + "' (valid: " + valid_kinds() + ")");
}

KernelPtr make_kernel(const AttentionOptions& options) {
  auto kernel = kernel_entry(options.kind).make(options);
  kernel->dropout_key().rate = options.dropout;
  return kernel;
}

std::vector<OptionProblem> check_options(const AttentionOptions& a, const KernelContext& context) {
  if (!has_kernel(a.kind)) return {{"attention.kind", "'" + a.kind + "'", "one of " + valid_kinds()}};
  OptionProblems p;
  p.require(a.block_size >= 1, "attention.block_size", str(a.block_size), "an integer >= 1");
  p.require(a.key_block >= 1, "attention.key_block", str(a.key_block), "an integer >= 1");
  p.require(a.softmax_scale >= 0 && std::isfinite(a.softmax_scale), "attention.softmax_scale", str(a.softmax_scale),
          "a number > 0, or 0 for 1/sqrt(head_dim)");
  p.require(a.length_scale == 0 || a.length_scale >= 2, "attention.length_scale", str(a.length_scale),
            "0 (off) or a number of keys >= 2");
  p.require(a.dropout >= 0 && a.dropout < 1, "attention.dropout", str(a.dropout), "a number in [0, 1)");
  const auto& entry = kernel_entry(a.kind);
  if (entry.check)
    for (auto& own : entry.check(a, context)) p.list.push_back(std::move(own));
  return p.list;
}

double density(const AttentionKernel& kernel, int64_t T, bool causal) {
  const double t = static_cast<double>(T);
  return kernel.attended_pairs(T, causal) / (causal ? t * (t + 1) / 2 : t * t);
}

}  // namespace longnet::attention
