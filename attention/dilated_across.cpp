// LongNet's dilated attention across the ranks of a process group (see dilated.h).
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "attention/blockwise.h"
#include "attention/dilated.h"
#include "attention/merge.h"

namespace longnet::attention {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using torch::indexing::Slice;

// The rows of one rank that a unit keeps in one segment: local rows first, first + r, ...
struct Kept {
  int64_t first = 0, count = 0;
};

// One segment of one unit as this rank sees it.
struct Segment {
  size_t unit;
  int64_t start, end;          // positions [start, end) in the sequence
  std::vector<int> key_ranks;  // ranks whose kept rows are this segment's keys for my queries, ascending
  std::vector<Kept> kept;      // per rank of the group: its rows at the unit's offset (keys)
  // My query rows, per query offset (query_offsets, dilated.h) at which I have any.
  std::vector<std::pair<int64_t, Kept>> queries;
};

struct Plan {
  std::vector<DilatedUnit> units;
  std::vector<Segment> segments;  // those meeting my rows, in (unit, start) order
  // Per peer: the (segment, rows) blocks of the exchange in the order they are packed, and
  // their total element count; `to` are my rows a peer attends to, `from` the peer's rows I do.
  std::map<int, std::vector<size_t>> to, from;
  std::map<int, int64_t> to_numel, from_numel;
};

struct DilatedAcrossState : torch::CustomClassHolder {
  RingLayout layout;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  AttentionOptions options;
  bool causal;
  DropoutKey dropout;
  TransferStats* stats;
  DilatedAcrossState(RingLayout l, c10::intrusive_ptr<c10d::ProcessGroup> g, AttentionOptions o, bool c,
                     const DropoutKey& d, TransferStats* st)
      : layout(std::move(l)), group(std::move(g)), options(std::move(o)), causal(c), dropout(d), stats(st) {}
};

// Waits for the transfers, the time counted as waiting.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works, TransferStats* stats) {
  WaitClock clock(stats);
  for (auto& w : works) w->wait();
}

// f(segment index) for my segments whose keys are all mine (local) or not; a segment with no
// key for my queries (under all_queries, my rows all before the first kept one) is skipped.
template <typename F>
void for_segments(const Plan& plan, int me, bool local, const F& f) {
  for (size_t gi = 0; gi < plan.segments.size(); ++gi) {
    const auto& keys = plan.segments[gi].key_ranks;
    if (keys.empty()) continue;
    if ((keys.size() == 1 && keys[0] == me) == local) f(gi);
  }
}

int64_t heads_of(const DilatedUnit& u) { return (u.h_end - u.h_first + u.h_step - 1) / u.h_step; }

Plan make_plan(const DilatedAcrossState& s, const torch::Tensor& q) {
  Plan plan;
  const int P = s.layout.world_size(), me = s.layout.rank();
  const int64_t T = s.layout.length(), B = q.size(0), D = q.size(3);
  std::vector<std::pair<int64_t, int64_t>> range(static_cast<size_t>(P));  // each rank's positions
  for (int x = 0; x < P; ++x) {
    const auto& piece = s.layout.pieces(x).at(0);
    range[x] = {piece.position, piece.position + piece.length};
  }
  plan.units = dilated_units(s.options, q.size(1));
  for (size_t ui = 0; ui < plan.units.size(); ++ui) {
    const auto& u = plan.units[ui];
    const int64_t w = std::min(u.w, T);
    for (int64_t start = (range[me].first / w) * w; start < range[me].second; start += w) {
      Segment g{ui, start, std::min(start + w, T), {}, std::vector<Kept>(static_cast<size_t>(P)), {}};
      if (u.offset >= g.end - g.start) continue;
      // Rank x's rows of the segment at `offset`: positions start + offset + j r.
      auto kept_at = [&](int x, int64_t offset) -> Kept {
        const int64_t lo = std::max(g.start, range[x].first), hi = std::min(g.end, range[x].second);
        const int64_t base = g.start + offset;
        const int64_t first = lo <= base ? base : base + ((lo - base + u.r - 1) / u.r) * u.r;
        if (lo >= hi || first >= hi) return {};
        return {first - range[x].first, (hi - 1 - first) / u.r + 1};
      };
      const auto offsets = query_offsets(u);
      std::vector<bool> asks(static_cast<size_t>(P));  // whether rank x has query rows here
      for (int x = 0; x < P; ++x) {
        g.kept[x] = kept_at(x, u.offset);
        for (int64_t qo : offsets) {
          const Kept rows = kept_at(x, qo);
          if (rows.count == 0) continue;
          asks[x] = true;
          if (x == me) g.queries.push_back({qo, rows});
        }
      }
      const bool mine = asks[me];
      for (int x = 0; x < P; ++x) {
        if (g.kept[x].count == 0) continue;
        if (mine && (!s.causal || x <= me)) g.key_ranks.push_back(x);
      }
      const size_t gi = plan.segments.size();
      const int64_t per_row = B * heads_of(u) * D * 2;  // k and v
      for (int x = 0; x < P; ++x) {
        if (x == me) continue;
        if (asks[x] && g.kept[me].count > 0 && (!s.causal || x > me)) {  // x attends to my rows
          plan.to[x].push_back(gi);
          plan.to_numel[x] += per_row * g.kept[me].count;
        }
        if (mine && g.kept[x].count > 0 && (!s.causal || x < me)) {  // I attend to x's rows
          plan.from[x].push_back(gi);
          plan.from_numel[x] += per_row * g.kept[x].count;
        }
      }
      // Kept when I have queries here or keys a peer reads (under dilate: distance a unit's
      // keys and queries are at different offsets, so my rows can hold the one and not the
      // other); a segment without queries of mine has no key ranks and is not attended.
      if (mine || g.kept[me].count > 0) plan.segments.push_back(std::move(g));
    }
  }
  return plan;
}

