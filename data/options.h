#pragma once
// Typed options of the data pipeline (YAML sections `data:` and `tokenizer:`).
#include <cstdint>
#include <string>

namespace longnet::data {

struct DataOptions {
  std::string path;              // a text or JSONL file, or a folder searched recursively for *.txt and *.jsonl
  std::string format = "auto";   // auto (by extension) | text | jsonl
  std::string text_key = "text"; // the field of a JSONL object that holds its document
  bool skip_bad_lines = false;   // a JSONL line that is not such an object: skipped and counted, not an error
  double val_fraction = 0.1;     // file: the last fraction of its bytes; folder: whole documents
  int64_t seq_len = 256;         // tokens per training window
  int64_t batch_size = 8;        // windows per micro-batch
  std::string cache_dir = ".cache/longnet";  // token shards, keyed by content hash
  double passkey_fraction = 0;   // training windows replaced by synthetic passkey documents (passkey.h)
  int64_t passkey_short_length = 256;  // the longest of the short documents after a window's first
  int64_t passkey_reach_length = 0;    // the shortest a window's first document may be (0: any length)
};

struct TokenizerOptions {
  std::string path;              // the SentencePiece .model file; trained when missing
  std::string type = "bpe";      // bpe | unigram | char
  int64_t vocab_size = 4096;     // for char: an upper bound, the corpus decides
  int64_t max_sentences = 300000;  // lines sampled to train the tokenizer (0: all)
  bool split_digits = false;     // every digit its own piece (SentencePiece's split_digits)
};

// The keys of each section, each listed once: f(key, field) for each, in the order they are
// written back. train/config reads and writes the sections through these lists, and a test
// checks that docs/configuration.md documents exactly these keys. O: the options, const or not.
template <typename O, typename F>
void data_fields(O& o, F&& f) {
  f("path", o.path);
  f("format", o.format);
  f("text_key", o.text_key);
  f("skip_bad_lines", o.skip_bad_lines);
  f("val_fraction", o.val_fraction);
  f("seq_len", o.seq_len);
  f("batch_size", o.batch_size);
  f("cache_dir", o.cache_dir);
  f("passkey_fraction", o.passkey_fraction);
  f("passkey_short_length", o.passkey_short_length);
  f("passkey_reach_length", o.passkey_reach_length);
}

template <typename O, typename F>
void tokenizer_fields(O& o, F&& f) {
  f("path", o.path);
  f("type", o.type);
  f("vocab_size", o.vocab_size);
  f("max_sentences", o.max_sentences);
  f("split_digits", o.split_digits);
}

}  // namespace longnet::data
