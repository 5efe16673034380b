#include "train_cmd.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "slm/core/mapped_file.h"
#include "slm/train/checkpoint.h"
#include "slm/train/data.h"

TrainCommand::TrainCommand(CLI::App& app) {
  sub_ = app.add_subcommand("train", "Train a Llama model from scratch on text files");
  CLI::App* s = sub_;
  s->option_defaults()->always_capture_default();  // --help shows each default
  o_.schedule.total = 2000;  // nanoGPT's small CPU recipe, as bench/train_shakespeare.sh runs it
  o_.schedule.warmup = 100;
  s->add_option("--data", o_.data, "Text files (UTF-8), concatenated in order")->required();
  s->add_option("--out", o_.out_dir, "Output folder: checkpoint, loss.csv, loss.svg, model.gguf")->required();
  s->add_option("--tokenizer", o_.tokenizer, "byte (vocab 256), a tokenizer.json, or a .gguf model's tokenizer");
  s->add_option("--config", config_path_, "Model shape as JSON: {\"dim\", \"layers\", \"heads\", \"kv_heads\", \"ffn\", \"ctx\"}");
  s->add_option("--dim", dim_, "Hidden size")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  s->add_option("--layers", layers_, "Blocks")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  s->add_option("--heads", heads_, "Attention heads")->check(CLI::Range(int64_t{1}, int64_t{1024}));
  s->add_option("--kv-heads", kv_heads_, "Key/value heads (default: heads)")->check(CLI::Range(int64_t{0}, int64_t{1024}));
  s->add_option("--ffn", ffn_, "Feed-forward size (default: 8/3 dim rounded up to 32)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  s->add_option("--ctx", ctx_, "Model context (default: the sequence length)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  s->add_option("--seq", o_.seq, "Tokens per training sequence")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  s->add_option("--batch", o_.batch, "Sequences per micro-batch")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  s->add_option("--accum", o_.accum, "Micro-batches per optimizer step")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  s->add_option("--steps", o_.schedule.total, "Optimizer steps")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  s->add_option("--lr", o_.schedule.lr, "Peak learning rate");
  s->add_option("--min-lr", o_.schedule.min_lr, "Final learning rate");
  s->add_option("--warmup", o_.schedule.warmup, "Linear warmup steps");
  s->add_option("--schedule", schedule_, "cosine, wsd (warmup-stable-decay) or constant");
  s->add_option("--decay-frac", o_.schedule.decay_frac, "wsd: fraction of the steps spent decaying");
  s->add_option("--weight-decay", o_.adam.weight_decay, "AdamW decoupled weight decay (matrices only)");
  s->add_option("--beta1", o_.adam.beta1, "AdamW beta1");
  s->add_option("--beta2", o_.adam.beta2, "AdamW beta2");
  s->add_option("--clip", o_.clip, "Clip the global gradient norm (0: off)");
  s->add_option("--val-frac", o_.val_frac, "Share of the corpus (its end) held out for validation");
  s->add_option("--eval-every", o_.eval_every, "Validation loss every K steps");
  s->add_option("--eval-batches", o_.eval_batches, "Batches per validation estimate");
  s->add_option("--ckpt-every", o_.ckpt_every, "Checkpoint every K steps (and at the end)");
  s->add_option("--log-every", o_.log_every, "A loss.csv row every K steps");
  s->add_option("--stop-at", o_.stop_at, "Stop after this step with a checkpoint (continue with --resume)");
  s->add_option("--seed", o_.seed, "Seed of the initial weights and the data order");
  s->add_option("-t,--threads", o_.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  s->add_flag("--bf16", o_.bf16, "bf16 mixed precision (fp32 master weights)");
  s->add_flag("--recompute", o_.recompute, "Recompute activations in the backward pass (less memory)");
  s->add_flag("--resume", o_.resume, "Continue from OUT/checkpoint.safetensors");
}

int TrainCommand::run() {
  auto fail = [](const slm::Status& st) {
    std::fprintf(stderr, "slm: error: %s\n", st.to_string().c_str());
    return 1;
  };
  nlohmann::json cfg = {{"vocab", 0}, {"dim", dim_}, {"layers", layers_}, {"heads", heads_},
                        {"kv_heads", kv_heads_ > 0 ? kv_heads_ : heads_},
                        {"ffn", ffn_ > 0 ? ffn_ : (8 * dim_ / 3 + 31) / 32 * 32}, {"ctx", ctx_ > 0 ? ctx_ : o_.seq}};
  if (!config_path_.empty()) {
    auto text = slm::read_file(config_path_);
    if (!text.ok()) return fail(text.status());
    const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return fail(slm::Status::InvalidArgument(fmt::format("--config {}: not a JSON object", config_path_)));
    for (const auto& [k, v] : j.items()) cfg[k] = v;
    if (!j.contains("kv_heads") && j.contains("heads")) cfg["kv_heads"] = j["heads"];
  }
  auto tok = slm::train::TrainTokenizer::open(o_.tokenizer);
  if (!tok.ok()) return fail(tok.status());
  if (cfg["vocab"] == 0) cfg["vocab"] = tok->n_vocab();
  auto mc = slm::train::config_from_json(cfg);
  if (!mc.ok()) return fail(mc.status());
  o_.model = *mc;
  auto kind = slm::train::parse_schedule(schedule_);
  if (!kind.ok()) return fail(kind.status());
  o_.schedule.kind = *kind;
  auto r = slm::train::train(o_);
  if (!r.ok()) return fail(r.status());
  std::fprintf(stderr, "wrote %s/checkpoint.safetensors, loss.csv, loss.svg and %s\n", o_.out_dir.c_str(),
               r->gguf_path.c_str());
  std::printf("step=%lld train_loss=%.4f val_loss=%.4f tokens_per_s=%.0f\n", static_cast<long long>(r->step),
              r->train_loss, r->val_loss, r->tokens_per_s);
  return 0;
}
