#include "attention/dilated.h"

#include <torch/torch.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>

#include "attention/blockwise.h"
#include "attention/merge.h"

namespace longnet::attention {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using torch::indexing::Slice;

using Unit = DilatedUnit;

// The runs of segments of a unit whose queries at q_offset have keys: the full segments of
// min(w, T), then the shorter tail, as (start, segment length, count); a run is left out when
// either offset falls outside its segments.
struct SegmentRun {
  int64_t start, len, count;
};
std::vector<SegmentRun> unit_segments(int64_t T, const Unit& u, int64_t q_offset) {
  const int64_t w = std::min(u.w, T), n_full = T / w, tail = T - n_full * w;
  std::vector<SegmentRun> runs;
  if (n_full > 0 && std::max(u.offset, q_offset) < w) runs.push_back({0, w, n_full});
  if (tail > 0 && std::max(u.offset, q_offset) < tail) runs.push_back({n_full * w, tail, 1});
  return runs;
}

// A run's segments of x ([B, H, T, ...] head-major) on the unit's heads: [B, Ho, n_seg, len, ...].
torch::Tensor run_segments(const torch::Tensor& x, const Unit& u, const SegmentRun& run) {
  return x.index({Slice(), Slice(u.h_first, u.h_end, u.h_step)})
      .narrow(2, run.start, run.count * run.len)
      .unflatten(2, {run.count, run.len});
}

// The rows at `offset` of a run's segments, [B, Ho, n_seg, m, ...]: the rows of item (b, h, g)
// are at positions start + g * len + offset + i * u.r.
torch::Tensor run_rows(const torch::Tensor& x, const Unit& u, const SegmentRun& run, int64_t offset) {
  return run_segments(x, u, run).index({Slice(), Slice(), Slice(), Slice(offset, run.len, u.r)});
}

// The tile spec of item (b, h, g) of a run under dropout: its stream and its rows' positions.
TileSpec item_spec(const TileSpec& spec, const Unit& u, int64_t q_offset, const SegmentRun& run, int64_t b, int64_t h,
                   int64_t g) {
  if (!spec.drops()) return spec;
  TileSpec s = spec;
  const int64_t first = run.start + g * run.len;
  s.drop_stream = spec.dropout->stream(b, u.h_first + h * u.h_step);
  s.drop_q_pos = torch::arange(first + q_offset, first + run.len, u.r, torch::kLong);
  s.drop_k_pos = torch::arange(first + u.offset, first + run.len, u.r, torch::kLong);
  return s;
}

// One call's worth of a unit: its query rows and key rows as views of a head-major tensor, with
// the same three leading dimensions (batch, head, segment: the items), and their tile spec.
// Keys read by `fold` query slices at once (all_queries, below) are expanded over dimension 3
// of the query rows; their gradients are summed back over it.
struct Piece {
  std::function<torch::Tensor(const torch::Tensor&)> rows, key_rows;
  int64_t fold = 1;
  TileSpec spec;
  // The spec of item (b, h, g) where items differ (dropout's positions); else `spec`.
  std::function<TileSpec(int64_t, int64_t, int64_t)> item_spec;

  TileSpec item(int64_t b, int64_t h, int64_t g) const { return item_spec ? item_spec(b, h, g) : spec; }

