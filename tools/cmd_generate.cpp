#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/generate.h"
#include "train/pipeline.h"
#include "train/runtime.h"

namespace longnet::tools {

int cmd_generate(int argc, char** argv) {
  Command cmd("generate", "Generate text from a checkpoint, streamed to stdout.",
              "Prints the prompt, then each new token's text as it is chosen; after the last sample, one\n"
              "line on stderr with the tokens per second. A sample ends at --max-new-tokens or at the\n"
              "end-of-document token. Temperature 0 is greedy; the same --seed gives the same text. Each\n"
              "token is one step of a KV cache that holds the keys the attention kind reads; when the\n"
              "context (model.max_seq_len) is full, it restarts from the last half of it.");
  cmd.add_config();
  cmd.add_sets();
  std::string checkpoint, prompt, prompt_file;
  train::GenerateOptions g;
  int64_t samples = 1;
  cmd.app().add_option("--checkpoint", checkpoint, "a step_* folder (default: the latest of train.out_dir)");
  auto* p_opt = cmd.app().add_option("--prompt", prompt, "the text to continue");
  auto* f_opt = cmd.app().add_option("--prompt-file", prompt_file, "a file whose text to continue");
  p_opt->excludes(f_opt);
  cmd.app().add_option("--max-new-tokens", g.max_new_tokens, "tokens to generate per sample")->check(kPositive)->capture_default_str();
  cmd.app().add_option("--temperature", g.sampling.temperature, "0: greedy")->check(kNonNegative)->capture_default_str();
  cmd.app().add_option("--top-k", g.sampling.top_k, "keep the k most likely tokens (0: all)")->check(kNonNegative)->capture_default_str();
  cmd.app().add_option("--top-p", g.sampling.top_p, "keep the most likely tokens whose probabilities sum to p")->check(kFraction)->capture_default_str();
  cmd.app().add_option("--seed", g.seed, "the draws' seed")->capture_default_str();
  cmd.app().add_option("--num-samples", samples, "samples from the same prompt, one after another")->check(kPositive)->capture_default_str();
  bool no_cache = false;
  cmd.app().add_flag("--no-kv-cache", no_cache, "a full forward pass per token instead of the KV cache (same text, slower)");
  cmd.app().add_flag("--truncate", g.truncate, "a prompt longer than the model's context: keep its last tokens (else an error)");
  if (!cmd.parse(argc, argv)) return 0;
  g.kv_cache = !no_cache;
  if (p_opt->count() == 0 && f_opt->count() == 0)
    throw ConfigError("longnet generate: expected --prompt TEXT or --prompt-file F");
  if (!prompt_file.empty()) {
    if (!std::filesystem::is_regular_file(prompt_file))
      throw ConfigError("longnet generate: --prompt-file '" + prompt_file + "': no such file");
    prompt = data::read_file(prompt_file);
  }

  auto p = train::prepare(cmd.config(), cmd.sets(), train::Stage::kTokenizer, false);
  const std::string ckpt = train::resolve_checkpoint(p.config, checkpoint, "longnet generate");
  const auto saved = train::saved_config(ckpt, cmd.sets());
  train::configure_runtime(p.config.train);
  model::LanguageModel model(train::model_options(saved.model, *p.tokenizer));
  model->to(train::training_device(p.config.train, 0));
  train::load_checkpoint(ckpt, model, nullptr);
  model->set_precision(p.config.train.precision);
  const auto& tok = *p.tokenizer;
  const auto ids = train::fit_prompt(tok.encode(prompt), saved.model.max_seq_len, g.truncate);
  g.stop_token = tok.eos_id();

  at::Generator generator = at::detail::createCPUGenerator(g.seed);
  int64_t produced = 0;
  train::GenerateStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < samples; ++s) {
    if (s > 0) std::fputs("\n----------\n", stdout);
    std::fputs(tok.decode(ids).c_str(), stdout);
    std::fflush(stdout);
    // Each token's text is the growth of the decoded continuation; a piece that ends inside a
    // UTF-8 character (byte fallback) waits until the character is whole.
    std::vector<int> generated;
    std::string printed;
    const auto out = train::generate(model, ids, g, generator, [&](int id) {
      generated.push_back(id);
      const std::string text = tok.decode(generated);
      const bool whole = text.size() < 3 || text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") != 0;
      if (whole && text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }, &stats);
    const std::string text = tok.decode(out);
    if (text.compare(0, printed.size(), printed) == 0) std::fputs(text.c_str() + printed.size(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    produced += static_cast<int64_t>(out.size());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string cache = g.kv_cache ? "KV cache at most " + std::to_string(stats.cache_bytes / 1024) + " KiB"
                                       : "no KV cache";
  std::fprintf(stderr, "generated %lld tokens in %.2f s: %.1f tokens/s (%s, %s)\n", static_cast<long long>(produced),
               seconds, static_cast<double>(produced) / seconds, cache.c_str(), ckpt.c_str());
  return 0;
}

}  // namespace longnet::tools
