#pragma once
// The LM head and cross-entropy over chunks of tokens, forward and backward, so that no
// [tokens, vocab] tensor exists: memory O(chunk * vocab) whatever the sequence length.
#include <ATen/core/Tensor.h>

namespace longnet::model {

// h: [N, C], weight: [V, C] (the tied embedding), targets: [N] int64 -> sum over the N tokens
// of -log softmax(h W^T)[target] (nats), a scalar; differentiable in h and weight. The
// backward recomputes each chunk's logits: d logits = softmax - onehot(target). A target of
// kNoTarget (common/targets.h) adds 0 and no gradient.
at::Tensor chunked_cross_entropy_sum(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& targets,
                                     int64_t chunk);

// The same per token, without autograd: -> [N] losses (nats), 0 at kNoTarget.
at::Tensor chunked_token_losses(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& targets,
                                int64_t chunk);

}  // namespace longnet::model
