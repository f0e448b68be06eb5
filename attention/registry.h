#pragma once
// The one place that maps YAML `attention.kind` to a kernel (STYLE.md, rules 3 and 12).
#include <functional>
#include <string>
#include <vector>

#include "attention/kernel.h"
#include "attention/options.h"

namespace longnet::attention {

using KernelFactory = std::function<KernelPtr(const AttentionOptions&)>;

// Registers the built-in kernels; idempotent. Called once at start-up by the tools and tests
// (static self-registration inside a static library can be dropped by the linker).
void register_builtin_kernels();

void register_kernel(const std::string& kind, KernelFactory factory);
bool has_kernel(const std::string& kind);
std::vector<std::string> kernel_kinds();  // sorted
// Throws std::invalid_argument listing the valid kinds when `options.kind` is unknown.
KernelPtr make_kernel(const AttentionOptions& options);

}  // namespace longnet::attention
