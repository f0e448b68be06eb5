#include "attention/ring.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "attention/blockwise.h"
#include "attention/merge.h"

namespace longnet::attention {

RingLayout::RingLayout(int64_t T, int rank, int world_size, bool zigzag)
    : T_(T), rank_(rank), world_size_(world_size), pieces_(static_cast<size_t>(world_size)) {
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "bad ring rank ", rank, " of ", world_size);
  const int64_t n = zigzag ? 2 * world_size : world_size;
  TORCH_CHECK(T >= n, "a sequence of ", T, " tokens cannot be split into ", n, " ring chunks");
  std::vector<int64_t> start(static_cast<size_t>(n + 1), 0);
  for (int64_t c = 0; c < n; ++c) start[c + 1] = start[c] + T / n + (c < T % n ? 1 : 0);
  for (int r = 0; r < world_size; ++r) {
    std::vector<int64_t> chunks = {r};
    if (zigzag) chunks.push_back(2 * world_size - 1 - r);
    int64_t offset = 0;
    for (int64_t c : chunks) {
      const int64_t len = start[c + 1] - start[c];
      pieces_[r].push_back({start[c], len, offset});
      offset += len;
    }
  }
}

int64_t RingLayout::local_length(int rank) const {
  int64_t n = 0;
  for (const auto& p : pieces(rank)) n += p.length;
  return n;
}

