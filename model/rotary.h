#pragma once
// Rotary position encoding (Su et al., RoFormer, eq. 34), "rotate half" layout, and xPos
// (Sun et al. 2022, "A Length-Extrapolatable Transformer", as torchscale implements it): the
// rotation times zeta_i^(n / scale_base) on queries and zeta_i^(-n / scale_base) on keys, so
// that q_m . k_n decays as zeta^((m - n) / scale_base) with the distance. n counts from the
// sequence's centre (only m - n matters; centring keeps both factors in range).
#include <torch/arg.h>
#include <torch/nn/module.h>

#include <utility>

namespace longnet::model {

struct RotaryOptions {
  RotaryOptions(int64_t head_dim, int64_t max_seq_len) : head_dim_(head_dim), max_seq_len_(max_seq_len) {}
  TORCH_ARG(int64_t, head_dim);
  TORCH_ARG(int64_t, max_seq_len);
  TORCH_ARG(double, theta) = 10000.0;
  TORCH_ARG(bool, xpos) = false;
  TORCH_ARG(double, xpos_scale_base) = 512.0;
};

class RotaryImpl : public torch::nn::Module {
 public:
  explicit RotaryImpl(const RotaryOptions& options);
  RotaryImpl(int64_t head_dim, int64_t max_seq_len, double theta)
      : RotaryImpl(RotaryOptions(head_dim, max_seq_len).theta(theta)) {}
  // x: [..., T, D] with T <= max_seq_len -> same shape, position t rotated by t * freq;
  // under xPos scaled up (queries) or down (keys).
  torch::Tensor forward(const torch::Tensor& x, bool keys = false);
  // The rows of x sit at `positions` ([T_rows] int64) of a sequence of `length` tokens (a
  // sequence-parallel rank's share): each is rotated, and under xPos scaled, as at its place in
  // the whole sequence, the xPos centre being the whole sequence's.
  torch::Tensor forward_at(const torch::Tensor& x, bool keys, const torch::Tensor& positions, int64_t length);

  RotaryOptions options;

 private:
  // cos and sin at positions n ([T] float64) of a sequence of `length` ([T, D], times xPos's
  // scales), in the type of `to`.
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& n, int64_t length, bool keys,
                                                 const torch::TensorOptions& to);

  torch::Tensor inv_freq_;   // [D], float64
  torch::Tensor log_zeta_;   // [D] (xPos), float64
  struct Cached {
    int64_t T = -1;
    torch::Tensor cos, sin;
  };
  Cached cache_[2];  // queries, keys: not parameters, rebuilt from the options
};
TORCH_MODULE(Rotary);

}  // namespace longnet::model
