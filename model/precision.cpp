#include "model/precision.h"

#include <ATen/cpu/Utils.h>

namespace longnet::model {

AutocastState AutocastState::current(c10::DeviceType device) {
  return {device, at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
}

AutocastState AutocastState::of(Precision precision, c10::DeviceType device) {
  return {device, precision == Precision::kBFloat16, at::kBFloat16};
}

AutocastScope::AutocastScope(const AutocastState& state)
    : previous_(AutocastState::current(state.device)), nested_(state.enabled) {
  at::autocast::set_autocast_enabled(state.device, state.enabled);
  at::autocast::set_autocast_dtype(state.device, state.dtype);
  if (nested_) at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  // The cache of bfloat16 weight copies lives while any scope is open: cleared with the last.
  if (nested_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(previous_.device, previous_.enabled);
  at::autocast::set_autocast_dtype(previous_.device, previous_.dtype);
}

bool cpu_has_native_bfloat16() {
  const auto capabilities = at::cpu::get_cpu_capabilities();
  const auto has = [&](const char* name) {
    const auto it = capabilities.find(name);
    return it != capabilities.end() && it->second.isBool() && it->second.toBool();
  };
  return has("avx512_bf16") || has("amx_bf16");
}

}  // namespace longnet::model
