// The corpus reader and the tokenizer on any bytes: UTF-8 or not, NULs, huge lines, JSONL lines
// that are not JSON or not objects. The last byte chooses a single file (text, split by bytes, or
// JSONL) or a folder of four files (.txt, .jsonl and neither, one in a subfolder), and whether bad
// JSONL lines are skipped. Each document read is encoded with a byte-fallback BPE tokenizer; a
// document that is valid UTF-8 (and without U+2581, see data/tokenizer.h) must decode back to
// itself.
#include <fuzzer/FuzzedDataProvider.h>

#include <memory>
#include <string>

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "tests/fuzz/fuzz.h"

using namespace longnet;
namespace fs = std::filesystem;

namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

const data::Tokenizer& tokenizer() {
  static const auto tok = [] {
    const fs::path dir = fuzz::scratch() / "tokenizer";
    fs::create_directories(dir);
    std::string text;
    for (int i = 0; i < 200; ++i)
      text += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog, naïve café — 東京\n";
    fuzz::put(dir / "train.txt", text);
    data::DataOptions d;
    d.path = (dir / "train.txt").string();
    data::TokenizerOptions t;
    t.path = (dir / "bpe.model").string();
    t.type = "bpe";
    t.vocab_size = 320;
    data::train_tokenizer(t, data::load_corpus(d));
    return std::make_unique<data::Tokenizer>(t.path);
  }();
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet();
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t mode = in.ConsumeIntegral<uint8_t>();
  const fs::path root = fuzz::scratch() / "input";
  std::error_code ec;
  fs::remove_all(root, ec);
  data::DataOptions options;
  options.val_fraction = (1 + (mode >> 4) % 7) / 8.0;
  options.skip_bad_lines = mode & 4;
  options.format = (mode & 8) ? "jsonl" : "auto";
  if (mode & 1) {
    fs::create_directories(root / "sub");
    fuzz::put(root / "a.txt", in.ConsumeRandomLengthString());
    fuzz::put(root / "sub" / "b.jsonl", in.ConsumeRandomLengthString());
    fuzz::put(root / "c.jsonl", in.ConsumeRandomLengthString());
    fuzz::put(root / "d.bin", in.ConsumeRemainingBytesAsString());
    options.format = (mode & 8) ? "jsonl" : (mode & 2) ? "text" : "auto";
    options.path = root.string();
  } else {
    fs::create_directories(root);
    const fs::path file = root / ((mode & 2) ? "corpus.jsonl" : "corpus.txt");
    fuzz::put(file, in.ConsumeRemainingBytesAsString());
    options.path = file.string();
  }
  try {
    const auto corpus = data::load_corpus(options);
    for (const auto* split : {&corpus.train, &corpus.val})
      for (const auto& doc : *split) {
        const auto ids = tokenizer().encode(doc.text);
        for (int id : ids)
          if (id < 0 || id >= tokenizer().vocab_size()) fuzz::fail("a token id outside the vocabulary");
        // U+2581 is SentencePiece's space mark and decodes as a space (data/tokenizer.h).
        if (valid_utf8(doc.text) && doc.text.find("\xE2\x96\x81") == std::string::npos && tokenizer().decode(ids) != doc.text)
          fuzz::fail("valid UTF-8 that does not decode back to itself: '" + doc.text + "'");
      }
  } catch (const Error&) {
  }
  return 0;
}
