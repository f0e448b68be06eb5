#include "attention/ring.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <limits>

#include "attention/block_sparse.h"
#include "attention/blockwise.h"
#include "attention/registry.h"
#include "attention/merge.h"

namespace longnet::attention {

RingLayout::RingLayout(int64_t T, int rank, int world_size, bool zigzag)
    : T_(T), rank_(rank), world_size_(world_size), zigzag_(zigzag), pieces_(static_cast<size_t>(world_size)) {
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
using Piece = RingLayout::Piece;

std::atomic<int64_t> g_wait_ns{0};
std::atomic<int64_t> g_bytes_sent{0};

// What one query piece computes against one range of keys (a piece of its own rank, or a
// received packet): dense, or a block mask. Head-major tensors: q rows [B, H, lq, D] (scaled),
// k, v [B, H, lk, D]; positions are those of the first row in the sequence.
class PairKernel {
 public:
  virtual ~PairKernel() = default;
  virtual bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t k_len) const = 0;
  virtual void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v,
                       int64_t k_pos, const torch::Tensor& out, const torch::Tensor& lse) const = 0;
  virtual void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v,
                        int64_t k_pos, const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout,
                        const torch::Tensor& dlse, torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const = 0;
};

class DensePairs : public PairKernel {
 public:
  DensePairs(bool causal, int64_t q_block, int64_t k_block, const DropoutKey& dropout)
      : causal_(causal), q_block_(q_block), k_block_(k_block), dropout_(dropout) {}
  bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t) const override {
    return !causal_ || k_pos <= q_pos + q_len - 1;
  }
  // In query slices of kRows rows, so that the partial result (and in backward the
  // dout . out products) is a slice's, not a whole piece's.
  void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
               const torch::Tensor& out, const torch::Tensor& lse) const override {
    for (int64_t s = 0; s < q.size(2); s += kRows) {
      const int64_t n = std::min(kRows, q.size(2) - s);
      if (!attends(q_pos + s, n, k_pos, k.size(2))) continue;
      torch::Tensor o, l;
      tiled_forward(q.narrow(2, s, n), k, v, spec(q_pos + s, k_pos), o, l);
      merge_into_(out.narrow(2, s, n), lse.narrow(2, s, n), o, l);
    }
  }
  void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
                const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout, const torch::Tensor& dlse,
                torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const override {
    for (int64_t s = 0; s < q.size(2); s += kRows) {
      const int64_t n = std::min(kRows, q.size(2) - s);
      if (!attends(q_pos + s, n, k_pos, k.size(2))) continue;
      auto rows = [&](const torch::Tensor& t) { return t.narrow(2, s, n); };
      auto dq_rows = rows(dq);
      tiled_backward(rows(q), k, v, rows(out), rows(lse), rows(dout), dlse.defined() ? rows(dlse) : dlse,
                     spec(q_pos + s, k_pos), dq_rows, dk, dv);
    }
  }

 private:
  TileSpec spec(int64_t q_pos, int64_t k_pos) const {
    TileSpec s;
    s.causal = causal_;
    s.q_pos0 = q_pos;
    s.k_pos0 = k_pos;
    s.q_block = q_block_;
    s.k_block = k_block_;
    s.dropout = &dropout_;  // the rows are at their true positions: q_pos0 + i, k_pos0 + j
    return s;
  }
  static constexpr int64_t kRows = 512;
  bool causal_;
  int64_t q_block_, k_block_;
  DropoutKey dropout_;
};

// block_sparse's mask over the whole sequence, applied per query block: the kept key blocks'
// rows inside the key range are gathered into at most two sets, each attended by one tiled
// call and merged by lse: the rows of blocks before the query block (all in every query's past,
// or, without causal masking, every kept row), and the diagonal block's rows, masked at their
// true positions (a range may hold only part of a block, so the two cannot share positions).
class BlockPairs : public PairKernel {
 public:
  BlockPairs(torch::Tensor mask, int64_t block, bool causal, int64_t k_block, const DropoutKey& dropout)
      : mask_(std::move(mask)), acc_(mask_.accessor<bool, 2>()), b_(block), causal_(causal), k_block_(k_block),
        dropout_(dropout) {}

  bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t k_len) const override {
    for (int64_t i = q_pos / b_; i * b_ < q_pos + q_len; ++i)
      for (int64_t j = k_pos / b_; j * b_ < k_pos + k_len; ++j)
        if (acc_[i][j]) return true;
    return false;
  }

  void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
               const torch::Tensor& out, const torch::Tensor& lse) const override {
    for_each_key_set(q.size(2), q_pos, k.size(2), k_pos, k.device(), [&](int64_t qs, int64_t len, const KeySet& keys) {
      torch::Tensor o, l;
      tiled_forward(q.narrow(2, qs, len), keys.take(k), keys.take(v), keys.spec, o, l);
      merge_into_(out.narrow(2, qs, len), lse.narrow(2, qs, len), o, l);
    });
  }

  void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
                const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout, const torch::Tensor& dlse,
                torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const override {
    for_each_key_set(q.size(2), q_pos, k.size(2), k_pos, k.device(), [&](int64_t qs, int64_t len, const KeySet& keys) {
      auto kg = keys.take(k), vg = keys.take(v);
      auto dkg = torch::zeros_like(kg), dvg = torch::zeros_like(vg), dqb = dq.narrow(2, qs, len);
      auto rows = [&](const torch::Tensor& t) { return t.narrow(2, qs, len); };
      tiled_backward(rows(q), kg, vg, rows(out), rows(lse), rows(dout), dlse.defined() ? rows(dlse) : dlse,
                     keys.spec, dqb, dkg, dvg);
      keys.add_back(dk, dkg);
      keys.add_back(dv, dvg);
    });
  }

 private:
  // Key rows (relative to the range), ascending, and how the tiled core sees them.
  struct KeySet {
    std::vector<std::pair<int64_t, int64_t>> ranges;  // [start, end)
    torch::Tensor index;                              // when more than one range
    TileSpec spec;
    void add(int64_t s, int64_t e) {
      if (!ranges.empty() && ranges.back().second == s) ranges.back().second = e;
      else ranges.push_back({s, e});
    }
    void finish(const torch::Device& device) {
      if (ranges.size() < 2) return;
      std::vector<torch::Tensor> parts;
      for (const auto& [s, e] : ranges) parts.push_back(torch::arange(s, e, torch::kLong));
      index = torch::cat(parts).to(device);
    }
    torch::Tensor take(const torch::Tensor& t) const {
      if (!index.defined()) return t.narrow(2, ranges[0].first, ranges[0].second - ranges[0].first);
      return t.index_select(2, index);
    }
    void add_back(const torch::Tensor& into, const torch::Tensor& g) const {
      if (!index.defined()) into.narrow(2, ranges[0].first, ranges[0].second - ranges[0].first).add_(g);
      else into.index_add_(2, index, g);
    }
  };

  // f(first query row, query rows, keys) for each query block met by the q range and each
  // non-empty key set of it in the k range.
  template <typename F>
  void for_each_key_set(int64_t q_len, int64_t q_pos, int64_t k_len, int64_t k_pos, const torch::Device& device,
                        const F& f) const {
    for (int64_t i = q_pos / b_; i * b_ < q_pos + q_len; ++i) {
      KeySet past, diagonal;
      for (int64_t j = k_pos / b_; j * b_ < k_pos + k_len; ++j) {
        if (!acc_[i][j]) continue;
        const int64_t s = std::max(j * b_, k_pos) - k_pos, e = std::min((j + 1) * b_, k_pos + k_len) - k_pos;
        (causal_ && j == i ? diagonal : past).add(s, e);
      }
      const int64_t qs = std::max(i * b_, q_pos), qe = std::min((i + 1) * b_, q_pos + q_len);
      for (KeySet* keys : {&past, &diagonal}) {
        if (keys->ranges.empty()) continue;
        keys->finish(device);
        keys->spec.q_block = b_;
        keys->spec.k_block = k_block_;
        keys->spec.causal = keys == &diagonal;
        keys->spec.q_pos0 = qs;
        keys->spec.k_pos0 = k_pos + keys->ranges[0].first;  // the diagonal's rows are one range
        keys->spec.dropout = &dropout_;
        if (dropout_.active() && keys->index.defined()) keys->spec.drop_k_pos = (keys->index + k_pos).cpu();
        f(qs - q_pos, qe - qs, *keys);
      }
    }
  }

  torch::Tensor mask_;
  torch::TensorAccessor<bool, 2> acc_;
  int64_t b_;
  bool causal_;
  int64_t k_block_;
  DropoutKey dropout_;
};

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
  CrossRankState(RingLayout l, c10::intrusive_ptr<c10d::ProcessGroup> g, std::shared_ptr<const PairKernel> p,
                 int64_t rows)
      : layout(std::move(l)), group(std::move(g)), pairs(std::move(p)), packet_rows(rows) {}

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

