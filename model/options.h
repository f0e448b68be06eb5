#pragma once
// Typed options of the language model (YAML section `model:`), filled by train/config.
#include <cstdint>
#include <string>

#include "attention/options.h"

namespace longnet::model {

struct ModelOptions {
  int64_t vocab_size = 0;  // 0: taken from the tokenizer
  int64_t n_layers = 4;
  int64_t d_model = 256;
  int64_t n_heads = 4;
  int64_t d_ff = 0;        // MLP width; 0: 4 * d_model
  double dropout = 0.0;
  bool bias = false;       // biases in linear layers and norms
  int64_t max_seq_len = 256;  // the rotary tables cover positions [0, max_seq_len)
  double rope_theta = 10000.0;
  double init_std = 0.02;
  attention::AttentionOptions attention;

  int64_t head_dim() const { return d_model / n_heads; }
  int64_t ffn_dim() const { return d_ff > 0 ? d_ff : 4 * d_model; }
};

}  // namespace longnet::model
