// longnet bench ring: ring attention split over P local ranks (Gloo over the loopback), per-rank
// peak RSS and forward+backward time of one attention step, and the share of that time spent
// waiting on transfers. Each (T, P) runs as `longnet launch --nproc P -- bench ring --one-length T`.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include "attention/ring.h"
#include "data/errors.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "train/distributed.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

// In every rank: one causal (zigzag) ring attention forward + backward over T tokens. Rank 0
// prints the maxima over the ranks.
nlohmann::json measure_ring(int64_t T, int64_t heads, int64_t head_dim, int threads) {
  const auto env = train::distributed_env();
  train::TrainOptions t;
  t.threads = threads;
  train::configure_runtime(t);
  auto group = train::init_process_group(env, std::chrono::seconds(600));
  attention::RingLayout layout(T, env.rank, env.world_size, /*zigzag=*/true);
  const int64_t local = layout.local_length(env.rank);
  auto q = torch::randn({1, local, heads, head_dim}).requires_grad_();
  auto k = torch::randn_like(q).requires_grad_(), v = torch::randn_like(q).requires_grad_();
  auto gout = torch::randn_like(q);
  group->barrier()->wait();
  attention::reset_ring_wait_seconds();
  const auto t0 = Clock::now();
  auto r = attention::ring_attention(q, k, v, true, layout, group);
  r.out.backward(gout);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double wait = attention::ring_wait_seconds();
  // Maxima over the ranks: [seconds, wait, rss].
  std::vector<torch::Tensor> m = {torch::tensor({seconds, wait, peak_rss_mb()}, torch::kDouble)};
  group->allreduce(m, c10d::AllreduceOptions{c10d::ReduceOp::MAX})->wait();
  return {{"T", T}, {"ranks", env.world_size}, {"heads", heads}, {"head_dim", head_dim}, {"local_tokens", local},
          {"fwd_bwd_s", m[0][0].item<double>()}, {"wait_s", m[0][1].item<double>()},
          {"peak_rss_mb", m[0][2].item<double>()}, {"threads", at::get_num_threads()}};
}

}  // namespace

int bench_ring(int argc, char** argv) {
  const auto args = parse_args("bench ring", argc, argv, {"lengths", "ranks", "heads", "head-dim", "one-length"}, {"json"});
  if (args.help) {
    std::puts(R"(usage: longnet bench ring [--lengths LIST] [--ranks LIST] [--heads H] [--head-dim D] [--json]

One causal ring-attention step (forward + backward, zigzag split, float32, batch 1) over T
tokens split across P local ranks (Gloo over the loopback), each (T, P) in fresh processes
started by `longnet launch`: per-rank peak RSS (the largest over the ranks, LibTorch included),
the step's time (the slowest rank) and the time spent waiting on transfers that the compute
did not hide. On this 2-core machine P = 4 shares 2 cores, so times at P > 2 are not speedups.

  --lengths LIST   (default 16384,32768,65536)     --ranks LIST   (default 1,2,4)
  --heads H        (default 8)                     --head-dim D   (default 64)
  --json           one JSON object per line)");
    return 0;
  }
  auto num = [&](const char* name, int64_t def) {
    return args.values.count(name) ? parse_list(name, args.values.at(name)).at(0) : def;
  };
  const int64_t heads = num("heads", 8), head_dim = num("head-dim", 64);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (args.values.count("one-length")) {  // a rank
    const int world = train::distributed_env().world_size;
    const auto j = measure_ring(num("one-length", 0), heads, head_dim, std::max(1, cores / world));
    if (train::distributed_env().rank == 0) std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const auto lengths = parse_list("lengths", args.values.count("lengths") ? args.values.at("lengths") : "16384,32768,65536");
  const auto ranks = parse_list("ranks", args.values.count("ranks") ? args.values.at("ranks") : "1,2,4");
  const bool json = args.flags.count("json");
  if (!json) std::printf("%-8s %5s %9s %12s %10s %8s %12s %10s\n", "T", "ranks", "tokens", "fwd+bwd s", "wait s", "wait %",
                         "peak RSS", "vs P=1");
  std::fflush(stdout);
  const std::string exe = self_exe();
  for (int64_t T : lengths) {
    double rss1 = 0;
    for (int64_t P : ranks) {
      std::ostringstream cmd;
      cmd << "'" << exe << "' launch --nproc " << P << " -- bench ring --one-length " << T << " --heads " << heads
          << " --head-dim " << head_dim;
      int rc = 0;
      const auto j = run_child(cmd.str(), rc);
      if (rc != 0 || !j.is_object()) {
        std::fprintf(stderr, "bench ring: T=%lld with %lld ranks failed (exit status %d)\n", static_cast<long long>(T),
                     static_cast<long long>(P), rc);
        continue;
      }
      const double rss = j["peak_rss_mb"].get<double>();
      if (P == 1) rss1 = rss;
      if (json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        const double s = j["fwd_bwd_s"].get<double>(), w = j["wait_s"].get<double>();
        std::printf("%-8lld %5lld %9lld %12.2f %10.2f %7.0f%% %9.0f MB %10s\n", static_cast<long long>(T),
                    static_cast<long long>(P), static_cast<long long>(j["local_tokens"].get<int64_t>()), s, w,
                    100.0 * w / s, rss, rss1 > 0 ? (std::to_string(rss / rss1).substr(0, 4) + "x").c_str() : "-");
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace longnet::tools
