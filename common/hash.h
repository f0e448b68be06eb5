#pragma once
// A stable 64-bit content hash (FNV-1a) for cache keys: the same bytes give the same key on
// every run and machine, unlike std::hash.
#include <cstdint>
#include <string>
#include <string_view>

namespace longnet::data {

class ContentHash {
 public:
  ContentHash& add(std::string_view bytes);
  ContentHash& add(uint64_t value);
  uint64_t value() const { return state_; }
  std::string hex() const;  // 16 lowercase hex digits

 private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

// splitmix64: a counter-based generator step; used to derive sample offsets from
// (seed, step, rank) without carrying RNG state in checkpoints.
uint64_t mix64(uint64_t x);

}  // namespace longnet::data
