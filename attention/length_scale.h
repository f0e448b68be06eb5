#pragma once
// Log-length attention scaling (attention.length_scale; off at 0). A query row that sees n keys
// has its q.k multiplied by max(1, ln n / ln L), L = attention.length_scale, on top of
// attention.softmax_scale. Why: a key that outscores each of n - 1 others by a margin m gets
// a share 1 / (1 + (n - 1) e^-m) of the softmax, which falls as n grows; a model trained mostly
// on short contexts learns margins that suffice there and then spreads its attention over a long
// one. Scaling the scores by ln n grows the margin with the number of competitors (the "log-n"
// scaling of Chiang & Cholak 2022, Qwen's logn attention, Nakanishi 2025's Scalable-Softmax);
// below L keys the layer is what it was without it.
//
// The factor multiplies q before the kernel, so every kind, its cross-rank form and its decode
// cache apply it alike; n counts the keys a dense mask would give the row (a sparse kind's
// pattern does not change it): the row's position in its document plus one under causal masking,
// its document's length otherwise.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "attention/documents.h"

namespace longnet::attention {

// n per row: [B, T] when starts is given (each row's documents, attention/documents.h), else
// [1, T] for rows at `positions` (int64 [T], their places in one sequence of `length` rows).
at::Tensor keys_seen(const at::Tensor& positions, int64_t length, bool causal, const DocumentStarts* starts);

// keys_seen -> the factor on each row's q: max(1, ln n / ln L), float64, same shape.
at::Tensor length_scale_factors(const at::Tensor& keys_seen, int64_t length_scale);

}  // namespace longnet::attention
