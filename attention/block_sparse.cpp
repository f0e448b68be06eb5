#include "attention/block_sparse.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "attention/block_plan.h"
#include "attention/blockwise.h"

namespace longnet::attention {

torch::Tensor BlockSparseAttention::block_mask(int64_t T, bool causal) const {
  const auto& o = options_.block_sparse;
  const int64_t nb = (T + options_.block_size - 1) / options_.block_size;
  auto qb = torch::arange(nb, torch::kLong).unsqueeze(1), kb = torch::arange(nb, torch::kLong).unsqueeze(0);
  auto keep = torch::zeros({nb, nb}, torch::kBool);
  if (o.local_blocks >= 0) keep |= (qb - kb).abs() <= o.local_blocks;
  if (o.stride > 0) keep |= torch::remainder(qb - kb, o.stride) == 0;
  if (o.global_blocks > 0) keep |= (qb < o.global_blocks) | (kb < o.global_blocks);
  if (o.random_blocks > 0) {
    for (int64_t i = 0; i < nb; ++i) {
      // One generator per row, from the seed and the row (splitmix64's constant spreads them).
      auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed) ^ (static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL));
      const int64_t span = causal ? i + 1 : nb;
      auto pick = torch::randperm(span, gen, torch::kLong).narrow(0, 0, std::min(o.random_blocks, span));
      keep[i].index_fill_(0, pick, true);
    }
  }
  for (const auto& [q, k] : o.pairs)
    if (q < nb && k < nb) keep[q][k] = true;
  if (causal) keep &= kb <= qb;
  return keep;
}

double BlockSparseAttention::density(int64_t T, bool causal) const {
  auto m = block_mask(T, causal);
  return m.sum().item<double>() / static_cast<double>(m.numel());
}

double BlockSparseAttention::attended_pairs(int64_t T, bool causal) const {
  const int64_t b = options_.block_size;
  auto m = block_mask(T, causal);
  double pairs = 0;
  const int64_t nb = m.size(0);
  auto acc = m.accessor<bool, 2>();
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t j = 0; j < nb; ++j) {
      if (!acc[i][j]) continue;
      const double bq = std::min(b, T - i * b), bk = std::min(b, T - j * b);
      pairs += (causal && i == j) ? bq * (bq + 1) / 2 : bq * bk;
    }
  return pairs;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Each query block's key sets over the whole sequence (block_plan.h): under causal masking one
// set, the kept blocks with the diagonal last.
std::vector<std::vector<KeySet>> plan_rows(const torch::Tensor& mask, int64_t T, int64_t b, bool causal,
                                           int64_t k_block, const torch::Device& device, const DropoutKey& drop) {
  auto acc = mask.accessor<bool, 2>();
  std::vector<std::vector<KeySet>> rows(static_cast<size_t>(mask.size(0)));
  for (int64_t i = 0; i < mask.size(0); ++i)
    rows[i] = plan_key_sets(acc, b, causal, k_block, i, i * b, 0, T, device, drop.active() ? &drop : nullptr);
  return rows;
}

// A set's spec for unit (n, h): its dropout stream.
TileSpec unit_spec(const KeySet& keys, const DropoutKey& drop, int64_t n, int64_t h) {
  TileSpec s = keys.spec;
  if (drop.active()) s.drop_stream = drop.stream(n, h);
  return s;
}