  torch::Tensor keys(const torch::Tensor& x) const {
    auto k = key_rows(x);
    if (fold == 1) return k;
    auto sizes = k.sizes().vec();
    sizes.insert(sizes.begin() + 3, fold);
    return k.unsqueeze(3).expand(sizes);
  }
};

// The calls of a unit. Each offset of query rows against the keys at the unit's offset is one
// call per run, its keys shifted by key_shift (dilated.h). Under all_queries without dropout,
// r such calls fold into two: the rows from the unit's offset on, taken r at a time, give r
// slices (query i of slice s at offset + i r + s) that all see keys 0 .. i, so they share one
// causal tile over expanded keys; the last n mod r rows see every key; rows before the offset
// see none. Without causal masking every row of the segment sees every key: one call.
std::vector<Piece> unit_pieces(const Unit& u, int64_t T, const TileSpec& spec) {
  std::vector<Piece> pieces;
  if (u.all_queries && u.r > 1 && !spec.drops()) {  // at r = 1 every row is at the offset
    for (const auto& run : unit_segments(T, u, u.offset)) {
      const int64_t n = run.len - u.offset, M = n / u.r, rest = n % u.r;
      auto all_keys = [u, run](const torch::Tensor& x) { return run_rows(x, u, run, u.offset); };
      if (!spec.causal) {
        pieces.push_back({[u, run](const torch::Tensor& x) { return run_segments(x, u, run); }, all_keys, 1, spec, {}});
        continue;
      }
      if (M > 0) {
        auto rows = [u, run, M](const torch::Tensor& x) {
          return run_segments(x, u, run).narrow(3, u.offset, M * u.r).unflatten(3, {M, u.r}).transpose(3, 4);
        };
        auto keys = [u, run, M](const torch::Tensor& x) { return run_rows(x, u, run, u.offset).narrow(3, 0, M); };
        pieces.push_back({rows, keys, u.r, spec, {}});
      }
      if (rest > 0) {
        TileSpec every = spec;
        every.causal = false;
        auto rows = [u, run, M, rest](const torch::Tensor& x) {
          return run_segments(x, u, run).narrow(3, u.offset + M * u.r, rest);
        };
        pieces.push_back({rows, all_keys, 1, every, {}});
      }
    }
    return pieces;
  }
  for (int64_t qo : query_offsets(u)) {
    TileSpec shifted = spec;
    shifted.k_pos0 = key_shift(u, qo);
    for (const auto& run : unit_segments(T, u, qo)) {
      pieces.push_back({[u, run, qo](const torch::Tensor& x) { return run_rows(x, u, run, qo); },
                        [u, run](const torch::Tensor& x) { return run_rows(x, u, run, u.offset); }, 1, shifted,
                        [shifted, u, qo, run](int64_t b, int64_t h, int64_t g) {
                          return item_spec(shifted, u, qo, run, b, h, g);
                        }});
    }
  }
  return pieces;
}

// Calls f(item) for every (batch, head, segment) of a [B, Ho, n_seg, ...] view, one item
// per intra-op thread: each item is one segment's sparse attention.
template <typename F>
void for_each_item(const torch::Tensor& view, const F& f) {
  const int64_t Ho = view.size(1), S = view.size(2);
  for_each_unit(view.size(0) * Ho * S, [&](int64_t u) { f(u / (Ho * S), (u / S) % Ho, u % S); });
}

// Whether the items of a view [B, Ho, n_seg, ..., m, D] run as one call on the whole view instead
// of one call each. A window packed with short documents has hundreds of items of a few dozen
// rows per layer, and one call each costs more in call overhead than in arithmetic; one call
// on the view copies it (its rows are strided) and holds one score tile per item at once, so
// only views whose copies and tiles stay under dilated_batch_limit() go that way, and a long
// sequence's views keep the per-item path and its memory bound. Under dropout every item draws
// its own masks (item_spec), so items run one call each.
bool fits_one_call(const torch::Tensor& view, const TileSpec& spec) {
  if (spec.drops()) return false;
  const int64_t m = view.size(-2), D = view.size(-1), rows = view.numel() / D;
  // q, k, v, out and dout as float32, and a [min(m, q_block), min(m, k_block)] tile per item.
  const int64_t bytes = 4 * (rows * 5 * D + rows / m * std::min(m, spec.q_block) * std::min(m, spec.k_block));
  return bytes <= dilated_batch_limit();
}

TileSpec tile_spec(const AttentionOptions& o, bool causal) {
  TileSpec spec;
  spec.causal = causal;
  spec.q_block = o.block_size;
  spec.k_block = std::max(o.block_size, o.key_block);
  return spec;
}

// The bias of the one biased call (dilated.h, one_call_bias) where q's heads and rows take it:
// no dropout (whose masks are per item), and a core that takes a bias; else undefined.
torch::Tensor one_call(const AttentionOptions& options, const torch::Tensor& q, const TileSpec& spec) {
  if (spec.drops() || !biased_core_fits(q)) return {};
  return one_call_bias(options, q.size(1), q.size(2), q);
}

// The whole dilated attention as one autograd function. The pairs are mixed by lse (LongNet
// eq. 10) as they are computed: each segment's (out, lse) is merged into the running result on
// its own rows while in cache. Mixed that way, out is one softmax over the union of every
// pair's keys, normalised by the final lse, so the backward of each pair is the tiled backward
// with the final out and lse: d s_ij = P_ij (dout . v_j - dout . out + dlse) with
// P_ij = exp(s_ij - lse). Nothing per pair is kept, and memory is q, k, v, out and lse.
class DilatedFunction : public torch::autograd::Function<DilatedFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const AttentionOptions& options, bool causal,
                               const std::vector<int64_t>& dropout) {
    ctx->set_materialize_grads(false);  // an unused lse keeps no gradient (blockwise.h)
    const auto drop = DropoutKey::unpack(dropout);
    auto spec = tile_spec(options, causal);
    spec.dropout = &drop;
    // The options by value: the kernel that called us may be gone before backward runs.
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["segment_lengths"] = options.dilated.segment_lengths;
    ctx->saved_data["dilation_rates"] = options.dilated.dilation_rates;
    ctx->saved_data["head_groups"] = options.dilated.mix == Mix::kHeadGroups;
    ctx->saved_data["dilate"] = static_cast<int64_t>(options.dilated.dilate);
    ctx->saved_data["block_size"] = options.block_size;
    ctx->saved_data["key_block"] = options.key_block;
    ctx->saved_data["dropout"] = dropout;
    if (auto bias = one_call(options, q, spec); bias.defined()) {
      auto [out, lse] = biased_forward(q, k, v, bias, causal);
      ctx->save_for_backward({q, k, v, out, lse});
      return {out, lse};
    }
    auto out = torch::zeros_like(q);
    auto lse = torch::full({q.size(0), q.size(1), q.size(2)}, -std::numeric_limits<double>::infinity(), lse_options(q));
    // Pieces of one unit touch disjoint query rows, items of one piece disjoint rows and heads:
    // the merges of the items running in parallel never meet; the pieces follow one another.
    for (const auto& u : dilated_units(options, q.size(1))) {
      for (const auto& p : unit_pieces(u, q.size(2), spec)) {
        auto qv = p.rows(q), kv = p.keys(k), vv = p.keys(v), ov = p.rows(out), lv = p.rows(lse);
        if (fits_one_call(qv, p.spec)) {
          auto o = torch::zeros_like(qv, torch::MemoryFormat::Contiguous);
          auto l = torch::full(lv.sizes(), -std::numeric_limits<double>::infinity(), lse_options(q));
          tiled_forward_into(qv, kv, vv, p.spec, o, l);
          merge_into_(ov, lv, o, l);
          continue;
        }
        for_each_item(qv, [&](int64_t b, int64_t h, int64_t g) {
          auto qi = qv[b][h][g];
          auto o = torch::zeros_like(qi, torch::MemoryFormat::Contiguous);
          auto l = torch::full(lv[b][h][g].sizes(), -std::numeric_limits<double>::infinity(), lse_options(qi));
          tiled_forward_into(qi, kv[b][h][g], vv[b][h][g], p.item(b, h, g), o, l);
          auto out_rows = ov[b][h][g], lse_rows = lv[b][h][g];
          merge_into_(out_rows, lse_rows, o, l);
        });
      }
    }
    ctx->save_for_backward({q, k, v, out, lse});
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    AttentionOptions options;
    options.dilated.segment_lengths = ctx->saved_data["segment_lengths"].toIntVector();
    options.dilated.dilation_rates = ctx->saved_data["dilation_rates"].toIntVector();
    options.dilated.mix = ctx->saved_data["head_groups"].toBool() ? Mix::kHeadGroups : Mix::kLse;
    options.dilated.dilate = static_cast<Dilate>(ctx->saved_data["dilate"].toInt());
    options.block_size = ctx->saved_data["block_size"].toInt();
    options.key_block = ctx->saved_data["key_block"].toInt();
    auto spec = tile_spec(options, ctx->saved_data["causal"].toBool());
    const auto drop = DropoutKey::unpack(ctx->saved_data["dropout"].toIntVector());
    spec.dropout = &drop;
    auto dout = grads[0].defined() ? grads[0] : torch::zeros_like(out);
    const auto& dlse = grads[1];
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    // The forward's one call, where it took it; with an lse gradient the units' loop below,
    // which computes the same function.
    if (auto bias = dlse.defined() ? torch::Tensor() : one_call(options, q, spec); bias.defined()) {
      biased_backward(q, k, v, out, lse, dout, bias, spec.causal, dq, dk, dv);
      return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    for (const auto& u : dilated_units(options, q.size(1))) {
      for (const auto& p : unit_pieces(u, q.size(2), spec)) {
        auto qv = p.rows(q), kv = p.keys(k), vv = p.keys(v), ov = p.rows(out), lv = p.rows(lse), gov = p.rows(dout);
        auto glv = dlse.defined() ? p.rows(dlse) : dlse;
        auto dqv = p.rows(dq);
        // Accumulated straight into dq, dk, dv (items touch disjoint rows), or for folded keys
        // into a buffer of the expanded shape, summed over the fold once the piece is done.
        auto dkv = p.fold == 1 ? p.key_rows(dk) : torch::zeros(kv.sizes(), dk.options());
        auto dvv = p.fold == 1 ? p.key_rows(dv) : torch::zeros(vv.sizes(), dv.options());
        if (fits_one_call(qv, p.spec)) {
          tiled_backward_into(qv, kv, vv, ov, lv, gov, glv, p.spec, dqv, dkv, dvv);
        } else {
          for_each_item(qv, [&](int64_t b, int64_t h, int64_t g) {
            tiled_backward_into(qv[b][h][g], kv[b][h][g], vv[b][h][g], ov[b][h][g], lv[b][h][g], gov[b][h][g],
                                glv.defined() ? glv[b][h][g] : glv, p.item(b, h, g), dqv[b][h][g], dkv[b][h][g],
                                dvv[b][h][g]);
          });
        }
        if (p.fold > 1) {
          p.key_rows(dk).add_(dkv.sum(3));
          p.key_rows(dv).add_(dvv.sum(3));
        }
      }
    }
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

int64_t& dilated_batch_limit() {
  static int64_t limit = int64_t{64} << 20;
  return limit;
}

// lse mix: pair i is applied to every head, head h at offset h mod r_i; heads sharing an offset
// are one strided slice. head_groups: pair g is applied to its group of heads at offset g mod r_g.
// every_offset: each offset of each pair is one unit over all the pair's heads. distance: the
// heads at offset s are r units, the queries at o against the keys at (o - s) mod r.
std::vector<DilatedUnit> dilated_units(const AttentionOptions& o, int64_t H) {
  std::vector<DilatedUnit> units;
  const int64_t n = static_cast<int64_t>(o.dilated.segment_lengths.size());
  const bool all_queries = o.dilated.dilate == Dilate::kKeys;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t w = o.dilated.segment_lengths[i], r = o.dilated.dilation_rates[i];
    const auto [first, count] = o.dilated.mix == Mix::kHeadGroups ? head_group(H, n, i) : std::make_pair(int64_t{0}, H);
    if (count == 0) continue;
    // The (offset, first head, head step) slices of the pair's heads that share an offset.
    std::vector<std::array<int64_t, 3>> slices;
    if (o.dilated.mix == Mix::kHeadGroups)
      slices.push_back({i % r, first, 1});
    else
      for (int64_t off = 0; off < std::min(r, H); ++off) slices.push_back({off, off, r});
    if (o.dilated.dilate == Dilate::kEveryOffset) {
      for (int64_t off = 0; off < r; ++off) units.push_back({i, w, r, off, off, first, first + count, 1, false});
    } else if (o.dilated.dilate == Dilate::kDistance) {
      for (const auto& [s, h0, step] : slices)
        for (int64_t qo = 0; qo < r; ++qo) units.push_back({i, w, r, (qo - s + r) % r, qo, h0, first + count, step, false});
    } else {
      for (const auto& [s, h0, step] : slices) units.push_back({i, w, r, s, s, h0, first + count, step, all_queries});
    }
  }
  return units;
}

torch::Tensor one_call_bias(const AttentionOptions& o, int64_t H, int64_t T, const torch::Tensor& like) {
  for (size_t i = 0; i < o.dilated.segment_lengths.size(); ++i)
    if (o.dilated.segment_lengths[i] < T || o.dilated.dilation_rates[i] > 2) return {};
  // m[h][a][b]: the units that attend a query at a = i mod 2 to a key at b = j mod 2 in head h.
  std::vector<std::array<std::array<int64_t, 2>, 2>> m(static_cast<size_t>(H), {{{0, 0}, {0, 0}}});
  for (const auto& u : dilated_units(o, H))
    for (int64_t h = u.h_first; h < u.h_end; h += u.h_step)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < 2; ++b)
          if (u.r == 1 || (b == u.offset && (u.all_queries || a == u.q_offset))) ++m[static_cast<size_t>(h)][a][b];
  bool by_sum = true, by_key = true;
  for (const auto& mh : m) {
    for (const auto& row : mh)
      for (int64_t n : row)
        if (n == 0) return {};
    by_sum = by_sum && mh[0][0] == mh[1][1] && mh[0][1] == mh[1][0];
    by_key = by_key && mh[0][0] == mh[1][0] && mh[0][1] == mh[1][1];
  }
  if (!by_sum && !by_key) return {};
  // Head h's values at p = 0 .. 2T - 2: log m_h at (i + j) mod 2 = p mod 2, or at j mod 2 = p
  // mod 2; the view reads row i of head h from p = i (by sum) or p = 0 (by key).
  const int64_t n = std::max<int64_t>(2 * T - 1, 2);
  auto values = torch::empty({H, 2}, torch::kDouble);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t p = 0; p < 2; ++p)
      values[h][p] = std::log(static_cast<double>(m[static_cast<size_t>(h)][0][p]));
  const auto type = like.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto buffer = values.repeat({1, (n + 1) / 2}).narrow(1, 0, n).to(like.device(), type).contiguous();
  return buffer.as_strided({1, H, T, T}, {0, n, by_sum ? 1 : 0, 1});
}