// Time the compute thread spends blocked on transfers (the part the compute did not hide).
class WaitClock {
 public:
  WaitClock() : t0_(std::chrono::steady_clock::now()) {}
  ~WaitClock() {
    g_wait_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// Sends tensors in the order given, each waited before the next, on a thread of its own: a
// rank's sends go on while its compute thread computes or waits for what it receives, so that
// uneven work between peers is not paid at every packet, and a rank waiting for its own data
// never holds back what others wait for. A job makes its tensor when its turn comes (packing a
// packet then), so one is alive at a time. A failed send (a dead peer's timeout) is rethrown by
// the next wait_below / drain.
class Sender {
 public:
  explicit Sender(c10d::ProcessGroup& group) : group_(group), thread_([this] { run(); }) {}
  ~Sender() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    thread_.join();
  }
  void push(std::function<torch::Tensor()> make, int to, uint32_t tag) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back({std::move(make), to, tag});
      ++outstanding_;
    }
    work_cv_.notify_all();
  }
  // Blocks until fewer than n sends are queued or in flight.
  void wait_below(int64_t n) {
    WaitClock clock;
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [&] { return outstanding_ < n || error_; });
    if (error_) std::rethrow_exception(error_);
  }
  void drain() { wait_below(1); }

 private:
  struct Job {
    std::function<torch::Tensor()> make;
    int to;
    uint32_t tag;
  };
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (stop_) return;  // normally after drain(); otherwise the compute thread failed
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (!failed()) {
        try {
          torch::NoGradGuard no_grad;
          std::vector<torch::Tensor> v = {job.make()};
          g_bytes_sent += static_cast<int64_t>(v[0].numel() * v[0].element_size());
          group_.send(v, job.to, static_cast<int>(job.tag))->wait();
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex_);
          error_ = std::current_exception();
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --outstanding_;
      }
      done_cv_.notify_all();
    }
  }
  bool failed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<bool>(error_);
  }

  c10d::ProcessGroup& group_;
  std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job> jobs_;
  int64_t outstanding_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// Receives the dk/dv of this rank's packets from the ranks that computed them, in the order
// expected, on a thread of its own; the compute thread adds what has landed whenever it likes,
// so that it never waits for a peer's compute in the middle of its own.
class GradReceiver {
 public:
  GradReceiver(c10d::ProcessGroup& group, torch::Tensor like)
      : group_(group), like_(std::move(like)), thread_([this] { run(); }) {}
  ~GradReceiver() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void expect(const Packet& p, int from, uint32_t tag) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back({p, from, tag});
      ++outstanding_;
    }
    cv_.notify_all();
  }
  // Adds what has arrived into dk, dv; with all = true first waits for everything expected.
  void land(const torch::Tensor& dk, const torch::Tensor& dv, bool all) {
    std::deque<std::pair<Packet, torch::Tensor>> landed;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (all) {
        WaitClock clock;
        cv_.wait(lock, [&] { return outstanding_ == 0 || error_; });
      }
      if (error_) std::rethrow_exception(error_);
      landed.swap(landed_);
    }
    for (const auto& [p, g] : landed) {
      dk.narrow(2, p.offset, p.length).add_(g[0]);
      dv.narrow(2, p.offset, p.length).add_(g[1]);
    }
  }

 private:
  struct Job {
    Packet packet;
    int from;
    uint32_t tag;
  };
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (stop_) return;
        job = jobs_.front();
        jobs_.pop_front();
      }
      torch::Tensor buffer;
      std::exception_ptr error;
      try {
        buffer = torch::empty({2, like_.size(0), like_.size(1), job.packet.length, like_.size(3)}, like_.options());
        std::vector<torch::Tensor> v = {buffer};
        group_.recv(v, job.from, static_cast<int>(job.tag))->wait();
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (error) error_ = error;
        else landed_.emplace_back(job.packet, buffer);
        --outstanding_;
      }
      cv_.notify_all();
      if (error) return;  // the rest would wait for the same dead peer
    }
  }

  c10d::ProcessGroup& group_;
  torch::Tensor like_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::deque<std::pair<Packet, torch::Tensor>> landed_;
  int64_t outstanding_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
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
// start), rank - s's packets in (receives posted up to kDepth ahead of the compute).
class Round {
 public:
  Round(const CrossRankState& s, const torch::Tensor& k, const torch::Tensor& v, int round)
      : s_(s), k_(k), v_(v), round_(round), to_((s.rank() + round) % s.size()),
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
  // The next packet in, waited for.
  Received take() {
    Received r = std::move(flying_.front());
    flying_.pop_front();
    {
      WaitClock clock;
      r.work->wait();
    }
    ++taken_;
    return r;
  }

