// longnet bench ring: ring attention split over P local ranks (Gloo over the loopback), per-rank
// peak RSS and forward+backward time of one attention step, and the share of that time spent
// waiting on transfers. Each (T, P) runs as `longnet launch --nproc P -- bench ring --one-length T`.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include "attention/dilated.h"
#include "attention/registry.h"
#include "attention/ring.h"
#include "attention/sequence_parallel.h"
#include "common/errors.h"
#include "tools/cli.h"
#include "tools/bench_util.h"
#include "train/distributed.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

// The kernel's settings in this benchmark: its registry entry's `bench_across`.
attention::AttentionOptions bench_options(const std::string& kind) {
  attention::AttentionOptions o;
  o.kind = kind;
  const auto& entry = attention::kernel_entry(kind);
  return entry.bench_across ? entry.bench_across(o) : o;
}

// In every rank: one causal attention step across the ranks (forward + backward), after a
// small warm-up step. The inputs are head-major, as the model's attention layer hands them
// over. Rank 0 prints the maxima over the ranks.
nlohmann::json measure_ring(const std::string& kind, int64_t T, int64_t heads, int64_t head_dim, int threads) {
  const auto env = train::distributed_env();
  train::TrainOptions t;
  t.threads = threads;
  train::configure_runtime(t);
  auto group = train::init_process_group(env, std::chrono::seconds(600));
  const auto options = bench_options(kind);
  const bool zigzag = attention::SequenceParallel::zigzag_split(options);
  attention::TransferStats stats;
  // One step at length n; returns its seconds.
  auto step = [&](int64_t n) {
    attention::RingLayout layout(n, env.rank, env.world_size, zigzag);
    const int64_t local = layout.local_length(env.rank);
    auto make = [&] { return torch::randn({1, heads, local, head_dim}).requires_grad_(); };
    auto q = make(), k = make(), v = make();
    auto gout = torch::randn({1, local, heads, head_dim});
    group->barrier()->wait();
    stats.reset();
    const auto t0 = Clock::now();
    attention::AttentionOutput r;
    auto qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);
    r = attention::kernel_entry(kind).across(qt, kt, vt, true, options, layout, group, {}, &stats);
    r.out.backward(gout);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  // A small step first: what the first step of a process allocates once (thread pools,
  // OpenBLAS's buffers, autograd's engine) belongs to the process, not to the step measured.
  step(std::min<int64_t>(T, 256 * env.world_size));
  group->barrier()->wait();
  const double rss_before = current_rss_mb();
  const int64_t local = attention::RingLayout(T, env.rank, env.world_size, zigzag).local_length(env.rank);
  const double seconds = step(T);
  const double wait = stats.wait_seconds();
  const double sent_mb = static_cast<double>(stats.bytes_sent()) / (1024.0 * 1024.0);
  const double peak = peak_rss_mb();
  // Maxima over the ranks: [seconds, wait, peak rss, step rss, MB sent].
  std::vector<torch::Tensor> m = {torch::tensor({seconds, wait, peak, peak - rss_before, sent_mb}, torch::kDouble)};
  group->allreduce(m, c10d::AllreduceOptions{c10d::ReduceOp::MAX})->wait();
  return {{"kind", kind}, {"T", T}, {"ranks", env.world_size}, {"heads", heads}, {"head_dim", head_dim},
          {"local_tokens", local}, {"fwd_bwd_s", m[0][0].item<double>()}, {"wait_s", m[0][1].item<double>()},
          {"peak_rss_mb", m[0][2].item<double>()}, {"step_rss_mb", m[0][3].item<double>()},
          {"sent_mb", m[0][4].item<double>()}, {"threads", at::get_num_threads()}};
}

}  // namespace

