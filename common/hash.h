#pragma once
// A stable 64-bit content hash (FNV-1a) for cache keys: the same bytes give the same key on
// every run and machine, unlike std::hash.
#include <cstddef>
#include <cstdint>
#include <memory>
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

// XXH3 (xxHash, 64 bits): the checksum of token shards and checkpoint files, fast enough
// (several GB/s) to verify a large shard each time it is opened.
uint64_t checksum64(const void* data, size_t n);
// The same over bytes that arrive in pieces: Checksum c; c.add(...); ...; c.value() equals
// checksum64 of the pieces joined.
class Checksum {
 public:
  Checksum();
  ~Checksum();
  Checksum(Checksum&&) noexcept;
  Checksum& operator=(Checksum&&) noexcept;
  void add(const void* data, size_t n);
  uint64_t value() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};
// 16 lowercase hex digits, as checksums are written in manifests.
std::string hex64(uint64_t value);

// splitmix64: a counter-based generator step; used to derive sample offsets from
// (seed, step, rank) without carrying RNG state in checkpoints.
uint64_t mix64(uint64_t x);

}  // namespace longnet::data