std::vector<int64_t> query_offsets(const DilatedUnit& u) {
  if (!u.all_queries) return {u.q_offset};
  std::vector<int64_t> offsets(static_cast<size_t>(u.r));
  for (int64_t o = 0; o < u.r; ++o) offsets[static_cast<size_t>(o)] = o;
  return offsets;
}

DilatedAttention::DilatedAttention(const AttentionOptions& options) : options_(options) {
  TORCH_CHECK(options.dilated.segment_lengths.size() == options.dilated.dilation_rates.size() && !options.dilated.segment_lengths.empty(),
              "dilated attention needs one dilation rate per segment length");
}

std::pair<int64_t, int64_t> head_group(int64_t H, int64_t n_pairs, int64_t g) {
  const int64_t base = H / n_pairs, extra = H % n_pairs;
  const int64_t first = g * base + std::min(g, extra);
  return {first, base + (g < extra ? 1 : 0)};
}

AttentionOutput DilatedAttention::forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal) {
  TORCH_CHECK(q.sizes() == k.sizes() && k.sizes() == v.sizes(), "dilated attention is self-attention: q, k, v of one shape");
  const auto h = head_major(q, k, v, options_.softmax_scale);
  auto res = DilatedFunction::apply(h.q, h.k, h.v, options_, causal, drawn().pack());
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

double DilatedAttention::attended_pairs(int64_t T, bool causal) const {
  // Per pair: segments of w' = min(w, T) keep about w'/r positions each.
  double pairs = 0;
  const double n_pairs = static_cast<double>(options_.dilated.segment_lengths.size());
  for (size_t i = 0; i < options_.dilated.segment_lengths.size(); ++i) {
    const double w = static_cast<double>(std::min(options_.dilated.segment_lengths[i], T));
    const double r = static_cast<double>(options_.dilated.dilation_rates[i]), m = std::ceil(w / r);
    // Under dilate: keys and distance each of the segment's w queries (r per kept key)
    // attends; under every_offset each of the r offsets is a sparse segment of its own.
    const double rows = options_.dilated.dilate == Dilate::kQueriesAndKeys ? 1.0 : r;
    const double per_segment = rows * (causal ? m * (m + 1) / 2 : m * m);
    pairs += (static_cast<double>(T) / w) * per_segment / (options_.dilated.mix == Mix::kHeadGroups ? n_pairs : 1.0);
  }
  return pairs;
}

namespace {

// One unit's keys while decoding: the rows of its pair's current segment at its offset, for the
// key/value heads its query heads read.
struct UnitRows {
  DilatedUnit unit;
  torch::Tensor kv_heads;  // [Gu] int64: the key/value heads its query heads read, ascending
  torch::Tensor expand;    // [Hu] int64: query head -> row of kv_heads; undefined when contiguous groups
  int64_t segment = -1;    // where the segment of the rows held starts
  KvRows rows;

  torch::indexing::Slice heads() const { return torch::indexing::Slice(unit.h_first, unit.h_end, unit.h_step); }
};

struct DilatedCache : DecodeCache {
  std::vector<UnitRows> units;
  int64_t rows_held() const override {
    int64_t n = 0;
    for (const auto& u : units) n += u.rows.rows_held();
    return n;
  }
  int64_t bytes() const override {
    int64_t n = 0;
    for (const auto& u : units) n += u.rows.bytes();
    return n;
  }
};

DilatedCache& dilated_cache(DecodeCache& cache) {
  auto* c = dynamic_cast<DilatedCache*>(&cache);
  TORCH_CHECK(c, "dilated attention was given another kernel's decode cache");
  return *c;
}

// Drops the rows no position from `next` on reads: those of a segment whose last query
// position (below max_len) lies before `next`: the last at the unit's query offset, or under
// all_queries the segment's last.
void retire(DilatedCache& c, int64_t next) {
  for (auto& u : c.units) {
    if (u.rows.k.size() == 0) continue;
    const int64_t s = u.segment, end = std::min(s + u.unit.w, c.shape.max_len), qo = u.unit.q_offset;
    const bool none = !u.unit.all_queries && end - 1 - s < qo;  // no query of the unit in the segment
    const int64_t last = u.unit.all_queries ? end - 1 : s + qo + u.unit.r * ((end - 1 - s - qo) / u.unit.r);
    if (none || last < next) u.rows.clear();
  }
}

}  // namespace

std::unique_ptr<DecodeCache> DilatedAttention::start_decoding(const DecodeShape& shape) const {
  auto c = std::make_unique<DilatedCache>();
  c->shape = shape;
  c->scale = softmax_scale_for(options_.softmax_scale, shape.head_dim);
  const int64_t per_kv = shape.heads / shape.kv_heads;
  for (const auto& unit : dilated_units(options_, shape.heads)) {
    UnitRows u;
    u.unit = unit;
    std::vector<int64_t> kv, expand;
    for (int64_t h = unit.h_first; h < unit.h_end; h += unit.h_step) {
      if (kv.empty() || kv.back() != h / per_kv) kv.push_back(h / per_kv);
      expand.push_back(static_cast<int64_t>(kv.size()) - 1);
    }
    const auto Hu = static_cast<int64_t>(expand.size()), Gu = static_cast<int64_t>(kv.size());
    bool grouped = Hu % Gu == 0;
    for (int64_t t = 0; grouped && t < Hu; ++t) grouped = expand[t] == t / (Hu / Gu);
    u.kv_heads = torch::tensor(kv, torch::kLong).to(shape.options.device());
    if (!grouped) u.expand = torch::tensor(expand, torch::kLong).to(shape.options.device());
    // A segment (at most max_len long) holds ceil((w - offset) / r) rows at the offset.
    const int64_t w = std::min(unit.w, shape.max_len);
    u.rows = KvRows(shape, Gu, std::max<int64_t>(1, (w - unit.offset + unit.r - 1) / unit.r));
    c->units.push_back(std::move(u));
  }
  return c;
}

AttentionOutput DilatedAttention::decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                              const torch::Tensor& v) {
  auto& c = dilated_cache(cache);
  const int64_t p = c.length;
  auto out = torch::zeros_like(q);
  auto lse = torch::full({q.size(0), q.size(1)}, -std::numeric_limits<double>::infinity(), lse_options(q));
  for (auto& u : c.units) {
    const int64_t s = p / u.unit.w * u.unit.w;
    if (u.segment != s) {
      u.rows.clear();
      u.segment = s;
    }
    const int64_t at = (p - s) % u.unit.r;
    if (at == u.unit.offset)
      u.rows.append(k.index_select(1, u.kv_heads).unsqueeze(2), v.index_select(1, u.kv_heads).unsqueeze(2));
    if (!u.unit.all_queries && at != u.unit.q_offset) continue;  // the query at p is not in this unit
    if (u.rows.rows_held() == 0) continue;  // no key of the segment yet at the unit's offset
    auto keys = u.rows.k.view(), values = u.rows.v.view();
    if (u.expand.defined()) {
      keys = keys.index_select(1, u.expand);
      values = values.index_select(1, u.expand);
    }
    auto part = attend_one(q.index({torch::indexing::Slice(), u.heads()}), keys, values);
    merge_into_(out.index({torch::indexing::Slice(), u.heads()}), lse.index({torch::indexing::Slice(), u.heads()}),
                part.out, part.lse);
  }
  retire(c, p + 1);
  return {out, lse};
}