int bench_ring(int argc, char** argv) {
  Command cmd("bench ring", "Attention across P local ranks: time, waiting, per-rank RSS.",
              R"(One causal attention step across ranks (forward + backward, float32, batch 1) over T tokens
split across P local ranks (Gloo over the loopback), each (T, P) in fresh processes started by
`longnet launch`. Per rank (the largest over the ranks): peak RSS of the process (LibTorch's
~0.15 GB included), the step's own peak (peak RSS minus the RSS before its inputs existed, after
a small warm-up step: what the attention step holds), MB of k/v and dk/dv sent, the step's time
and the time spent waiting on transfers that the compute did not hide. The P ranks share the
machine's cores, so with fewer cores than ranks the times at P > 1 are not speedups.
--kind: ring (dense attention, zigzag split) | block_sparse (a window of one 256-token block
each side) | dilated (segments 2K, 8K, 32K, 128K with rates 1, 4, 16, 64; contiguous split).)");
  std::string kind = "ring";
  std::vector<int64_t> lengths = {16384, 32768, 65536}, ranks = {1, 2, 4};
  int64_t heads = 8, head_dim = 64, one_length = 0;
  bool json = false;
  cmd.app().add_option("--kind", kind, "an attention kind with a cross-rank form")->capture_default_str();
  add_list(cmd.app(), "--lengths", lengths, "sequence lengths")->capture_default_str();
  add_list(cmd.app(), "--ranks", ranks, "rank counts P")->capture_default_str();
  cmd.app().add_option("--heads", heads, "heads H")->check(kPositive)->capture_default_str();
  cmd.app().add_option("--head-dim", head_dim, "head_dim D")->check(kPositive)->capture_default_str();
  cmd.app().add_flag("--json", json, "one JSON object per line instead of the table");
  cmd.app().add_option("--one-length", one_length)->group("");  // a rank's one measurement
  if (!cmd.parse(argc, argv)) return 0;
  attention::register_builtin_kernels();
  if (!attention::has_kernel(kind) || !attention::kernel_entry(kind).across) {
    std::string valid;
    for (const auto& k : attention::kernel_kinds())
      if (attention::kernel_entry(k).across) valid += (valid.empty() ? "" : ", ") + k;
    throw ConfigError("--kind: expected a kind with a cross-rank form (" + valid + "), got '" + kind + "'");
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (one_length > 0) {  // a rank
    const int world = train::distributed_env().world_size;
    const auto j = measure_ring(kind, one_length, heads, head_dim, std::max(1, cores / world));
    if (train::distributed_env().rank == 0) std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (!json)
    std::printf("%-8s %5s %9s %10s %8s %7s %9s %12s %11s %8s\n", "T", "ranks", "tokens", "fwd+bwd s", "wait s", "wait %",
                "sent MB", "process RSS", "step RSS", "vs P=1");
  std::fflush(stdout);
  const std::string exe = self_exe();
  for (int64_t T : lengths) {
    double rss1 = 0;
    for (int64_t P : ranks) {
      std::ostringstream cmd;
      cmd << "'" << exe << "' launch --nproc " << P << " -- bench ring --kind " << kind << " --one-length " << T
          << " --heads " << heads << " --head-dim " << head_dim;
      int rc = 0;
      const auto j = run_child(cmd.str(), rc);
      if (rc != 0 || !j.is_object()) {
        std::fprintf(stderr, "bench ring: T=%lld with %lld ranks failed (exit status %d)%s\n", static_cast<long long>(T),
                     static_cast<long long>(P), rc, oom_hint(rc));
        continue;
      }
      const double rss = j["step_rss_mb"].get<double>();
      if (P == 1) rss1 = rss;
      if (json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        const double s = j["fwd_bwd_s"].get<double>(), w = j["wait_s"].get<double>();
        std::printf("%-8lld %5lld %9lld %10.2f %8.2f %6.0f%% %9.1f %9.0f MB %8.0f MB %8s\n", static_cast<long long>(T),
                    static_cast<long long>(P), static_cast<long long>(j["local_tokens"].get<int64_t>()), s, w,
                    100.0 * w / s, j["sent_mb"].get<double>(), j["peak_rss_mb"].get<double>(), rss,
                    rss1 > 0 ? (std::to_string(rss / rss1).substr(0, 4) + "x").c_str() : "-");
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace longnet::tools
