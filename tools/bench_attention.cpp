// longnet bench attention: forward and forward+backward time, peak RSS and effective GFLOP/s
// of each kernel, each measurement in a fresh child process so that peak RSS is its own.
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "attention/block_sparse.h"
#include "attention/registry.h"
#include "common/errors.h"
#include "tools/cli.h"
#include "tools/bench_util.h"
#include "tools/commands.h"
#include "train/config.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchSetup {
  int64_t batch = 1, heads = 8, head_dim = 64, block = 256, key_block = 1024, repeat = 3;
  bool causal = true;
  double density = 0.1;
  int threads = 0;
  std::string dtype = "float32";  // q, k, v and their gradients: float32 or bfloat16
  std::vector<std::string> sets;  // --set attention.KEY=VALUE, over each kind's preset
};

// The kernel options benchmarked for `kind` at length T: the shared block sizes, the kind's own
// settings from its registry entry, then --set's attention keys over them, checked as a
// config's are (at data.seq_len T and model.n_heads --heads).
attention::AttentionOptions bench_options(const std::string& kind, int64_t T, const BenchSetup& s) {
  attention::AttentionOptions o;
  o.kind = kind;
  o.block_size = s.block;
  o.key_block = s.key_block;
  const auto& entry = attention::kernel_entry(kind);
  if (entry.bench) o = entry.bench(o, T, s.density, s.causal);
  return train::override_attention(o, s.sets, T, s.heads, "longnet bench attention (" + kind + " at T=" + std::to_string(T) + ", --heads " + std::to_string(s.heads) + ")");
}

// Runs in the child: one kernel at one length.
nlohmann::json measure_one(const std::string& kind, int64_t T, const BenchSetup& s) {
  train::TrainOptions t;
  t.threads = s.threads;
  const int threads = train::configure_runtime(t);
  auto o = bench_options(kind, T, s);
  auto kernel = attention::make_kernel(o);
  const auto dtype = s.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
  auto q = torch::randn({s.batch, T, s.heads, s.head_dim}, torch::dtype(dtype)).requires_grad_();
  auto k = torch::randn_like(q).requires_grad_(), v = torch::randn_like(q).requires_grad_();
  auto gout = torch::randn_like(q);
  double fwd = 1e30, fwdbwd = 1e30;
  for (int64_t i = 0; i < s.repeat + 1; ++i) {  // the first round warms up
    auto t0 = Clock::now();
    {
      torch::NoGradGuard no_grad;
      kernel->forward(q, k, v, s.causal);
    }
    auto t1 = Clock::now();
    auto r = kernel->forward(q, k, v, s.causal);
    r.out.backward(gout);
    auto t2 = Clock::now();
    if (i > 0) {
      fwd = std::min(fwd, std::chrono::duration<double>(t1 - t0).count());
      fwdbwd = std::min(fwdbwd, std::chrono::duration<double>(t2 - t1).count());
    }
    q.mutable_grad() = torch::Tensor();
    k.mutable_grad() = torch::Tensor();
    v.mutable_grad() = torch::Tensor();
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double pairs = static_cast<double>(s.batch * s.heads) * kernel->attended_pairs(T, s.causal);
  nlohmann::json j = {{"kind", kind}, {"sets", s.sets}, {"T", T}, {"heads", s.heads}, {"head_dim", s.head_dim}, {"batch", s.batch},
                      {"dtype", s.dtype}, {"causal", s.causal}, {"fwd_ms", 1e3 * fwd}, {"fwd_bwd_ms", 1e3 * fwdbwd},
                      {"peak_rss_mb", ru.ru_maxrss / 1024.0}, {"attended_pairs", pairs},
                      {"gflops", 4.0 * s.head_dim * pairs / fwd / 1e9}, {"threads", threads}};
  j["density"] = attention::density(*kernel, T, s.causal);
  return j;
}

double gemm_gflops(int threads) {
  train::TrainOptions t;
  t.threads = threads;
  train::configure_runtime(t);
  auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  torch::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * 2048.0 * 2048.0 * 2048.0 / best / 1e9;
}

}  // namespace

