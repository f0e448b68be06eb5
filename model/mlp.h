#pragma once
// Position-wise feed-forward network:
//   gelu:   fc2(GELU(fc1 x))                      fc1: C -> F
//   swiglu: fc2(SiLU(x W_gate) * (x W_up))         fc1 = [W_gate; W_up] fused: C -> 2F
//           (Shazeer 2020, "GLU Variants Improve Transformer")
// With Sub-LN (MAGNETO) a norm over the F hidden units sits before fc2.
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "model/norm.h"
#include "model/options.h"

namespace longnet::model {

struct MlpOptions {
  MlpOptions(int64_t d_model, int64_t d_ff) : d_model_(d_model), d_ff_(d_ff) {}
  static MlpOptions from(const ModelOptions& m);

  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, d_ff);
  TORCH_ARG(MlpKind, kind) = MlpKind::kGelu;
  TORCH_ARG(bool, bias) = false;
  TORCH_ARG(bool, subln) = false;
  TORCH_ARG(NormType, norm_type) = NormType::kLayerNorm;
  TORCH_ARG(double, dropout) = 0.0;
  // > 0: run in chunks of this many tokens, each recomputed in backward, so the [B, T, F]
  // hidden units never exist whole.
  TORCH_ARG(int64_t, chunk_tokens) = 0;
};

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const MlpOptions& options);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x);

  MlpOptions options;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Norm inner_norm{nullptr};  // Sub-LN only

 private:
  torch::Tensor whole(const torch::Tensor& x);
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace longnet::model