void DilatedAttention::decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) {
  auto& c = dilated_cache(cache);
  const int64_t next = c.length;
  for (auto& u : c.units) {
    const int64_t s = next / u.unit.w * u.unit.w;
    u.rows.clear();
    u.segment = s;
    if (s + u.unit.offset >= next) continue;
    auto pos = torch::arange(s + u.unit.offset, next, u.unit.r, torch::kLong).to(k.device());
    u.rows.append(k.index_select(1, u.kv_heads).index_select(2, pos), v.index_select(1, u.kv_heads).index_select(2, pos));
  }
  retire(c, next);
}

KernelEntry dilated_entry() {
  KernelEntry e;
  e.make = [](const AttentionOptions& o) { return std::make_shared<DilatedAttention>(o); };
  e.check = [](const AttentionOptions& a, const KernelContext& context) {
    OptionProblems p;
    const auto& o = a.dilated;
    const auto n = o.segment_lengths.size();
    p.require(n >= 1, "attention.segment_lengths", "an empty list", "at least one segment length");
    p.require(o.dilation_rates.size() == n, "attention.dilation_rates", std::to_string(o.dilation_rates.size()) + " rates",
            "one rate per segment length (" + std::to_string(n) + ")");
    for (size_t i = 0; i < n; ++i) {
      p.require(o.segment_lengths[i] >= 1, "attention.segment_lengths[" + std::to_string(i) + "]",
              std::to_string(o.segment_lengths[i]), "an integer >= 1");
      if (i < o.dilation_rates.size())
        p.require(o.dilation_rates[i] >= 1, "attention.dilation_rates[" + std::to_string(i) + "]",
                std::to_string(o.dilation_rates[i]), "an integer >= 1");
    }
    if (o.mix == Mix::kHeadGroups)
      p.require(context.n_heads >= static_cast<int64_t>(n), "model.n_heads", std::to_string(context.n_heads),
              "at least one head per (segment, rate) pair under attention.mix: head_groups (" + std::to_string(n) + ")");
    return p.list;
  };
  e.across = dilated_across_ranks;
  e.zigzag = false;  // LongNet's segments are contiguous runs of the sequence
  // LongNet's geometric pairs: segments 2,048 to 16,384, rates 1 to 8 (each keeps 2,048 rows).
  e.bench = [](AttentionOptions o, int64_t, double, bool) {
    o.dilated.segment_lengths = {2048, 4096, 8192, 16384};
    o.dilated.dilation_rates = {1, 2, 4, 8};
    return o;
  };
  // Across ranks: segments 2K to 128K with rates 1 to 64 (each keeps 2,048 rows).
  e.bench_across = [](AttentionOptions o) {
    o.dilated.segment_lengths = {2048, 8192, 32768, 131072};
    o.dilated.dilation_rates = {1, 4, 16, 64};
    return o;
  };
  return e;
}

}  // namespace longnet::attention