// q (scaled), k, v: [B, H, T, D] contiguous -> out [B, H, T, D], lse [B, H, T]. Forward and
// backward gather each row's kept k/v blocks on the fly, so memory is the inputs plus one row.
class BlockSparseFunction : public torch::autograd::Function<BlockSparseFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask, bool causal, int64_t b,
                               int64_t k_block, const std::vector<int64_t>& dropout) {
    ctx->set_materialize_grads(false);  // an unused lse keeps no gradient (blockwise.h)
    torch::NoGradGuard no_grad;
    const auto drop = DropoutKey::unpack(dropout);
    const int64_t T = q.size(2), H = q.size(1);
    auto out = torch::zeros_like(q);
    auto lse = torch::full({q.size(0), H, T}, -std::numeric_limits<double>::infinity(), lse_options(q));
    const auto rows = plan_rows(mask, T, b, causal, k_block, q.device(), drop);
    // One (batch, head) unit per thread, its rows in turn: few large calls rather than a
    // multi-threaded call per small row.
    for_each_unit(q.size(0) * H, [&](int64_t u) {
      auto qu = q[u / H][u % H], ku = k[u / H][u % H], vu = v[u / H][u % H];
      auto ou = out[u / H][u % H], lu = lse[u / H][u % H];
      for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i) {
        const int64_t len = std::min(b, T - i * b);
        for (const auto& keys : rows[i])
          tiled_forward_into(qu.narrow(0, i * b, len), keys.take(ku, 0), keys.take(vu, 0),
                             unit_spec(keys, drop, u / H, u % H), ou.narrow(0, i * b, len), lu.narrow(0, i * b, len));
      }
    });
    ctx->save_for_backward({q, k, v, out, lse, mask});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["b"] = b;
    ctx->saved_data["k_block"] = k_block;
    ctx->saved_data["dropout"] = dropout;
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4], &mask = saved[5];
    const bool causal = ctx->saved_data["causal"].toBool();
    const int64_t b = ctx->saved_data["b"].toInt(), T = q.size(2);
    const auto drop = DropoutKey::unpack(ctx->saved_data["dropout"].toIntVector());
    const auto rows = plan_rows(mask, T, b, causal, ctx->saved_data["k_block"].toInt(), q.device(), drop);
    auto dout = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(out);
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    const auto& dlse = grads[1];
    const int64_t H = q.size(1);
    // Per unit, so that the index_add_ into dk, dv never races.
    for_each_unit(q.size(0) * H, [&](int64_t u) {
      const int64_t n = u / H, h = u % H;
      auto qu = q[n][h], ku = k[n][h], vu = v[n][h], ou = out[n][h], lu = lse[n][h], du = dout[n][h];
      auto dqu = dq[n][h], dku = dk[n][h], dvu = dv[n][h];
      for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i) {
        const int64_t len = std::min(b, T - i * b);
        for (const auto& keys : rows[i]) {
          auto kg = keys.take(ku, 0), vg = keys.take(vu, 0);
          auto dkg = torch::zeros_like(kg), dvg = torch::zeros_like(vg);
          tiled_backward_into(qu.narrow(0, i * b, len), kg, vg, ou.narrow(0, i * b, len), lu.narrow(0, i * b, len),
                              du.narrow(0, i * b, len), dlse.defined() ? dlse[n][h].narrow(0, i * b, len) : dlse,
                              unit_spec(keys, drop, n, h), dqu.narrow(0, i * b, len), dkg, dvg);
          keys.add_back(dku, dkg, 0);
          keys.add_back(dvu, dvg, 0);
        }
      }
    });
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

AttentionOutput BlockSparseAttention::forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                              bool causal) {
  const auto h = head_major(q, k, v, options_.softmax_scale);
  auto res = BlockSparseFunction::apply(h.q, h.k, h.v, block_mask(q.size(1), causal), causal, options_.block_size,
                                        std::max(options_.block_size, options_.key_block), drawn().pack());
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

namespace {

struct BlockSparseCache : DecodeCache {
  int64_t b = 1;
  torch::Tensor mask;                // [nb, nb]: block_mask(max_len, causal)
  std::vector<int64_t> last_reader;  // per key block: the last query block that reads it, -1: none
  std::vector<KvRows> blocks;        // per key block: its rows while held
  int64_t rows_held() const override {
    int64_t n = 0;
    for (const auto& blk : blocks) n += blk.rows_held();
    return n;
  }
  int64_t bytes() const override {
    int64_t n = 0;
    for (const auto& blk : blocks) n += blk.bytes();
    return n;
  }
};

BlockSparseCache& block_sparse_cache(DecodeCache& cache) {
  auto* c = dynamic_cast<BlockSparseCache*>(&cache);
  TORCH_CHECK(c, "block_sparse attention was given another kernel's decode cache");
  return *c;
}

// Drops the blocks no query block from position `next` on reads.
void evict(BlockSparseCache& c, int64_t next) {
  const int64_t reader = next / c.b;
  for (size_t j = 0; j < c.blocks.size(); ++j)
    if (next >= c.shape.max_len || c.last_reader[j] < reader) c.blocks[j].clear();
}

}  // namespace

std::unique_ptr<DecodeCache> BlockSparseAttention::start_decoding(const DecodeShape& shape) const {
  auto c = std::make_unique<BlockSparseCache>();
  c->shape = shape;
  c->scale = softmax_scale_for(options_.softmax_scale, shape.head_dim);
  c->b = options_.block_size;
  c->mask = block_mask(shape.max_len, /*causal=*/true);
  const int64_t nb = c->mask.size(0);
  auto readers = torch::where(c->mask, torch::arange(nb, torch::kLong).unsqueeze(1), torch::full({1}, -1, torch::kLong));
  auto last = std::get<0>(readers.max(0));
  c->last_reader.assign(last.data_ptr<int64_t>(), last.data_ptr<int64_t>() + nb);
  c->blocks.assign(static_cast<size_t>(nb), KvRows(shape, shape.kv_heads, c->b));
  return c;
}

AttentionOutput BlockSparseAttention::decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v) {
  auto& c = block_sparse_cache(cache);
  const int64_t p = c.length, i = p / c.b;
  if (c.last_reader[i] >= i) c.blocks[i].append(k.unsqueeze(2), v.unsqueeze(2));
  std::vector<torch::Tensor> keys, values;
  auto row = c.mask[i].contiguous();
  const bool* kept = row.data_ptr<bool>();
  for (int64_t j = 0; j <= i; ++j)
    if (kept[j]) {
      keys.push_back(c.blocks[j].k.view());
      values.push_back(c.blocks[j].v.view());
    }
  auto res = keys.empty() ? attend_one(q, k.unsqueeze(2).narrow(2, 0, 0), v.unsqueeze(2).narrow(2, 0, 0))
                          : attend_one(q, torch::cat(keys, 2), torch::cat(values, 2));
  if ((p + 1) % c.b == 0 || p + 1 >= c.shape.max_len) evict(c, p + 1);
  return res;
}

