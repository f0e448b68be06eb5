#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "attention/sequence_parallel.h"
#include "common/atomic_file.h"
#include "common/errors.h"
#include "data/passkey.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/pipeline.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/evaluator.h"
#include "train/tensorboard.h"
#include "train/runtime.h"
#include "train/trainer.h"

namespace longnet::tools {

namespace {

// --lengths: one row per length; lengths past the trained data.seq_len are extrapolation.
void report_lengths(const std::vector<train::LengthResult>& results, const std::string& ckpt, const train::RunConfig& saved,
                    int64_t scored, bool json) {
  const int64_t trained = saved.data.seq_len;
  const auto& pos = model::name_of(saved.model.pos);
  if (json) {
    nlohmann::json out = {{"checkpoint", ckpt}, {"trained_seq_len", trained}, {"pos", pos}, {"score_last", scored},
                          {"scored_tokens", results.empty() ? 0 : results.front().tokens}};
    out["lengths"] = nlohmann::json::array();
    for (const auto& r : results)
      out["lengths"].push_back({{"length", r.length}, {"loss", r.loss}, {"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte},
                                {"extrapolated", r.length > trained}, {"seconds", r.seconds}});
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("checkpoint %s (trained at data.seq_len %lld, model.pos %s)\n", ckpt.c_str(), static_cast<long long>(trained),
              pos.c_str());
  std::printf("every length scores the same %lld tokens: the last %lld targets of each window\n\n",
              static_cast<long long>(results.empty() ? 0 : results.front().tokens), static_cast<long long>(scored));
  std::printf("%10s %10s %12s %10s %9s\n", "length", "loss", "perplexity", "bits/byte", "seconds");
  for (const auto& r : results)
    std::printf("%10lld %10.4f %12.3f %10.4f %9.1f%s\n", static_cast<long long>(r.length), r.loss, r.ppl, r.bits_per_byte,
                r.seconds, r.length > trained ? "  (extrapolated)" : "");
}

// <out_dir>/passkey-<checkpoint folder>.svg
std::string default_svg(const std::string& out_dir, const std::string& ckpt) {
  return (std::filesystem::path(out_dir) / ("passkey-" + std::filesystem::path(ckpt).lexically_normal().filename().string() + ".svg"))
      .string();
}

// The heatmap: lengths as rows, depths as columns, each cell coloured from red (0%) to green
// (100%) with its accuracy written in it.
std::string passkey_svg(const std::vector<train::PasskeyCell>& cells, const std::vector<int64_t>& lengths,
                        const std::vector<double>& depths, const std::string& title) {
  const int cw = 64, ch = 32, left = 80, top = 48;
  // The title (a checkpoint's path) starts at the left edge; the image is wide enough for it at
  // 14 px sans-serif, whose characters are narrower than 8 px.
  const int width = std::max(left + cw * static_cast<int>(depths.size()) + 16, 16 + 8 * static_cast<int>(title.size()));
  const int height = top + ch * static_cast<int>(lengths.size()) + 40;
  std::string escaped;  // a path may hold the characters XML reserves
  for (const char c : title) escaped += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<text x=\"8\" y=\"18\" font-size=\"14\">" << escaped << "</text>\n";
  for (size_t di = 0; di < depths.size(); ++di)
    s << "<text x=\"" << left + cw * static_cast<int>(di) + cw / 2 << "\" y=\"" << top - 8 << "\" text-anchor=\"middle\">"
      << depths[di] << "</text>\n";
  s << "<text x=\"" << left + cw * static_cast<int>(depths.size()) / 2 << "\" y=\"" << height - 12
    << "\" text-anchor=\"middle\">depth of the key in the filler</text>\n";
  s << "<text x=\"8\" y=\"" << top - 8 << "\">length</text>\n";
  for (size_t li = 0; li < lengths.size(); ++li) {
    const int y = top + ch * static_cast<int>(li);
    s << "<text x=\"" << left - 8 << "\" y=\"" << y + ch / 2 + 4 << "\" text-anchor=\"end\">" << lengths[li] << "</text>\n";
    for (size_t di = 0; di < depths.size(); ++di) {
      const auto& c = cells[li * depths.size() + di];
      const double a = c.accuracy();
      const int red = static_cast<int>(std::lround(215 * (1 - a) + 26 * a)), green = static_cast<int>(std::lround(48 * (1 - a) + 152 * a));
      const int x = left + cw * static_cast<int>(di);
      s << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << cw << "\" height=\"" << ch << "\" fill=\"rgb(" << red << ","
        << green << ",80)\" stroke=\"white\"/>\n";
      s << "<text x=\"" << x + cw / 2 << "\" y=\"" << y + ch / 2 + 4 << "\" text-anchor=\"middle\" fill=\"white\">"
        << std::lround(100 * a) << "%</text>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

int report_passkey(model::LanguageModel& model, const data::Tokenizer& tokenizer, const std::vector<int64_t>& lengths,
                   const std::vector<double>& depths, int64_t trials, int64_t seed, int64_t batch_size,
                   const std::string& ckpt, const std::string& svg, bool json) {
  const data::PasskeyBuilder builder(tokenizer);
  for (const int64_t L : lengths)
    if (L + 1 < builder.min_length())
      throw ConfigError("longnet eval: --lengths " + std::to_string(L) + " cannot hold a passkey document: at least " +
                        std::to_string(builder.min_length() - 1) + " tokens of tokenizer '" + tokenizer.path() + "'");
  const auto cells = train::evaluate_passkey(model, builder, lengths, depths, trials, static_cast<uint64_t>(seed), batch_size);
  data::write_file_atomic(svg, passkey_svg(cells, lengths, depths,
                                           "passkey accuracy, " + std::to_string(trials) + " trials per cell: " + ckpt));
  if (json) {
    nlohmann::json out = {{"checkpoint", ckpt}, {"trials", trials}, {"seed", seed}, {"svg", svg}};
    out["cells"] = nlohmann::json::array();
    for (const auto& c : cells)
      out["cells"].push_back({{"length", c.length}, {"depth", c.depth}, {"accuracy", c.accuracy()}, {"passed", c.passed},
                              {"trials", c.trials}, {"token_accuracy", c.token_accuracy()},
                              {"first_token_accuracy", c.first_token_accuracy()}});
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  // One table per measure, lengths as rows and depths as columns.
  auto table = [&](const char* title, double (train::PasskeyCell::*measure)() const) {
    std::printf("%s\n%10s", title, "length");
    for (double d : depths) std::printf(" %7s", ("d=" + std::to_string(d).substr(0, 4)).c_str());
    std::printf("\n");
    for (size_t li = 0; li < lengths.size(); ++li) {
      std::printf("%10lld", static_cast<long long>(lengths[li]));
      for (size_t di = 0; di < depths.size(); ++di)
        std::printf(" %6.0f%%", 100 * (cells[li * depths.size() + di].*measure)());
      std::printf("\n");
    }
  };
  std::printf("checkpoint %s: %lld trials per cell (seed %lld); heatmap %s\n\n", ckpt.c_str(),
              static_cast<long long>(trials), static_cast<long long>(seed), svg.c_str());
  table("passkey accuracy (whole keys)", &train::PasskeyCell::accuracy);
  // A model that is learning to copy gets some of the key's tokens right before whole keys.
  std::printf("\n");
  table("answer tokens right", &train::PasskeyCell::token_accuracy);
  // The first answer token needs the key found; the rest, the key copied in order.
  std::printf("\n");
  table("first answer token right (the key found)", &train::PasskeyCell::first_token_accuracy);
  return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Command cmd("eval", "Evaluate a checkpoint of CONFIG on the whole validation split.",
              R"(In windows of data.seq_len tokens: loss (nats/token), perplexity, bits per byte of the
validation text, tokens and tokens/s. Evaluate at another context length with
--set data.seq_len=T (up to the model's max_seq_len).)");
  cmd.add_config();
  cmd.add_sets();
  std::string checkpoint;
  int64_t bucket = 0;
  bool json = false, by_position = false;
  cmd.app().add_option("--checkpoint", checkpoint, "the checkpoint folder (default: <train.out_dir>/checkpoints/latest)");
  cmd.app().add_flag("--json", json, "print one JSON object on stdout");
  auto* by = cmd.app().add_flag("--by-position", by_position,
                                "also the loss by position in the window, over buckets 0-N, N-2N, 2N-4N, ... up to "
                                "data.seq_len: a model that uses its context predicts later tokens better");
  cmd.app()
      .add_option("--bucket", bucket, "the first bucket's width (default: min(1024, data.seq_len / 8))")
      ->check(kPositive)
      ->needs(by);
  std::vector<int64_t> lengths;
  int64_t score_last = 0, trials = 20, seed = 0;
  bool passkey = false;
  std::vector<double> depths = {0, 0.25, 0.5, 0.75, 1};
  std::string svg;
  auto* lengths_opt = add_list(cmd.app(), "--lengths", lengths,
                               "context lengths: the loss of the same validation tokens seen with each much context "
                               "(with --passkey: the passkey documents' lengths; default data.seq_len)");
  lengths_opt->check(kPositive);
  cmd.app()
      .add_option("--score-last", score_last,
                  "with --lengths: the targets scored at the end of every window (default: half the shortest length)")
      ->check(kPositive)
      ->needs(lengths_opt);
  auto* passkey_opt = cmd.app().add_flag("--passkey", passkey,
                                         "passkey retrieval: accuracy per (length, depth) as a table, --json, and an "
                                         "SVG heatmap (--svg)");
  cmd.app()
      .add_option("--depths", depths, "with --passkey: where the key sits in the filler, fractions in [0, 1]")
      ->delimiter(',')
      ->type_name("F,F,...")
      ->allow_extra_args(false)
      ->check(CLI::Range(0.0, 1.0).description(""))
      ->needs(passkey_opt);
  cmd.app().add_option("--trials", trials, "with --passkey: documents per (length, depth)")->check(kPositive)->needs(passkey_opt);
  cmd.app().add_option("--seed", seed, "with --passkey: the keys' seed (the same seed gives the same table)")->needs(passkey_opt);
  cmd.app()
      .add_option("--svg", svg, "with --passkey: the heatmap's path (default: <train.out_dir>/passkey-<checkpoint>.svg)")
      ->needs(passkey_opt);
  passkey_opt->excludes(by);
  if (!cmd.parse(argc, argv)) return 0;
  if (!lengths.empty() && !passkey && by_position)
    throw ConfigError("longnet eval: --lengths and --by-position are separate reports; ask for one at a time");
  // Under launch / torchrun only --lengths runs: every window shared by all ranks (sequence
  // parallelism over the world), so that lengths one process cannot hold can be evaluated.
  const auto env = train::distributed_env();
  train::ProcessGroups groups;
  if (env.active()) {
    if (lengths.empty() || passkey)
      throw ConfigError("longnet eval: under launch only --lengths runs (each window shared by all ranks); run the "
                        "whole-split, --by-position and --passkey reports in one process");
    const auto config = train::load_config(cmd.config(), cmd.sets());
    train::training_device(config.train, env.local_rank);
    if (env.rank != 0) spdlog::set_level(spdlog::level::warn);
    groups = train::init_process_groups(env, std::chrono::seconds(config.distributed.timeout_s), env.world_size,
                                        config.train.device == "cuda");
  }
  const bool lead = groups.rank() == 0;
  // Rank 0 builds any missing cache first; the others then find it.
  std::optional<train::Prepared> prepared;
  if (lead) prepared.emplace(train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards, false));
  if (groups.world) groups.world->barrier()->wait();
  if (!lead) prepared.emplace(train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards, false));
  auto& p = *prepared;
  const std::string ckpt = train::resolve_checkpoint(p.config, checkpoint, "longnet eval");
  // The model is rebuilt from the checkpoint's own resolved config, attention.* from --set; data
  // comes from CONFIG.
  const auto saved = train::saved_config(ckpt, cmd.sets());
  if (saved.model.vocab_size != p.config.model.vocab_size)
    throw CheckpointError(ckpt + ": model vocabulary " + std::to_string(saved.model.vocab_size) + " differs from the " +
                          std::to_string(p.config.model.vocab_size) + " pieces of tokenizer '" + p.config.tokenizer.path + "'");
  if (passkey && lengths.empty()) lengths = {p.config.data.seq_len};
  const int64_t longest = lengths.empty() ? p.config.data.seq_len : *std::max_element(lengths.begin(), lengths.end());
  auto model_options = train::model_options(saved.model, *p.tokenizer);
  if (longest > model_options.max_seq_len) {
    if (lengths.empty())
      throw ConfigError("longnet eval: data.seq_len " + std::to_string(p.config.data.seq_len) + " exceeds the model.max_seq_len " +
                        std::to_string(saved.model.max_seq_len) + " of " + ckpt + "; evaluate longer contexts with --lengths");
    // Past the trained length: the position tables are not parameters, and are rebuilt longer.
    model_options.max_seq_len = longest;
    for (const auto& problem : model::check_model_options(model_options))
      throw ConfigError("longnet eval: --lengths up to " + std::to_string(longest) + ": " + problem.key + ": expected " +
                        problem.expected + " (" + ckpt + ")");
  }
  train::configure_runtime(p.config.train);
  model::LanguageModel model(model_options);
  model->to(train::training_device(p.config.train, env.local_rank));
  const int64_t step = train::load_checkpoint(ckpt, model, nullptr).step;
  // The results beside the run's curves in TensorBoard, at the checkpoint's step.
  const auto log_events = [&](const train::Scalars& scalars) {
    if (lead && p.config.train.tensorboard)
      train::EventFile(p.config.train.out_dir + "/tensorboard", "longnet-eval").write(train::unix_time(), step, scalars);
  };
  model->set_precision(p.config.train.precision);  // CONFIG's: --set train.precision=float32 scores in full precision
  attention::SequenceParallelPtr sp;
  if (groups.world && groups.size() > 1) {
    auto with_ranks = saved;
    with_ranks.distributed.sequence_parallel = groups.size();
    train::check_sequence_ranks(with_ranks, groups.size());
    sp = std::make_shared<attention::SequenceParallel>(
        groups.sequence ? groups.sequence : groups.world, attention::SequenceParallel::zigzag_split(saved.model.attention));
    model::enable_sequence_parallel(*model, sp);
  }
  if (passkey) return report_passkey(model, *p.tokenizer, lengths, depths, trials, seed, p.config.data.batch_size, ckpt,
                                     svg.empty() ? default_svg(p.config.train.out_dir, ckpt) : svg, json);
  if (!lengths.empty()) {
    const int64_t shortest = *std::min_element(lengths.begin(), lengths.end());
    if (score_last == 0) score_last = std::max<int64_t>(1, shortest / 2);
    if (score_last > shortest)
      throw ConfigError("longnet eval: --score-last " + std::to_string(score_last) + " exceeds the shortest of --lengths, " +
                        std::to_string(shortest));
    if (p.shards->val.size() - 1 < longest)
      throw ConfigError("longnet eval: --lengths up to " + std::to_string(longest) + " needs a validation split of more tokens than its " +
                        std::to_string(p.shards->val.size()) + " (" + p.shards->val.path() + ")");
    const double bytes_per_token = static_cast<double>(p.shards->val_bytes) / static_cast<double>(p.shards->val.size());
    const auto results = train::evaluate_lengths(model, p.shards->val, lengths, score_last, p.config.data.batch_size,
                                                 bytes_per_token, sp);
    if (lead) report_lengths(results, ckpt, saved, score_last, json);
    train::Scalars scalars;
    for (const auto& r : results) scalars.emplace_back("eval/loss_at_" + std::to_string(r.length), r.loss);
    log_events(scalars);
    return 0;
  }
  std::vector<int64_t> edges;
  if (by_position) edges = train::position_edges(p.config.data.seq_len, bucket);
  const auto r = train::evaluate_split(model, p.shards->val, p.config.data.seq_len, p.config.data.batch_size,
                                       p.shards->val_bytes, edges);
  log_events({{"eval/loss", r.loss}, {"eval/ppl", r.ppl}, {"eval/bits_per_byte", r.bits_per_byte}, {"eval/tokens_per_s", r.tokens_per_s}});
  if (json) {
    const nlohmann::json j = {{"checkpoint", ckpt}, {"loss", r.loss}, {"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte},
                              {"tokens", r.tokens}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds},
                              {"seq_len", p.config.data.seq_len},
                              {"precision", model::name_of(p.config.train.precision)}};
    nlohmann::json out = j;
    if (!edges.empty()) {
      out["by_position"] = nlohmann::json::array();
      for (const auto& b : r.by_position)
        out["by_position"].push_back({{"begin", b.begin}, {"end", b.end}, {"loss", b.loss}, {"tokens", b.tokens}});
    }
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("checkpoint     %s\nval loss       %.4f nats/token\nperplexity     %.3f\nbits per byte  %.4f\n"
                "tokens         %lld\ntokens/s       %.0f\n",
                ckpt.c_str(), r.loss, r.ppl, r.bits_per_byte, static_cast<long long>(r.tokens), r.tokens_per_s);
    if (!edges.empty()) {
      std::printf("\n%-17s %10s %12s %10s\n", "positions", "loss", "perplexity", "tokens");
      for (const auto& b : r.by_position) {
        const std::string range = std::to_string(b.begin) + "-" + std::to_string(b.end);
        std::printf("%-17s %10.4f %12.3f %10lld\n", range.c_str(), b.loss, std::exp(b.loss), static_cast<long long>(b.tokens));
      }
    }
  }
  return 0;
}

}  // namespace longnet::tools
