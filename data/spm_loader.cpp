#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "common/errors.h"
#include "data/spm_api.h"

#ifndef LONGNET_SPM_MODULE
#error "LONGNET_SPM_MODULE must name the built SentencePiece module"
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LONGNET_SANITIZED 1
#endif
#endif

namespace longnet::data {
namespace {

// RTLD_DEEPBIND (spm_api.h says why) cannot be used under the sanitizers' runtime, which must
// see every allocation: the fuzzing build (tests/fuzz) loads the module without it, in processes
// that hold no other protobuf.
#ifdef LONGNET_SANITIZED
constexpr int kBind = 0;
#else
constexpr int kBind = RTLD_DEEPBIND;
#endif

}  // namespace

const SpmApi& spm() {
  static const SpmApi* api = nullptr;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const char* env = std::getenv("LONGNET_SPM_MODULE");
    const std::string path = env && *env ? env : LONGNET_SPM_MODULE;
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kBind);
    if (!handle) {
      error = std::string("cannot load the SentencePiece module ") + path + ": " + ::dlerror() +
              " (rebuild longnet, or set LONGNET_SPM_MODULE to liblongnet_spm.so)";
      return;
    }
    auto fn = reinterpret_cast<const SpmApi* (*)()>(::dlsym(handle, "longnet_spm_api"));
    if (!fn) {
      error = path + ": not a longnet SentencePiece module (no longnet_spm_api)";
      return;
    }
    api = fn();
  });
  if (!api) throw DataError(error);
  return *api;
}

}  // namespace longnet::data
