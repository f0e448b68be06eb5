#include "common/hash.h"

#define XXH_INLINE_ALL  // the functions compiled here, from Debian's libxxhash-dev header
#include <xxhash.h>

#include <cstdio>

namespace longnet::data {

ContentHash& ContentHash::add(std::string_view bytes) {
  uint64_t h = state_;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  state_ = h;
  return *this;
}

ContentHash& ContentHash::add(uint64_t value) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return add(std::string_view(buf, 8));
}

std::string ContentHash::hex() const { return hex64(state_); }

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

uint64_t checksum64(const void* data, size_t n) { return XXH3_64bits(data, n); }

struct Checksum::State {
  XXH3_state_t xxh;
};

Checksum::Checksum() : state_(std::make_unique<State>()) { XXH3_64bits_reset(&state_->xxh); }
Checksum::~Checksum() = default;
Checksum::Checksum(Checksum&&) noexcept = default;
Checksum& Checksum::operator=(Checksum&&) noexcept = default;
void Checksum::add(const void* data, size_t n) { XXH3_64bits_update(&state_->xxh, data, n); }
uint64_t Checksum::value() const { return XXH3_64bits_digest(&state_->xxh); }

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace longnet::data