// A unit's kept rows of one rank in a head-major [B, H, T_local, ...] tensor (a strided view).
torch::Tensor kept_view(const torch::Tensor& t, const DilatedUnit& u, const Kept& k) {
  return t.index({Slice(), Slice(u.h_first, u.h_end, u.h_step),
                  Slice(k.first, k.first + (k.count - 1) * u.r + 1, u.r)});
}

// Views [B, Ho, m, D] of k and v (or dk and dv) for each block of one peer's flat buffer.
struct BlockViews {
  std::map<size_t, std::pair<torch::Tensor, torch::Tensor>> of;  // segment -> (k, v)
};

BlockViews block_views(const Plan& plan, const std::vector<size_t>& blocks, int rank_of_rows, const torch::Tensor& flat,
                       int64_t B, int64_t D) {
  BlockViews views;
  int64_t at = 0;
  for (size_t gi : blocks) {
    const auto& g = plan.segments[gi];
    const auto& u = plan.units[g.unit];
    const int64_t n = B * heads_of(u) * g.kept[rank_of_rows].count * D;
    auto shape = std::vector<int64_t>{B, heads_of(u), g.kept[rank_of_rows].count, D};
    views.of[gi] = {flat.narrow(0, at, n).view(shape), flat.narrow(0, at + n, n).view(shape)};
    at += 2 * n;
  }
  return views;
}

// Sends my kept k/v rows to the peers that attend to them and receives theirs, running
// `meanwhile` (the segments that need nothing from a peer) while they travel: returns, per
// peer, the received flat buffer.
std::map<int, torch::Tensor> exchange_rows(const DilatedAcrossState& s, const Plan& plan, const torch::Tensor& k,
                                           const torch::Tensor& v, int tag, const std::function<void()>& meanwhile) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<torch::Tensor> keep_alive;
  const int me = s.layout.rank();
  for (const auto& [x, blocks] : plan.to) {
    std::vector<torch::Tensor> parts;
    for (size_t gi : blocks) {
      const auto& g = plan.segments[gi];
      const auto& u = plan.units[g.unit];
      parts.push_back(kept_view(k, u, g.kept[me]).reshape({-1}));
      parts.push_back(kept_view(v, u, g.kept[me]).reshape({-1}));
    }
    std::vector<torch::Tensor> buf = {torch::cat(parts)};
    keep_alive.push_back(buf[0]);
    if (s.stats) s.stats->add(buf[0].numel() * buf[0].element_size(), 0);
    works.push_back(s.group->send(buf, x, tag));
  }
  std::map<int, torch::Tensor> received;
  for (const auto& [x, n] : plan.from_numel) {
    std::vector<torch::Tensor> buf = {torch::empty({n}, k.options())};
    received[x] = buf[0];
    works.push_back(s.group->recv(buf, x, tag));
  }
  meanwhile();
  wait_all(works, s.stats);
  return received;
}

