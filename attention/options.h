#pragma once
// Typed options of the attention kernels (YAML section `attention:`), filled by train/config.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace longnet::attention {

// How dilated attention combines its (segment length, rate) pairs (attention.mix):
//   lse          every head attends under every pair, parts weighted by their softmax
//                denominators (LongNet, section 2.2)
//   head_groups  the heads split into one group per pair (the Python port's variant)
enum class Mix { kLse, kHeadGroups };
const std::vector<std::string>& mix_names();  // the YAML names, in enum order
bool parse(const std::string& name, Mix& out);  // false for an unknown name
const std::string& name_of(Mix v);
inline const std::vector<std::string>& choices(Mix) { return mix_names(); }

// Which rows of a segment dilated attention thins to every r-th (attention.dilate):
//   queries_and_keys  a head keeps the queries and keys at its offset and attends among them
//                     (LongNet, section 2.2): a query meets a far key only in the head whose
//                     offset both share
//   keys              every query of the segment attends to the keys at the head's offset, so
//                     the heads together reach every key of the segment in one layer; r times
//                     the query rows of queries_and_keys per pair, still w / r keys per query
//   every_offset      every head keeps every offset: a query meets, in every head, the keys of
//                     the segment at its own offset (position i sees j iff i = j mod r: Sparse
//                     Transformer's strided pattern inside each segment), so a far key is met in
//                     all heads rather than in the one whose offset it shares; r times the
//                     query rows of queries_and_keys per pair, still w / r keys per query
//   distance          a head keeps, for every query of the segment, the keys at a distance
//                     from it equal to the head's offset mod r (position i sees j iff
//                     i - j = offset mod r): a far key is met by one class of heads for every
//                     query, and the tokens of a run of keys by the same class for the queries
//                     that read them in order (under keys, consecutive keys alternate between
//                     classes); every_offset's cost
enum class Dilate { kQueriesAndKeys, kKeys, kEveryOffset, kDistance };
const std::vector<std::string>& dilate_names();
bool parse(const std::string& name, Dilate& out);
const std::string& name_of(Dilate v);
inline const std::vector<std::string>& choices(Dilate) { return dilate_names(); }

// dilated (LongNet, dilated.h): one (segment length, dilation rate) pair per entry.
struct DilatedOptions {
  std::vector<int64_t> segment_lengths = {2048};
  std::vector<int64_t> dilation_rates = {1};
  Mix mix = Mix::kLse;
  Dilate dilate = Dilate::kQueriesAndKeys;
};

// block_sparse (block_sparse.h): which (query block, key block) pairs are attended, in units of
// attention.block_size.
struct BlockSparseOptions {
  int64_t local_blocks = 1;    // key blocks on each side of the diagonal (0: the diagonal only; -1: none)
  int64_t stride = 0;          // also every stride-th block behind/ahead (0: off)
  int64_t global_blocks = 0;   // the first g blocks see, and are seen by, every block
  int64_t random_blocks = 0;   // extra random key blocks per query block (BigBird)
  int64_t seed = 0;            // for random_blocks
  std::vector<std::pair<int64_t, int64_t>> pairs;  // explicit (query block, key block) pairs
};

// The `attention:` section: what every kind reads, then each kind's own settings.
struct AttentionOptions {
  std::string kind = "dense";  // a name from the kernel registry
  int64_t block_size = 256;    // query tile of the tiled kernels; block_sparse's block
  int64_t key_block = 1024;    // key tile: rows up to this many keys take one fused softmax
  bool causal = true;          // decoder-only language models attend to the past only
  double softmax_scale = 0;    // the factor on q.k before the softmax; 0: 1/sqrt(head_dim)
  int64_t length_scale = 0;    // L: a row that sees n > L keys has q.k times ln n / ln L (length_scale.h); 0: off
  double dropout = 0;          // attention-probability dropout in training (dropout.h); 0: off
  DilatedOptions dilated;
  BlockSparseOptions block_sparse;
};

// The keys of `attention:` (one flat section: each kind's keys sit beside the shared ones),
// each listed once: train/config reads and writes them through these lists, and a test checks
// docs/configuration.md against them. O: the options struct, const or not.
template <typename O, typename F>
void dilated_fields(O& o, F&& f) {
  f("segment_lengths", o.segment_lengths);
  f("dilation_rates", o.dilation_rates);
  f("mix", o.mix);
  f("dilate", o.dilate);
}

template <typename O, typename F>
void block_sparse_fields(O& o, F&& f) {
  f("local_blocks", o.local_blocks);
  f("stride", o.stride);
  f("global_blocks", o.global_blocks);
  f("random_blocks", o.random_blocks);
  f("seed", o.seed);
  f("pairs", o.pairs);
}

template <typename O, typename F>
void attention_fields(O& o, F&& f) {
  f("kind", o.kind);
  f("block_size", o.block_size);
  f("causal", o.causal);
  f("key_block", o.key_block);
  f("softmax_scale", o.softmax_scale);
  f("length_scale", o.length_scale);
  f("dropout", o.dropout);
  dilated_fields(o.dilated, f);
  block_sparse_fields(o.block_sparse, f);
}

}  // namespace longnet::attention