void BlockSparseAttention::decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) {
  auto& c = block_sparse_cache(cache);
  const int64_t n = c.length;
  for (int64_t j = 0; j * c.b < n; ++j) {
    if (c.last_reader[j] < n / c.b) continue;
    const int64_t len = std::min(c.b, n - j * c.b);
    c.blocks[j].append(k.narrow(2, j * c.b, len), v.narrow(2, j * c.b, len));
  }
  evict(c, n);
}

KernelEntry block_sparse_entry() {
  KernelEntry e;
  e.make = [](const AttentionOptions& o) { return std::make_shared<BlockSparseAttention>(o); };
  e.check = [](const AttentionOptions& a, const KernelContext& context) {
    OptionProblems p;
    auto require = [&](bool ok, const std::string& key, int64_t value, const std::string& expected) {
      p.require(ok, key, std::to_string(value), expected);
    };
    const auto& o = a.block_sparse;
    require(a.block_size <= context.seq_len, "attention.block_size", a.block_size,
            "at most data.seq_len = " + std::to_string(context.seq_len) + " (one block would make it dense)");
    require(o.local_blocks >= -1, "attention.local_blocks", o.local_blocks, "an integer >= -1 (-1: no local window)");
    require(o.stride >= 0, "attention.stride", o.stride, "an integer >= 0 (0: off)");
    require(o.global_blocks >= 0, "attention.global_blocks", o.global_blocks, "an integer >= 0");
    require(o.random_blocks >= 0, "attention.random_blocks", o.random_blocks, "an integer >= 0");
    for (size_t i = 0; i < o.pairs.size(); ++i)
      p.require(o.pairs[i].first >= 0 && o.pairs[i].second >= 0, "attention.pairs[" + std::to_string(i) + "]",
                std::to_string(o.pairs[i].first) + ", " + std::to_string(o.pairs[i].second), "non-negative block indices");
    p.require(o.local_blocks >= 0 || o.stride > 0 || o.global_blocks > 0 || o.random_blocks > 0 || !o.pairs.empty(),
              "attention", "no pattern", "at least one of local_blocks >= 0, stride, global_blocks, random_blocks, pairs");
    return p.list;
  };
  e.across = [](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                const AttentionOptions& o, const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                const DropoutKey& dropout, TransferStats* stats) {
    return block_sparse_across_ranks(q, k, v, causal, o, layout, group, /*packet_rows=*/0, dropout, stats);
  };
  // A local window sized for the requested density: causal keeps about (L + 1) of nb blocks a row.
  e.bench = [](AttentionOptions o, int64_t T, double density, bool causal) {
    const int64_t nb = (T + o.block_size - 1) / o.block_size;
    const double kept = density * static_cast<double>(nb);
    o.block_sparse.local_blocks = std::max<int64_t>(0, causal ? std::llround(kept) - 1 : std::llround((kept - 1) / 2));
    return o;
  };
  // Across ranks: a sliding window of one 256-token block each side.
  e.bench_across = [](AttentionOptions o) {
    o.block_size = 256;
    o.block_sparse.local_blocks = 1;
    return o;
  };
  return e;
}

}  // namespace longnet::attention
