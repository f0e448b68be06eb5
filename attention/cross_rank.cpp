#include "attention/cross_rank.h"

#include <c10/core/StreamGuard.h>
#include <torch/torch.h>

#include <deque>
#include <limits>
#include <mutex>
#include <vector>

#include "attention/blockwise.h"

namespace longnet::attention {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Piece = RingLayout::Piece;

// A transfer unit: rows [offset, offset + length) of `owner`'s local tensors, at positions
// [position, position + length) of the sequence (inside one piece).
struct Packet {
  int owner;
  int64_t offset, length, position;
};

struct CrossRankState : torch::CustomClassHolder {
  RingLayout layout;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::shared_ptr<const PairKernel> pairs;
  int64_t packet_rows;
  TransferStats* stats;
  CrossRankState(RingLayout l, c10::intrusive_ptr<c10d::ProcessGroup> g, std::shared_ptr<const PairKernel> p,
                 int64_t rows, TransferStats* st)
      : layout(std::move(l)), group(std::move(g)), pairs(std::move(p)), packet_rows(rows), stats(st) {}

  int rank() const { return layout.rank(); }
  int size() const { return layout.world_size(); }

  bool needs(int who, const Packet& p) const {
    for (const auto& qp : layout.pieces(who))
      if (pairs->attends(qp.position, qp.length, p.position, p.length)) return true;
    return false;
  }
  // `owner`'s packets that rank `who` attends to, in order.
  std::vector<Packet> packets(int owner, int who) const {
    std::vector<Packet> out;
    for (const auto& piece : layout.pieces(owner))
      for (int64_t s = 0; s < piece.length; s += packet_rows) {
        Packet p{owner, piece.offset + s, std::min(packet_rows, piece.length - s), piece.position + s};
        if (needs(who, p)) out.push_back(p);
      }
    return out;
  }
  // Every query piece of this rank against a range of keys.
  template <typename F>
  void for_each_query_piece(int64_t k_pos, int64_t k_len, const F& f) const {
    for (const auto& qp : layout.pieces(rank()))
      if (pairs->attends(qp.position, qp.length, k_pos, k_len)) f(qp);
  }
};

uint32_t tag(int round, int64_t tick, int kind) {
  return static_cast<uint32_t>((round << 22) | (tick << 2) | kind);
}

// Sends tensors in the order given, each waited before the next, on a transfer thread: a rank's
// sends go on while its compute thread computes or waits for what it receives, so that uneven
// work between peers is not paid at every packet, and a rank waiting for its own data never
// holds back what others wait for. A send makes its tensor when its turn comes (packing a
// packet then), so one is alive at a time.
class Sender {
 public:
  Sender(c10d::ProcessGroup& group, const StreamLink& link, TransferStats* stats)
      : group_(group), stats_(stats), thread_(link, stats) {}
  void push(std::function<torch::Tensor()> make, int to, uint32_t tag) {
    thread_.push([this, make = std::move(make), to, tag] {
      std::vector<torch::Tensor> t = {make()};
      if (stats_) stats_->add(static_cast<int64_t>(t[0].numel() * t[0].element_size()), 0);
      group_.send(t, to, static_cast<int>(tag))->wait();
    });
  }
  // Blocks until fewer than n sends are queued or in flight.
  void wait_below(int64_t n) { thread_.wait_below(n); }
  void drain() { thread_.drain(); }

 private:
  c10d::ProcessGroup& group_;
  TransferStats* stats_;
  TransferThread thread_;
};

// Receives the dk/dv of this rank's packets from the ranks that computed them, in the order
// expected, on a transfer thread; the compute thread adds what has landed whenever it likes, so
// that it never waits for a peer's compute in the middle of its own.
class GradReceiver {
 public:
  GradReceiver(c10d::ProcessGroup& group, const StreamLink& link, TransferStats* stats, torch::Tensor like)
      : group_(group), link_(link), like_(std::move(like)), thread_(link, stats) {}
  void expect(const Packet& p, int from, uint32_t tag) {
    thread_.push([this, p, from, tag] {
      auto buffer = torch::empty({2, like_.size(0), like_.size(1), p.length, like_.size(3)}, like_.options());
      std::vector<torch::Tensor> v = {buffer};
      group_.recv(v, from, static_cast<int>(tag))->wait();
      auto ready = link_.mark();  // on the transfers' stream: the copy into `buffer` is done
      std::lock_guard<std::mutex> lock(mutex_);
      landed_.push_back({p, buffer, std::move(ready)});
    });
  }
  // Adds what has arrived into dk, dv; with all = true first waits for everything expected.
  void land(const torch::Tensor& dk, const torch::Tensor& dv, bool all) {
    if (all) thread_.drain();
    else thread_.rethrow();
    std::deque<Landed> landed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      landed.swap(landed_);
    }
    for (const auto& l : landed) {
      link_.wait_for(l.ready);
      link_.used_here(l.grads);
      dk.narrow(2, l.packet.offset, l.packet.length).add_(l.grads[0]);
      dv.narrow(2, l.packet.offset, l.packet.length).add_(l.grads[1]);
    }
  }