// The tile of my query rows `rows` at offset qo against the segment's keys.
TileSpec segment_spec(const DilatedAcrossState& s, const Segment& g, const DilatedUnit& u, int me, int64_t qo,
                      const Kept& rows) {
  TileSpec spec;
  spec.causal = s.causal;
  spec.q_block = s.options.block_size;
  spec.k_block = std::max(s.options.block_size, s.options.key_block);
  // Tile positions are indices in the segment's kept sequence at each offset, the keys
  // shifted by key_shift (dilated.h); the keys start at the first key rank's first kept row.
  auto index = [&](int x, int64_t first, int64_t offset) {
    const auto& piece = s.layout.pieces(x).at(0);
    return (piece.position + first - g.start - offset) / u.r;
  };
  const int first_key_rank = g.key_ranks.front();
  spec.q_pos0 = index(me, rows.first, qo);
  const int64_t first_key = index(first_key_rank, g.kept[first_key_rank].first, u.offset);
  spec.k_pos0 = first_key + key_shift(u, qo);
  spec.dropout = &s.dropout;
  if (s.dropout.active()) {
    // Kept index i sits at g.start + offset + i * r; the unit's heads are h_first + h * h_step.
    int64_t n_keys = 0;
    for (int x : g.key_ranks) n_keys += g.kept[x].count;
    auto at = [&](int64_t first, int64_t n, int64_t offset) {
      return torch::arange(first, first + n, torch::kLong) * u.r + g.start + offset;
    };
    spec.drop_q_pos = at(spec.q_pos0, rows.count, qo);
    spec.drop_k_pos = at(first_key, n_keys, u.offset);
    spec.head0 = u.h_first;
    spec.head_step = u.h_step;
  }
  return spec;
}

