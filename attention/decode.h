#pragma once
// Incremental decoding (the KV cache of `longnet generate`): the cache a kernel keeps for one
// sequence decoded position by position, and the pieces the kernels build their caches from.
// Each kernel's file says which keys it keeps (its pattern's rule lives with it); the driver,
// AttentionKernel::extend, is shared (kernel.h).
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "attention/kernel.h"

namespace longnet::attention {

// What is decoded: batch rows, query heads, key/value heads (grouped-query attention: key/value
// head g serves query heads [g H / G, (g + 1) H / G)), head dim, and the most positions the
// sequence will reach (model.max_seq_len); `options`: the keys' dtype and device.
struct DecodeShape {
  int64_t batch = 1, heads = 1, kv_heads = 1, head_dim = 1, max_len = 1;
  at::TensorOptions options;
};

// A kernel's cache for one sequence. Positions arrive in order, from 0; `length` have arrived.
// After each extend() it holds exactly the key/value rows that some later position (below
// shape.max_len) attends under the kernel's pattern, once per part of the pattern that reads
// them (dilated: per (segment, rate) pair), and no others.
class DecodeCache {
 public:
  virtual ~DecodeCache() = default;
  // Key rows held, summed over the key/value heads (per batch row); the value rows match them.
  virtual int64_t rows_held() const = 0;
  // Bytes of the keys and values held, allocated but not yet filled capacity included.
  virtual int64_t bytes() const = 0;

  DecodeShape shape;
  double scale = 1;    // the softmax scale the kernel multiplies into q
  int64_t length = 0;  // positions decoded so far
};

// The factor on q.k: attention.softmax_scale, or 1/sqrt(head_dim) when it is 0.
double softmax_scale_for(double softmax_scale, int64_t head_dim);

// Rows appended at the end of [B, G, n, D]; the storage doubles when full, up to `most` rows.
class RowBuffer {
 public:
  RowBuffer() = default;
  RowBuffer(const DecodeShape& shape, int64_t heads, int64_t most);
  void append(const at::Tensor& rows);  // [B, heads, n, D]
  at::Tensor view() const;              // [B, heads, size, D], the rows so far
  void clear();                         // size 0; the storage is released
  int64_t size() const { return size_; }
  int64_t heads() const { return heads_; }
  int64_t bytes() const;

 private:
  DecodeShape shape_;
  int64_t heads_ = 0, most_ = 0, size_ = 0;
  at::Tensor data_;
};

// Keys and values together: what every cache is made of.
struct KvRows {
  RowBuffer k, v;
  KvRows() = default;
  KvRows(const DecodeShape& shape, int64_t heads, int64_t most) : k(shape, heads, most), v(shape, heads, most) {}
  void append(const at::Tensor& kr, const at::Tensor& vr) {
    k.append(kr);
    v.append(vr);
  }
  void clear() {
    k.clear();
    v.clear();
  }
  int64_t rows_held() const { return k.size() * k.heads(); }
  int64_t bytes() const { return k.bytes() + v.bytes(); }
};

// One query per head against its own keys: q [B, Hq, D] (scaled), k, v [B, Hk, n, D] with
// Hq a multiple of Hk, query heads [t Hq / Hk, (t + 1) Hq / Hk) reading key head t
// -> out [B, Hq, D], lse [B, Hq] (float32 statistics for reduced-precision inputs); n = 0 gives
// out 0 and lse -inf.
AttentionOutput attend_one(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace longnet::attention