 private:
  struct Landed {
    Packet packet;
    torch::Tensor grads;
    std::shared_ptr<c10::Event> ready;
  };
  c10d::ProcessGroup& group_;
  const StreamLink& link_;
  torch::Tensor like_;
  std::mutex mutex_;
  std::deque<Landed> landed_;
  TransferThread thread_;  // last: its thread stops before the members it uses go
};

// [2, B, H, rows, D]: a packet's k and v rows, contiguous, for sending.
torch::Tensor pack(const torch::Tensor& k, const torch::Tensor& v, const Packet& p) {
  return torch::stack({k.narrow(2, p.offset, p.length), v.narrow(2, p.offset, p.length)});
}
torch::Tensor packet_buffer(const torch::Tensor& like, const Packet& p) {
  return torch::empty({2, like.size(0), like.size(1), p.length, like.size(3)}, like.options());
}

// Packets queued for sending, and receives posted, ahead of the compute.
constexpr size_t kDepth = 4;

// A received packet: its k and v rows [2, B, H, rows, D].
struct Received {
  c10::intrusive_ptr<c10d::Work> work;
  torch::Tensor kv;
  Packet packet{};
  int64_t index = 0;
};

// Round s of the exchange: this rank's packets to rank + s (all handed to the sender at the
// start), rank - s's packets in (receives posted up to kDepth ahead of the compute, on the
// transfers' stream).
class Round {
 public:
  Round(const CrossRankState& s, const StreamLink& link, const torch::Tensor& k, const torch::Tensor& v, int round)
      : s_(s), link_(link), k_(k), v_(v), round_(round), to_((s.rank() + round) % s.size()),
        from_((s.rank() - round + s.size()) % s.size()), out_(s.packets(s.rank(), to_)), in_(s.packets(from_, s.rank())) {}

  int to() const { return to_; }
  int from() const { return from_; }
  const std::vector<Packet>& out() const { return out_; }
  bool receiving() const { return taken_ < in_.size(); }

  // Hands every packet of this round to the sender, which packs each when it gets to it.
  void send_all(Sender& sender) {
    for (size_t i = 0; i < out_.size(); ++i)
      sender.push([&k = k_, &v = v_, p = out_[i]] { return pack(k, v, p); }, to_, tag(round_, static_cast<int64_t>(i), 0));
  }
  // Posts receives up to kDepth ahead of the compute.
  void post() {
    c10::OptionalStreamGuard on_transfer_stream(link_.stream());
    while (posted_ < in_.size() && flying_.size() < kDepth) {
      Received r;
      r.packet = in_[posted_];
      r.index = static_cast<int64_t>(posted_);
      r.kv = packet_buffer(k_, r.packet);
      std::vector<torch::Tensor> t = {r.kv};
      r.work = s_.group->recv(t, from_, static_cast<int>(tag(round_, r.index, 0)));
      flying_.push_back(std::move(r));
      ++posted_;
    }
  }
  // The next packet in, waited for (on CUDA: the compute stream waits for the copy).
  Received take() {
    Received r = std::move(flying_.front());
    flying_.pop_front();
    {
      WaitClock clock(s_.stats);
      r.work->wait();
    }
    link_.used_here(r.kv);
    ++taken_;
    return r;
  }

 private:
  const CrossRankState& s_;
  const StreamLink& link_;
  const torch::Tensor &k_, &v_;
  int round_, to_, from_;
  std::vector<Packet> out_, in_;
  std::deque<Received> flying_;
  size_t posted_ = 0, taken_ = 0;
};

// Runs every round: `work` is called for each received packet (and first `own`, overlapped
// with the first transfers). The compute thread only ever waits for data it needs: sending is
// the sender's.
template <typename Own, typename Work>
void run_rounds(const CrossRankState& s, const StreamLink& link, const torch::Tensor& k, const torch::Tensor& v,
                Sender& sender, const Own& own, const Work& work,
                const std::function<void(Round&)>& on_round = nullptr) {
  bool own_done = false;
  for (int round = 1; round < s.size(); ++round) {
    Round rd(s, link, k, v, round);
    if (on_round) on_round(rd);
    rd.send_all(sender);
    rd.post();
    if (!own_done) {
      own();
      own_done = true;
    }
    while (rd.receiving()) {
      rd.post();
      work(rd, rd.take());
    }
  }
  if (!own_done) own();
  sender.drain();
}