 private:
  const CrossRankState& s_;
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
void run_rounds(const CrossRankState& s, const torch::Tensor& k, const torch::Tensor& v, Sender& sender,
                const Own& own, const Work& work, const std::function<void(Round&)>& on_round = nullptr) {
  bool own_done = false;
  for (int round = 1; round < s.size(); ++round) {
    Round rd(s, k, v, round);
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
      Sender sender(*s->group);
      run_rounds(*s, k, v, sender, own,
                 [&](Round&, const Received& in) { compute(in.packet.position, in.kv[0], in.kv[1]); });
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
    Sender sender(*s->group), grads_out(*s->group);
    GradReceiver grads_in(*s->group, k);
    run_rounds(
        *s, k, v, sender, own,
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

AttentionOutput across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                             std::shared_ptr<const PairKernel> pairs, int64_t packet_rows, double softmax_scale) {
  check_cross_rank_inputs("attention across ranks", q, k, v, layout, group);
  const auto h = head_major(q, k, v, softmax_scale);
  auto state = c10::make_intrusive<CrossRankState>(layout, group, std::move(pairs), default_packet_rows(layout, packet_rows));
  auto res = CrossRankFunction::apply(h.q, h.k, h.v, state);
  return {res[0].transpose(1, 2), res[1].transpose(1, 2)};
}

}  // namespace

void check_cross_rank_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const RingLayout& layout,
                             const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && k.sizes() == v.sizes(), what,
              ": q, k, v [B, T, H, D] of one shape");
  TORCH_CHECK(q.size(1) == layout.local_length(layout.rank()), what, ": ", q.size(1),
              " local tokens, the layout gives this rank ", layout.local_length(layout.rank()));
  TORCH_CHECK(layout.world_size() == 1 || (group && group->getSize() == layout.world_size() &&
                                           group->getRank() == layout.rank()),
              what, ": the layout's ranks are not the group's");
}

double ring_wait_seconds() { return static_cast<double>(g_wait_ns.load()) * 1e-9; }
void reset_ring_wait_seconds() {
  g_wait_ns = 0;
  g_bytes_sent = 0;
}
int64_t ring_bytes_sent() { return g_bytes_sent.load(); }
void record_transfers(int64_t bytes_sent, double wait_seconds) {
  g_bytes_sent += bytes_sent;
  g_wait_ns += static_cast<int64_t>(wait_seconds * 1e9);
}

AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block, int64_t k_block, int64_t packet_rows, double softmax_scale,
                               const DropoutKey& dropout) {
  return across_ranks(q, k, v, layout, group,
                      std::make_shared<DensePairs>(causal, q_block, std::max(q_block, k_block), dropout), packet_rows,
                      softmax_scale);
}

AttentionOutput ring_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                  const AttentionOptions& o, const RingLayout& layout,
                                  const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout) {
  return ring_attention(q, k, v, causal, layout, group, o.block_size, o.key_block, /*packet_rows=*/0, o.softmax_scale,
                        dropout);
}

AttentionOutput block_sparse_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal, const AttentionOptions& options, const RingLayout& layout,
                                          const c10::intrusive_ptr<c10d::ProcessGroup>& group, int64_t packet_rows,
                                          const DropoutKey& dropout) {
  auto mask = BlockSparseAttention(options).block_mask(layout.length(), causal);
  return across_ranks(q, k, v, layout, group,
                      std::make_shared<BlockPairs>(mask, options.block_size, causal,
                                                   std::max(options.block_size, options.key_block), dropout),
                      packet_rows, options.softmax_scale);
}

namespace {

class RingAttention : public AttentionKernel {
 public:
  explicit RingAttention(const AttentionOptions& options) : options_(options) {}
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override {
    return ring_attention(q, k, v, causal, RingLayout(q.size(1), 0, 1, false), {}, options_.block_size,
                          options_.key_block, /*packet_rows=*/0, options_.softmax_scale, drawn());
  }
  std::string kind() const override { return "ring"; }

 private:
  AttentionOptions options_;
};

}  // namespace

KernelEntry ring_entry() {
  KernelEntry e;
  e.make = [](const AttentionOptions& o) { return std::make_shared<RingAttention>(o); };
  e.across = ring_across_ranks;
  return e;
}

}  // namespace longnet::attention