int bench_attention(int argc, char** argv) {
  Command cmd("bench attention", "Time and measure the attention kernels.",
              R"(Times each kernel at each length, forward and forward+backward, in --dtype, and reports peak
RSS and effective GFLOP/s (4 * head_dim flops per attended (query, key) pair, forward) beside
the machine's float32 GEMM GFLOP/s (2048^3) measured in the same run. Every measurement runs
in a fresh process, so its peak RSS is its own. Each kind's settings are its registry entry's
bench preset (dilated: segments 2048-16384 with rates 1-8; block_sparse: a local window sized
for --density), with --set's attention keys over it, e.g. --kinds dilated --set
attention.dilate=every_offset.)");
  auto& app = cmd.app();
  BenchSetup s;
  std::vector<std::string> kinds = {"dense", "dilated", "block_sparse"};
  std::vector<int64_t> lengths = {2048, 4096, 8192, 16384, 32768, 65536};
  int64_t dense_max = 16384, one_length = 0;
  bool non_causal = false, json = false;
  std::string one_kind;
  app.add_option("--kinds", kinds, "kernels")->delimiter(',')->capture_default_str();
  add_list(app, "--lengths", lengths, "sequence lengths")->capture_default_str();
  app.add_option("--dense-max", dense_max, "longest length for dense")->check(kPositive)->capture_default_str();
  app.add_option("--heads", s.heads, "heads H")->check(kPositive)->capture_default_str();
  app.add_option("--head-dim", s.head_dim, "head_dim D")->check(kPositive)->capture_default_str();
  app.add_option("--batch", s.batch, "batch B")->check(kPositive)->capture_default_str();
  app.add_option("--block", s.block, "attention.block_size")->check(kPositive)->capture_default_str();
  app.add_option("--key-block", s.key_block, "attention.key_block")->check(kPositive)->capture_default_str();
  app.add_option("--density", s.density, "block_sparse's kept fraction of block pairs")
      ->check(kFraction)
      ->capture_default_str();
  app.add_option("--dtype", s.dtype, "q, k and v: float32, or bfloat16 as under train.precision: bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  app.add_flag("--non-causal", non_causal, "attend in both directions (default causal)");
  app.add_option("--repeat", s.repeat, "timed rounds, the best kept")->check(kPositive)->capture_default_str();
  app.add_option("--threads", s.threads, "intra-op threads (0: all cores)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--set", s.sets, "an attention key over each kind's preset, as in a config (repeatable)")
      ->type_name("attention.KEY=VALUE")
      ->allow_extra_args(false);
  app.add_flag("--json", json, "one JSON object per line instead of the table");
  app.add_option("--one-kind", one_kind)->group("");  // a child's one measurement
  app.add_option("--one-length", one_length)->group("");
  if (!cmd.parse(argc, argv)) return 0;
  s.causal = !non_causal;

  if (!one_kind.empty()) {  // child mode
    std::printf("%s\n", measure_one(one_kind, one_length, s).dump().c_str());
    return 0;
  }
  for (const auto& k : kinds)
    if (!attention::has_kernel(k)) throw ConfigError("longnet bench attention: --kinds: unknown kernel '" + k + "'");
  for (const auto& set : s.sets)
    if (set.rfind("attention.kind=", 0) == 0)
      throw ConfigError("longnet bench attention: --set '" + set + "': choose the kinds with --kinds");
  for (const auto& kind : kinds)  // every measurement's options checked before the first runs
    for (int64_t T : lengths)
      if (kind != "dense" || T <= dense_max) bench_options(kind, T, s);
  const double gemm = gemm_gflops(s.threads);
  if (json) {
    std::printf("%s\n", nlohmann::json({{"gemm_gflops", gemm}}).dump().c_str());
  } else {
    std::printf("float32 GEMM 2048^3: %.1f GFLOP/s\n", gemm);
    std::printf("q, k, v: %s\n", s.dtype.c_str());
    for (const auto& set : s.sets) std::printf("--set %s\n", set.c_str());
    std::printf("\n");
    std::printf("%-13s %7s %3s %4s %6s %10s %12s %10s %8s %7s %8s\n", "kind", "T", "H", "D", "causal", "fwd ms",
                "fwd+bwd ms", "peak RSS", "GFLOP/s", "% GEMM", "density");
  }
  std::fflush(stdout);
  const std::string exe = self_exe();
  for (const auto& kind : kinds) {
    for (int64_t T : lengths) {
      if (kind == "dense" && T > dense_max) continue;
      std::ostringstream cmd;
      cmd << "'" << exe << "' bench attention --one-kind " << kind << " --one-length " << T << " --heads " << s.heads
          << " --head-dim " << s.head_dim << " --batch " << s.batch << " --block " << s.block << " --key-block " << s.key_block << " --repeat "
          << s.repeat << " --threads " << s.threads << " --dtype " << s.dtype << " --density " << s.density << (s.causal ? "" : " --non-causal");
      for (const auto& set : s.sets) cmd << " --set '" << set << "'";
      int rc = 0;
      const auto j = run_child(cmd.str(), rc);
      if (rc != 0 || !j.is_object()) {
        std::fprintf(stderr, "bench: %s at T=%lld failed (exit %d)%s\n", kind.c_str(), static_cast<long long>(T), rc,
                     oom_hint(rc));
        continue;
      }
      if (json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        const std::string density = j.contains("density") ? std::to_string(j["density"].get<double>()).substr(0, 5) : "-";
        std::printf("%-13s %7lld %3lld %4lld %6s %10.1f %12.1f %7.0f MB %8.1f %6.0f%% %8s\n", kind.c_str(),
                    static_cast<long long>(T), static_cast<long long>(s.heads), static_cast<long long>(s.head_dim),
                    s.causal ? "yes" : "no", j["fwd_ms"].get<double>(), j["fwd_bwd_ms"].get<double>(),
                    j["peak_rss_mb"].get<double>(), j["gflops"].get<double>(), 100.0 * j["gflops"].get<double>() / gemm,
                    density.c_str());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace longnet::tools