// Inputs head-major: q (scaled), k, v [B, H, T_local, D] contiguous.
class CrossRankFunction : public torch::autograd::Function<CrossRankFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, c10::intrusive_ptr<CrossRankState> s) {
    ctx->set_materialize_grads(false);  // an unused lse keeps no gradient (blockwise.h)
    torch::NoGradGuard no_grad;
    const int r = s->rank();
    auto out = torch::zeros_like(q);
    auto lse = torch::full({q.size(0), q.size(1), q.size(2)}, -std::numeric_limits<double>::infinity(), lse_options(q));
    auto compute = [&](int64_t k_pos, const torch::Tensor& kt, const torch::Tensor& vt) {
      s->for_each_query_piece(k_pos, kt.size(2), [&](const Piece& qp) {
        s->pairs->forward(q.narrow(2, qp.offset, qp.length), qp.position, kt, vt, k_pos,
                          out.narrow(2, qp.offset, qp.length), lse.narrow(2, qp.offset, qp.length));
      });
    };
    auto own = [&] {
      for (const auto& kp : s->layout.pieces(r))
        compute(kp.position, k.narrow(2, kp.offset, kp.length), v.narrow(2, kp.offset, kp.length));
    };
    if (s->size() == 1) {
      own();
    } else {
      StreamLink link(q.device());
      Sender sender(*s->group, link, s->stats);
      run_rounds(*s, link, k, v, sender, own,
                 [&](Round&, const Received& in) { compute(in.packet.position, in.kv[0], in.kv[1]); });
      link.join();  // k, v were read on the transfers' stream
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["state"] = c10::IValue::make_capsule(s);
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    torch::NoGradGuard no_grad;
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    auto s = c10::static_intrusive_pointer_cast<CrossRankState>(ctx->saved_data["state"].toCapsule());
    const int r = s->rank();
    auto dout = grads[0].defined() ? grads[0] : torch::zeros_like(out);
    const auto& dlse = grads[1];
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    // The gradients of every query piece of this rank with respect to a range of keys.
    auto compute = [&](int64_t k_pos, const torch::Tensor& kt, const torch::Tensor& vt, const torch::Tensor& dkt,
                       const torch::Tensor& dvt) {
      s->for_each_query_piece(k_pos, kt.size(2), [&](const Piece& qp) {
        auto rows = [&](const torch::Tensor& t) { return t.narrow(2, qp.offset, qp.length); };
        s->pairs->backward(rows(q), qp.position, kt, vt, k_pos, rows(out), rows(lse), rows(dout),
                           dlse.defined() ? rows(dlse) : dlse, rows(dq), dkt, dvt);
      });
    };
    auto own = [&] {
      for (const auto& kp : s->layout.pieces(r)) {
        auto rows = [&](const torch::Tensor& t) { return t.narrow(2, kp.offset, kp.length); };
        compute(kp.position, rows(k), rows(v), rows(dk), rows(dv));
      }
    };
    if (s->size() == 1) {
      own();
      return {dq, dk, dv, torch::Tensor()};
    }
    // The k/v rounds again; each received packet's dk/dv go back to its owner (their own
    // sender: they must not queue behind k/v), and this rank's come home on a receiver thread.
    StreamLink link(q.device());
    Sender sender(*s->group, link, s->stats), grads_out(*s->group, link, s->stats);
    GradReceiver grads_in(*s->group, link, s->stats, k);
    run_rounds(
        *s, link, k, v, sender, own,
        [&](Round& rd, const Received& in) {
          auto partial = torch::zeros_like(in.kv);
          compute(in.packet.position, in.kv[0], in.kv[1], partial[0], partial[1]);
          grads_out.wait_below(static_cast<int64_t>(kDepth));  // at most kDepth partials held
          grads_out.push([partial] { return partial; }, rd.from(), tag(round_of(rd, *s), in.index, 1));
          grads_in.land(dk, dv, false);
        },
        [&](Round& rd) {
          for (size_t i = 0; i < rd.out().size(); ++i)
            grads_in.expect(rd.out()[i], rd.to(), tag(round_of(rd, *s), static_cast<int64_t>(i), 1));
        });
    grads_out.drain();
    grads_in.land(dk, dv, true);
    link.join();
    return {dq, dk, dv, torch::Tensor()};
  }

 private:
  static int round_of(const Round& rd, const CrossRankState& s) { return (rd.to() - s.rank() + s.size()) % s.size(); }
};

int64_t default_packet_rows(const RingLayout& layout, int64_t packet_rows) {
  if (packet_rows > 0) return packet_rows;
  const int64_t share = layout.local_length(layout.rank());
  return std::max<int64_t>(128, (share + 63) / 64);
}

}  // namespace

AttentionOutput across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                             std::shared_ptr<const PairKernel> pairs, int64_t packet_rows, double softmax_scale,
                             TransferStats* stats) {
  check_cross_rank_inputs("attention across ranks", q, k, v, layout, group);
  const auto h = head_major(q, k, v, softmax_scale);
  auto state = c10::make_intrusive<CrossRankState>(layout, group, std::move(pairs),
                                                   default_packet_rows(layout, packet_rows), stats);
  auto res = CrossRankFunction::apply(h.q, h.k, h.v, state);
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

}  // namespace longnet::attention
