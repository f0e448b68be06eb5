// longnet bench core: the tile core under every kernel, ours (attention/blockwise) against
// LibTorch's flash attention for the CPU, on the tile shapes the kernels run, forward and
// forward+backward, float32. Its table is what attention/blockwise.cpp's choice of core rests on.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "attention/blockwise.h"
#include "common/errors.h"
#include "tools/cli.h"
#include "tools/bench_util.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t tq, tk;
  bool causal;
  const char* used_by;
};

// The (query rows, key rows) that one (batch, head) unit hands the core: dense's and a dilated
// segment's square causal tiles, block_sparse's row of blocks, a ring packet of a share.
const Shape kShapes[] = {
    {256, 256, true, "block_sparse diagonal block / dilated 2048:8"},
    {256, 1024, false, "block_sparse row of 4 past blocks"},
    {512, 512, true, "dilated segment 4096:8"},
    {1024, 1024, true, "dense T=1024 / dilated 2048:2"},
    {2048, 2048, true, "dense T=2048 / dilated 2048:1, 8192:4"},
    {4096, 4096, true, "dense T=4096"},
    {2048, 128, false, "ring packet (share 2048 rows, 128-row packet)"},
    {4096, 256, false, "ring packet (share 4096 rows, 256-row packet)"},
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <typename F>
double best_of(int repeat, F f) {
  double best = 1e30;
  for (int i = 0; i < repeat + 1; ++i) {  // the first run warms caches and allocators
    const auto t0 = Clock::now();
    f();
    if (i > 0) best = std::min(best, seconds_since(t0));
  }
  return best;
}

nlohmann::json measure(const Shape& s, int64_t units, int64_t D, int repeat) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  // q is pre-scaled by 1/sqrt(D), as the kernels hand it to the core.
  auto q = torch::randn({1, units, s.tq, D}) / std::sqrt(static_cast<double>(D));
  auto k = torch::randn({1, units, s.tk, D}), v = torch::randn({1, units, s.tk, D});
  auto dout = torch::randn({1, units, s.tq, D});
  // The same calls the kernels make, once with the tile loop and once with the core's choice
  // (flash wherever its masks fit, which they do for every shape here).
  attention::TileSpec loop;
  loop.causal = s.causal;
  loop.q_block = 256;
  loop.k_block = 1024;
  loop.core = attention::TileCore::kLoop;
  attention::TileSpec flash = loop;
  flash.core = attention::TileCore::kAuto;

  torch::Tensor out, lse, fout, flse;
  auto backward = [&](const attention::TileSpec& spec, const torch::Tensor& o, const torch::Tensor& l) {
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    attention::tiled_backward(q, k, v, o, l, dout, {}, spec, dq, dk, dv);
  };
  auto tiled_fwd = [&] { attention::tiled_forward(q, k, v, loop, out, lse); };
  auto flash_fwd = [&] { attention::tiled_forward(q, k, v, flash, fout, flse); };
  auto tiled_bwd = [&] { backward(loop, out, lse); };
  auto flash_bwd = [&] { backward(flash, fout, flse); };
  const double tf = best_of(repeat, tiled_fwd), ff = best_of(repeat, flash_fwd);
  const double tb = best_of(repeat, tiled_bwd), fb = best_of(repeat, flash_bwd);
  nlohmann::json r;
  r["tq"] = s.tq;
  r["tk"] = s.tk;
  r["causal"] = s.causal;
  r["used_by"] = s.used_by;
  r["tiled_fwd_ms"] = tf * 1e3;
  r["flash_fwd_ms"] = ff * 1e3;
  r["tiled_fwdbwd_ms"] = (tf + tb) * 1e3;
  r["flash_fwdbwd_ms"] = (ff + fb) * 1e3;
  // The two cores must agree, or the timing compares different things.
  r["max_out_diff"] = (out - fout).abs().max().item<double>();
  r["max_lse_diff"] = (lse - flse).abs().max().item<double>();
  return r;
}

}  // namespace

int bench_core(int argc, char** argv) {
  Command cmd("bench core", "The tile core: ours against LibTorch's CPU flash attention.",
              R"(The tile core under every attention kernel: attention/blockwise's tiled loop against
LibTorch's flash attention for the CPU (at::_scaled_dot_product_flash_attention_for_cpu), on
the tile shapes the kernels run, forward and forward+backward, float32, best of --repeat runs.)");
  int64_t units = 8, D = 64;
  int repeat = 3, threads_wanted = 0;
  bool json = false;
  cmd.app().add_option("--units", units, "(batch, head) units per call")->check(kPositive)->capture_default_str();
  cmd.app().add_option("--head-dim", D, "head_dim D")->check(kPositive)->capture_default_str();
  cmd.app().add_option("--repeat", repeat, "timed rounds, the best kept")->check(kPositive)->capture_default_str();
  cmd.app().add_option("--threads", threads_wanted, "intra-op threads (0: all cores)")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd.app().add_flag("--json", json, "one JSON array instead of the table");
  if (!cmd.parse(argc, argv)) return 0;
  train::TrainOptions t;
  t.threads = threads_wanted;
  const int threads = train::configure_runtime(t);
  nlohmann::json rows = nlohmann::json::array();
  if (!json)
    std::printf("units %lld, head_dim %lld, float32, %d threads; ms, best of %d\n"
                "%6s %6s %6s | %9s %9s %6s | %9s %9s %6s | %s\n",
                static_cast<long long>(units), static_cast<long long>(D), threads, repeat, "Tq", "Tk", "causal",
                "tiled fwd", "flash fwd", "ratio", "tiled f+b", "flash f+b", "ratio", "used by");
  for (const auto& s : kShapes) {
    auto r = measure(s, units, D, repeat);
    if (r["max_out_diff"].get<double>() > 1e-4)
      throw Error("bench core: the two cores disagree at " + std::to_string(s.tq) + "x" + std::to_string(s.tk) +
                  " (max |out diff| " + std::to_string(r["max_out_diff"].get<double>()) + ")");
    if (!json) {
      const double tf = r["tiled_fwd_ms"], ff = r["flash_fwd_ms"], tb = r["tiled_fwdbwd_ms"], fb = r["flash_fwdbwd_ms"];
      std::printf("%6lld %6lld %6s | %9.2f %9.2f %5.2fx | %9.2f %9.2f %5.2fx | %s\n", static_cast<long long>(s.tq),
                  static_cast<long long>(s.tk), s.causal ? "yes" : "no", tf, ff, ff / tf, tb, fb, fb / tb, s.used_by);
      std::fflush(stdout);
    }
    rows.push_back(r);
  }
  if (json) std::printf("%s\n", rows.dump().c_str());
  return 0;
}

}  // namespace longnet::tools