class DilatedAcrossFunction : public torch::autograd::Function<DilatedAcrossFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, c10::intrusive_ptr<DilatedAcrossState> s) {
    ctx->set_materialize_grads(false);  // an unused lse keeps no gradient (blockwise.h)
    torch::NoGradGuard no_grad;
    const int me = s->layout.rank();
    const int64_t B = q.size(0), D = q.size(3);
    auto out = torch::zeros_like(q);
    auto lse = torch::full({q.size(0), q.size(1), q.size(2)}, -std::numeric_limits<double>::infinity(), lse_options(q));
    const Plan plan = make_plan(*s, q);
    std::map<int, BlockViews> from;
    auto segment = [&](size_t gi) {
      const auto& g = plan.segments[gi];
      const auto& u = plan.units[g.unit];
      std::vector<torch::Tensor> ks, vs;
      for (int x : g.key_ranks) {
        if (x == me) {
          ks.push_back(kept_view(k, u, g.kept[me]));
          vs.push_back(kept_view(v, u, g.kept[me]));
        } else {
          const auto& kv = from.at(x).of.at(gi);
          ks.push_back(kv.first);
          vs.push_back(kv.second);
        }
      }
      auto kg = ks.size() == 1 ? ks[0] : torch::cat(ks, 2), vg = vs.size() == 1 ? vs[0] : torch::cat(vs, 2);
      for (const auto& [qo, rows] : g.queries) {
        torch::Tensor o, l;
        tiled_forward(kept_view(q, u, rows), kg, vg, segment_spec(*s, g, u, me, qo, rows), o, l);
        merge_into_(kept_view(out, u, rows), kept_view(lse, u, rows), o, l);
      }
    };
    auto received = exchange_rows(*s, plan, k, v, 0, [&] { for_segments(plan, me, true, segment); });
    for (const auto& [x, blocks] : plan.from) from[x] = block_views(plan, blocks, x, received.at(x), B, D);
    for_segments(plan, me, false, segment);
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["state"] = c10::IValue::make_capsule(s);
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    torch::NoGradGuard no_grad;
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    auto s = c10::static_intrusive_pointer_cast<DilatedAcrossState>(ctx->saved_data["state"].toCapsule());
    const int me = s->layout.rank();
    const int64_t B = q.size(0), D = q.size(3);
    auto dout = grads[0].defined() ? grads[0] : torch::zeros_like(out);
    const auto& dlse = grads[1];
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    const Plan plan = make_plan(*s, q);
    std::map<int, BlockViews> from, grads_to_owner;
    std::map<int, torch::Tensor> grad_flat;  // dk/dv of each peer's rows I attended to
    auto segment = [&](size_t gi) {
      const auto& g = plan.segments[gi];
      const auto& u = plan.units[g.unit];
      std::vector<torch::Tensor> ks, vs, dks, dvs;
      for (int x : g.key_ranks) {
        if (x == me) {
          ks.push_back(kept_view(k, u, g.kept[me]));
          vs.push_back(kept_view(v, u, g.kept[me]));
          dks.push_back(kept_view(dk, u, g.kept[me]));
          dvs.push_back(kept_view(dv, u, g.kept[me]));
        } else {
          ks.push_back(from.at(x).of.at(gi).first);
          vs.push_back(from.at(x).of.at(gi).second);
          dks.push_back(grads_to_owner.at(x).of.at(gi).first);
          dvs.push_back(grads_to_owner.at(x).of.at(gi).second);
        }
      }
      const bool one = ks.size() == 1;
      auto kg = one ? ks[0] : torch::cat(ks, 2), vg = one ? vs[0] : torch::cat(vs, 2);
      auto dkg = one ? dks[0] : torch::zeros_like(kg), dvg = one ? dvs[0] : torch::zeros_like(vg);
      for (const auto& [qo, kept] : g.queries) {
        auto rows = [&, &kept = kept](const torch::Tensor& t) { return kept_view(t, u, kept); };
        auto dqg = rows(dq);
        tiled_backward(rows(q), kg, vg, rows(out), rows(lse), rows(dout), dlse.defined() ? rows(dlse) : dlse,
                       segment_spec(*s, g, u, me, qo, kept), dqg, dkg, dvg);
      }
      if (!one) {
        int64_t at = 0;
        for (size_t i = 0; i < dks.size(); ++i) {
          const int64_t m = dks[i].size(2);
          dks[i].add_(dkg.narrow(2, at, m));
          dvs[i].add_(dvg.narrow(2, at, m));
          at += m;
        }
      }
    };
    auto received = exchange_rows(*s, plan, k, v, 1, [&] { for_segments(plan, me, true, segment); });
    for (const auto& [x, blocks] : plan.from) {
      from[x] = block_views(plan, blocks, x, received.at(x), B, D);
      grad_flat[x] = torch::zeros_like(received.at(x));
      grads_to_owner[x] = block_views(plan, blocks, x, grad_flat[x], B, D);
    }
    for_segments(plan, me, false, segment);
    // dk/dv of the rows other ranks attended to come home; mine go to their owners.
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& [x, flat] : grad_flat) {
      std::vector<torch::Tensor> buf = {flat};
      if (s->stats) s->stats->add(flat.numel() * flat.element_size(), 0);
      works.push_back(s->group->send(buf, x, 2));
    }
    std::map<int, torch::Tensor> home;
    for (const auto& [x, n] : plan.to_numel) {
      std::vector<torch::Tensor> buf = {torch::empty({n}, k.options())};
      home[x] = buf[0];
      works.push_back(s->group->recv(buf, x, 2));
    }
    wait_all(works, s->stats);
    for (const auto& [x, blocks] : plan.to) {
      auto views = block_views(plan, blocks, me, home.at(x), B, D);
      for (size_t gi : blocks) {
        const auto& g = plan.segments[gi];
        const auto& u = plan.units[g.unit];
        kept_view(dk, u, g.kept[me]).add_(views.of.at(gi).first);
        kept_view(dv, u, g.kept[me]).add_(views.of.at(gi).second);
      }
    }
    return {dq, dk, dv, torch::Tensor()};
  }
};

}  // namespace

AttentionOutput dilated_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     bool causal, const AttentionOptions& options, const RingLayout& layout,
                                     const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout,
                                     TransferStats* stats) {
  check_cross_rank_inputs("dilated attention across ranks", q, k, v, layout, group);
  TORCH_CHECK(!layout.zigzag(), "dilated attention across ranks needs the contiguous split");
  const auto h = head_major(q, k, v, options.softmax_scale);
  auto state = c10::make_intrusive<DilatedAcrossState>(layout, group, options, causal, dropout, stats);
  auto res = DilatedAcrossFunction::apply(h.q, h.k, h.v, state);
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

}  // namespace longnet::attention
