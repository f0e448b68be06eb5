#pragma once
// Mixed precision (train.precision: bfloat16) through LibTorch's autocast: inside a scope the
// matrix products of the projections, the MLP and the LM head take bfloat16 operands (AMX on
// recent Xeons, tensor cores on GPUs), while the parameters, their gradients, the optimizer
// state, norms, softmax and the loss stay float32. Autocast is thread-local state that a
// backward pass does not see: a computation redone in backward (recompute.h, the chunked loss)
// captures the state of its forward and restores it, so that it computes what the forward did.
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>

#include "model/options.h"

namespace longnet::model {

// The autocast setting of one device type.
struct AutocastState {
  c10::DeviceType device = c10::DeviceType::CPU;
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;
  static AutocastState current(c10::DeviceType device);
  static AutocastState of(Precision precision, c10::DeviceType device);
};

// Sets a state for the lifetime of the object, then restores the one before (and, when the
// outermost scope ends, drops autocast's cache of cast weights).
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& state);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  AutocastState previous_;
  bool nested_;  // this scope enabled autocast and counts in its nesting
};

// Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16). Without either
// LibTorch converts each operand to float32 and back, and bfloat16 autocast costs several
// times what float32 does (a 4,096-token step of configs/passkey.yaml on an AVX2-only CPU:
// docs/configuration.md, train.precision).
bool cpu_has_native_bfloat16();

}  // namespace longnet::model