at::Tensor RingLayout::positions(int rank) const {
  std::vector<at::Tensor> parts;
  for (const auto& p : pieces(rank)) parts.push_back(torch::arange(p.position, p.position + p.length, torch::kLong));
  return torch::cat(parts);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct RingState : torch::CustomClassHolder {
  RingLayout layout;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  bool causal;
  int64_t q_block, k_block;
  RingState(RingLayout l, c10::intrusive_ptr<c10d::ProcessGroup> g, bool c, int64_t qb, int64_t kb)
      : layout(std::move(l)), group(std::move(g)), causal(c), q_block(qb), k_block(kb) {}
};

// Posts the exchange of one step: `out` goes to rank + 1, and a buffer shaped like it but with
// rank `src`'s local length comes from rank - 1. wait() completes both.
std::atomic<int64_t> g_wait_ns{0};

struct Exchange {
  c10::intrusive_ptr<c10d::Work> send, recv;
  torch::Tensor received;
  void wait() {
    const auto t0 = std::chrono::steady_clock::now();
    if (send) send->wait();
    if (recv) recv->wait();
    g_wait_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  }
};

Exchange exchange(const RingState& s, const torch::Tensor& out, int src, int tag) {
  const int P = s.layout.world_size(), rank = s.layout.rank();
  auto sizes = out.sizes().vec();
  sizes[sizes.size() - 2] = s.layout.local_length(src);  // [.., T_src, D]
  Exchange e;
  e.received = torch::empty(sizes, out.options());
  std::vector<torch::Tensor> to_send = {out}, to_recv = {e.received};
  e.send = s.group->send(to_send, (rank + 1) % P, tag);
  e.recv = s.group->recv(to_recv, (rank - 1 + P) % P, tag);
  return e;
}

// Every (local query piece, key piece of rank src) pair that the mask does not empty.
template <typename F>
void for_each_pair(const RingState& s, int src, const F& f) {
  for (const auto& qp : s.layout.pieces(s.layout.rank()))
    for (const auto& kp : s.layout.pieces(src)) {
      if (s.causal && kp.position > qp.position + qp.length - 1) continue;  // all in the future
      TileSpec spec;
      spec.causal = s.causal;
      spec.q_pos0 = qp.position;
      spec.k_pos0 = kp.position;
      spec.q_block = s.q_block;
      spec.k_block = s.k_block;
      f(qp, kp, spec);
    }
}

// Inputs head-major: q (scaled), k, v [B, H, T_local, D] contiguous.
class RingFunction : public torch::autograd::Function<RingFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, c10::intrusive_ptr<RingState> s) {
    torch::NoGradGuard no_grad;
    const int P = s->layout.world_size(), rank = s->layout.rank();
    auto out = torch::zeros_like(q);
    auto lse = torch::full({q.size(0), q.size(1), q.size(2)}, -std::numeric_limits<double>::infinity(), q.options());
    auto kv = torch::stack({k, v});  // [2, B, H, T_src, D]: what travels
    for (int step = 0; step < P; ++step) {
      const int src = (rank - step + P) % P;
      Exchange next;
      if (step + 1 < P) next = exchange(*s, kv, (src - 1 + P) % P, step);
      for_each_pair(*s, src, [&](const RingLayout::Piece& qp, const RingLayout::Piece& kp, const TileSpec& spec) {
        torch::Tensor o, l;
        tiled_forward(q.narrow(2, qp.offset, qp.length), kv[0].narrow(2, kp.offset, kp.length),
                      kv[1].narrow(2, kp.offset, kp.length), spec, o, l);
        auto out_rows = out.narrow(2, qp.offset, qp.length), lse_rows = lse.narrow(2, qp.offset, qp.length);
        merge_into_(out_rows, lse_rows, o, l);
      });
      if (step + 1 < P) {
        next.wait();
        kv = next.received;
      }
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["state"] = c10::IValue::make_capsule(s);
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    auto s = c10::static_intrusive_pointer_cast<RingState>(ctx->saved_data["state"].toCapsule());
    const int P = s->layout.world_size(), rank = s->layout.rank();
    auto dout = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(out);
    const auto& dlse = grads[1];
    auto dq = torch::zeros_like(q);
    auto kv = torch::stack({k, v});
    auto dkv = torch::zeros_like(kv);  // travels with kv, collecting every rank's share
    for (int step = 0; step < P; ++step) {
      const int src = (rank - step + P) % P, next_src = (src - 1 + P) % P;
      Exchange next_kv;
      if (step + 1 < P) next_kv = exchange(*s, kv, next_src, 2 * step);
      for_each_pair(*s, src, [&](const RingLayout::Piece& qp, const RingLayout::Piece& kp, const TileSpec& spec) {
        auto qs = [&](const torch::Tensor& t) { return t.narrow(2, qp.offset, qp.length); };
        auto ks = [&](const torch::Tensor& t) { return t.narrow(2, kp.offset, kp.length); };
        auto dk_rows = ks(dkv[0]), dv_rows = ks(dkv[1]), dq_rows = qs(dq);
        tiled_backward(qs(q), ks(kv[0]), ks(kv[1]), qs(out), qs(lse), qs(dout), dlse.defined() ? qs(dlse) : dlse, spec,
                       dq_rows, dk_rows, dv_rows);
      });
      // dkv goes on with its chunk; after P hops it is back with its owner, complete (a ring of
      // one rank has nowhere to send it).
      if (P > 1) {
        Exchange next_dkv = exchange(*s, dkv, next_src, 2 * step + 1);
        next_dkv.wait();
        dkv = next_dkv.received;
      }
      if (step + 1 < P) {
        next_kv.wait();
        kv = next_kv.received;
      }
    }
    return {dq, dkv[0], dkv[1], torch::Tensor()};
  }
};

}  // namespace

double ring_wait_seconds() { return static_cast<double>(g_wait_ns.load()) * 1e-9; }
void reset_ring_wait_seconds() { g_wait_ns = 0; }

AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block, int64_t k_block) {
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && k.sizes() == v.sizes(), "ring attention: q, k, v [B, T, H, D] of one shape");
  TORCH_CHECK(q.size(1) == layout.local_length(layout.rank()), "ring attention: ", q.size(1),
              " local tokens, the layout gives this rank ", layout.local_length(layout.rank()));
  TORCH_CHECK(group->getSize() == layout.world_size() && group->getRank() == layout.rank(),
              "ring attention: the layout's ranks are not the group's");
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto qh = (q * scale).transpose(1, 2).contiguous();
  auto kh = k.transpose(1, 2).contiguous(), vh = v.transpose(1, 2).contiguous();
  auto state = c10::make_intrusive<RingState>(layout, group, causal, q_block, std::max(q_block, k_block));
  auto res = RingFunction::apply(qh, kh, vh, state);
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

}  // namespace longnet::attention
