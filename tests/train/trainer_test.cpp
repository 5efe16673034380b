// The trainer end to end on small corpora written by the tests: training
// lowers the loss, the exported GGUF runs in the inference Model with the
// trainer's logits, resume is bit-identical, a SIGKILL during a checkpoint
// write leaves the previous one whole, and bad input gets a clear error.
#include "slm/train/trainer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "slm/core/mapped_file.h"
#include "slm/io/safetensors.h"
#include "slm/model/kv_cache.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "slm/tokenizer/bpe_trainer.h"
#include "slm/tokenizer/load.h"
#include "slm/train/checkpoint.h"
#include "slm/train/data.h"
#include "slm/train/default_model.h"
#include "slm/train/export.h"
#include "slm/train/loss_curve.h"
#include "slm/train/transformer.h"
#include "test_util.h"

namespace slm::train {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("slm_train_" + name + "_" + std::to_string(getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// A small corpus with structure to learn: counting rhymes.
std::string corpus_text() {
  std::string s;
  const char* words[] = {"one", "two", "three", "four", "five", "six", "seven", "eight"};
  for (int i = 0; i < 400; ++i) s += std::string(words[i % 8]) + " little " + words[(i * 3) % 8] + " birds.\n";
  return s;
}

model::ModelConfig tiny_config(int64_t vocab = 256) {
  model::ModelConfig c;
  c.n_vocab = vocab;
  c.n_embd = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 8;
  c.n_rot = 8;
  c.n_ff = 64;
  c.n_ctx_train = 32;
  return c;
}

TrainOptions tiny_options(const std::string& dir, const std::string& data) {
  TrainOptions o;
  o.data = {data};
  o.out_dir = dir;
  o.model = tiny_config();
  o.batch = 4;
  o.seq = 32;
  o.schedule.total = 40;
  o.schedule.warmup = 5;
  o.schedule.lr = 3e-3;
  o.schedule.min_lr = 3e-4;
  o.eval_every = 20;
  o.eval_batches = 4;
  o.ckpt_every = 10;
  o.threads = 2;
  return o;
}

std::vector<float> weights_of(const std::string& ckpt) {
  auto f = io::SafetensorsFile::open(ckpt);
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  std::vector<float> all;
  for (const auto& t : (*f)->tensors()) {
    auto v = (*f)->tensor(t.name);
    const float* p = static_cast<const float*>(v->data);
    all.insert(all.end(), p, p + v->numel());
  }
  return all;
}

TEST(Trainer, LossFallsAndTheExportRunsInTheInferenceModel) {
  const std::string dir = temp_dir("export");
  const std::string data = write_text(dir + "/corpus.txt", corpus_text());
  auto r = train(tiny_options(dir, data));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_LT(r->val_loss, 3.5) << "a 40-step run on a repetitive corpus should get well below ln(256) = 5.5";
  EXPECT_TRUE(file_exists(dir + "/loss.csv"));
  EXPECT_TRUE(file_exists(dir + "/loss.svg"));

  // Same weights through the inference path: logits at every position agree.
  auto src = model::ModelSource::open(r->gguf_path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  auto m = Transformer<float>::create(tiny_config(), 1);
  ASSERT_TRUE(m.ok());
  AdamW adam(m->params(), {});
  ASSERT_TRUE(load_checkpoint(dir + "/checkpoint.safetensors", *m, adam).ok());
  auto tok = TrainTokenizer::open("byte");
  std::vector<int32_t> ids;
  ASSERT_TRUE(tok->encode("three little birds.\nfour lit", &ids).ok());
  Tape<float> tape;
  Var<float> train_logits = m->logits(tape, ids, 1, static_cast<int64_t>(ids.size()));

  model::Model inf((*src)->config(), (*src)->weights());
  model::KvCache kv((*src)->config(), 0, (*src)->config().n_layer, 1, 32);
  std::vector<model::BatchToken> batch;
  for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, true});
  std::vector<float> logits;
  ASSERT_TRUE(inf.forward(batch, kv, &logits).ok());
  ASSERT_EQ(logits.size(), train_logits->value.size());
  double max_diff = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    max_diff = std::max(max_diff, static_cast<double>(std::abs(logits[i] - train_logits->value[i])));
  std::printf("train vs inference logits: max |diff| %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-3);

  // And the GGUF's byte-level vocabulary maps id = byte.
  auto gguf_tok = tokenizer::load_tokenizer_file(r->gguf_path);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().to_string();
  auto enc = (*gguf_tok)->encode("three little birds.\nfour lit", false);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(*enc, ids);
}

TEST(Trainer, ResumeIsBitIdentical) {
  const std::string dir = temp_dir("resume");
  const std::string data = write_text(dir + "/corpus.txt", corpus_text());
  TrainOptions straight = tiny_options(dir + "/a", data);
  straight.schedule.total = 20;
  straight.accum = 2;
  ASSERT_TRUE(train(straight).ok());

  TrainOptions half = straight;
  half.out_dir = dir + "/b";
  half.stop_at = 10;
  auto r1 = train(half);
  ASSERT_TRUE(r1.ok()) << r1.status().to_string();
  EXPECT_EQ(r1->step, 10);
  EXPECT_NE(weights_of(dir + "/a/checkpoint.safetensors"), weights_of(dir + "/b/checkpoint.safetensors"));
  half.stop_at = 0;
  half.resume = true;
  auto r2 = train(half);
  ASSERT_TRUE(r2.ok()) << r2.status().to_string();
  EXPECT_EQ(r2->step, 20);
  EXPECT_EQ(weights_of(dir + "/a/checkpoint.safetensors"), weights_of(dir + "/b/checkpoint.safetensors"))
      << "10 steps + resume + 10 steps must equal 20 steps straight, bit for bit (weights and AdamW moments)";
}

TEST(Trainer, SigkillWhileCheckpointingLeavesTheLastCheckpointWhole) {
  const std::string dir = temp_dir("kill");
  const std::string data = write_text(dir + "/corpus.txt", corpus_text());
  // A model large enough that writing its checkpoint takes a while, saved every step.
  const std::string cmd = fmt::format(
      "exec {} train --data {} --out {}/run --dim 256 --layers 4 --heads 4 --seq 32 --batch 2 --steps 1000 "
      "--warmup 1 --ckpt-every 1 --eval-every 1000 --eval-batches 1 -t 1 2>/dev/null",
      test::slm_binary(), data, dir);
  int kills = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      execl("/bin/bash", "bash", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Let it write a few checkpoints, then kill it at an arbitrary moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + 137 * attempt));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++kills;
    const std::string ckpt = dir + "/run/checkpoint.safetensors";
    if (!file_exists(ckpt)) continue;
    auto state = read_checkpoint_state(ckpt);
    ASSERT_TRUE(state.ok()) << "after SIGKILL: " << state.status().to_string();
    auto cfg = config_from_json((*state)["config"]);
    ASSERT_TRUE(cfg.ok());
    auto m = Transformer<float>::create(*cfg, 1);
    AdamW adam(m->params(), {});
    EXPECT_TRUE(load_checkpoint(ckpt, *m, adam).ok());
  }
  EXPECT_GT(kills, 0);
  // And training resumes from what is there.
  const std::string ckpt = dir + "/run/checkpoint.safetensors";
  ASSERT_TRUE(file_exists(ckpt)) << "no checkpoint was written before the kills";
  const int64_t step = read_checkpoint_state(ckpt).value()["step"].get<int64_t>();
  std::string out;
  EXPECT_EQ(test::run_command(cmd.substr(5, cmd.size() - 5 - 12) + fmt::format(" --resume --stop-at {} 2>&1", step + 1), &out), 0)
      << out;
  EXPECT_EQ(read_checkpoint_state(ckpt).value()["step"].get<int64_t>(), step + 1);
}

TEST(Trainer, BadInputGetsClearErrors) {
  const std::string dir = temp_dir("bad");
  auto message = [&](TrainOptions o) {
    auto r = train(std::move(o));
    return r.ok() ? std::string("ok") : r.status().to_string();
  };
  TrainOptions o = tiny_options(dir + "/out", write_text(dir + "/empty.txt", ""));
  EXPECT_NE(message(o).find("no tokens"), std::string::npos) << message(o);

  o.data = {write_text(dir + "/bin.dat", std::string("ELF\0\1\2binary", 12))};
  EXPECT_NE(message(o).find("looks binary"), std::string::npos) << message(o);

  o.data = {write_text(dir + "/latin1.txt", "caf\xe9 au lait\n")};
  EXPECT_NE(message(o).find("not UTF-8"), std::string::npos) << message(o);

  o.data = {dir + "/missing.txt"};
  EXPECT_NE(message(o).find("missing.txt"), std::string::npos) << message(o);

  o.data = {write_text(dir + "/short.txt", "too short\n")};
  EXPECT_NE(message(o).find("too few"), std::string::npos) << message(o);

  // A tokenizer the GGUF export cannot carry is refused before training.
  const std::string unigram = test::shared_data("tokenizers/hf-tokenizer-cases/tiny_unigram_tokenizer.json");
  if (file_exists(unigram)) {
    auto t = TrainTokenizer::open(unigram);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().to_string().find("unigram"), std::string::npos) << t.status().to_string();
  }

  // Impossible model shapes.
  EXPECT_FALSE(config_from_json({{"vocab", 256}, {"dim", 30}, {"layers", 2}, {"heads", 4}, {"ffn", 64}, {"ctx", 32}}).ok());
  EXPECT_FALSE(config_from_json({{"vocab", 256}, {"dim", 32}, {"layers", 0}, {"heads", 4}, {"ffn", 64}, {"ctx", 32}}).ok());
  EXPECT_FALSE(config_from_json({{"vocab", 256}, {"dim", 32}, {"layers", 2}, {"heads", 4}, {"ffn", 64}}).ok());
  EXPECT_FALSE(config_from_json({{"vocab", 256}, {"dim", 32}, {"layers", 2}, {"heads", 4}, {"ffn", 64}, {"ctx", 32},
                                 {"dropout", 0.1}}).ok());
  o = tiny_options(dir + "/out2", write_text(dir + "/corpus.txt", corpus_text()));
  o.seq = 64;  // longer than the model's context
  EXPECT_NE(message(o).find("sequence length"), std::string::npos) << message(o);

  // A corrupt checkpoint: truncated, and with a byte of its header flipped.
  o = tiny_options(dir + "/out3", dir + "/corpus.txt");
  o.schedule.total = 2;
  o.schedule.warmup = 1;
  ASSERT_TRUE(train(o).ok()) << message(o);
  const std::string ckpt = dir + "/out3/checkpoint.safetensors";
  auto bytes = read_file(ckpt);
  ASSERT_TRUE(bytes.ok());
  o.resume = true;
  o.schedule.total = 4;
  write_text(ckpt, bytes->substr(0, bytes->size() / 2));
  EXPECT_NE(message(o).find("checkpoint"), std::string::npos) << message(o);
  std::string flipped = *bytes;
  flipped[12] = '!';
  write_text(ckpt, flipped);
  EXPECT_NE(message(o), "ok");
  write_text(ckpt, *bytes);
  EXPECT_EQ(message(o), "ok");
}

TEST(Trainer, Bf16MixedPrecisionTracksFloat32) {
  const std::string dir = temp_dir("bf16");
  const std::string data = write_text(dir + "/corpus.txt", corpus_text());
  TrainOptions a = tiny_options(dir + "/f32", data);
  TrainOptions b = tiny_options(dir + "/bf16", data);
  b.bf16 = true;
  auto ra = train(a), rb = train(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_NE(ra->val_loss, rb->val_loss);  // bf16 rounding is on
  EXPECT_NEAR(ra->val_loss, rb->val_loss, 0.1);
}

TEST(Trainer, BpeTokenizerStreamsAndTravelsIntoTheGguf) {
  const std::string dir = temp_dir("bpe");
  // Over 1 MiB, so the corpus is read in pieces cut after newlines.
  std::string text;
  while (text.size() < (size_t(3) << 19)) text += corpus_text();
  const std::string data = write_text(dir + "/big.txt", text);
  tokenizer::BpeTrainOptions bo;
  bo.vocab_size = 300;
  bo.special_tokens = {"<|endoftext|>"};
  auto bpe = tokenizer::train_bpe(std::vector<std::string>{write_text(dir + "/small.txt", corpus_text())}, bo);
  ASSERT_TRUE(bpe.ok()) << bpe.status().to_string();
  ASSERT_TRUE(tokenizer::write_hf_tokenizer_json(*bpe, dir + "/tokenizer.json").ok());

  auto tok = TrainTokenizer::open(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  auto d = TokenData::build({data}, *tok, dir + "/tokens.bin");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  std::vector<int32_t> whole;
  ASSERT_TRUE(tok->encode(text, &whole).ok());
  ASSERT_EQ(d->size(), static_cast<int64_t>(whole.size()));
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_EQ(d->data()[i], static_cast<uint32_t>(whole[i])) << i;

  // A model trained with it carries the same vocabulary and merges in its GGUF.
  TrainOptions o = tiny_options(dir + "/out", dir + "/small.txt");
  o.tokenizer = dir + "/tokenizer.json";
  o.model.n_vocab = tok->n_vocab();
  o.schedule.total = 2;
  o.schedule.warmup = 1;
  auto r = train(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto gguf_tok = tokenizer::load_tokenizer_file(r->gguf_path);
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status().to_string();
  const std::string sample = "seven little birds.\nOne more: <|endoftext|> 12!";
  auto a = (*gguf_tok)->encode(sample, false, true);
  auto b = tok->tokenizer()->encode(sample, false, true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ((*gguf_tok)->decode(*a, true), sample);
}

TEST(Trainer, LossCurveRoundTripsAndRejectsGarbage) {
  std::vector<LossPoint> pts(3);
  pts[0] = {10, 1e-3, 2.5, NAN};
  pts[1] = {20, 9e-4, 2.25, 2.375};
  pts[2] = {30, 8e-4, NAN, 2.125};
  auto back = parse_loss_csv(loss_csv(pts));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ((*back)[1].step, 20);
  EXPECT_EQ((*back)[1].val_loss, 2.375);
  EXPECT_TRUE(std::isnan((*back)[0].val_loss));
  EXPECT_TRUE(std::isnan((*back)[2].train_loss));
  const std::string svg = loss_svg(pts, "t");
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 5, true);
  EXPECT_NE(svg.find("train loss"), std::string::npos);
  EXPECT_NE(svg.find("validation loss"), std::string::npos);
  auto bad = parse_loss_csv("step,lr,train_loss,val_loss\n10,0.001,2.5,\nzz,\x01,,\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().to_string().find("line 3"), std::string::npos) << bad.status().to_string();
}

TEST(Trainer, ResumeSurvivesADamagedLossCurve) {
  const std::string dir = temp_dir("curve");
  TrainOptions o = tiny_options(dir + "/out", write_text(dir + "/corpus.txt", corpus_text()));
  o.schedule.total = 4;
  o.schedule.warmup = 1;
  o.stop_at = 2;
  ASSERT_TRUE(train(o).ok());
  write_text(dir + "/out/loss.csv", "step,lr\n\xff\xfe garbage\n");
  o.stop_at = 0;
  o.resume = true;
  auto r = train(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->step, 4);
  auto csv = read_file(dir + "/out/loss.csv");
  ASSERT_TRUE(csv.ok());
  EXPECT_TRUE(parse_loss_csv(*csv).ok()) << *csv;
}

TEST(Trainer, ScheduleShapes) {
  Schedule s;
  s.lr = 1e-3;
  s.min_lr = 1e-4;
  s.warmup = 100;
  s.total = 2000;
  EXPECT_NEAR(s.at(0), 1e-5, 1e-12);
  EXPECT_NEAR(s.at(99), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(1050), 5.5e-4, 1e-9);  // halfway down the cosine
  EXPECT_NEAR(s.at(1999), 1e-4, 1e-8);
  EXPECT_EQ(s.at(5000), 1e-4);
  s.kind = ScheduleKind::kWsd;
  s.decay_frac = 0.1;
  EXPECT_EQ(s.at(500), 1e-3);
  EXPECT_EQ(s.at(1799), 1e-3);
  EXPECT_NEAR(s.at(1800), 1e-3, 1e-12);
  EXPECT_LT(s.at(1900), 1e-3);
  EXPECT_GT(s.at(1900), 1e-4);
  EXPECT_NEAR(s.at(1999), 1e-4, 1e-12);
  s.min_lr = 0;
  EXPECT_FALSE(s.validate().ok());
}

TEST(Trainer, AdamWStepMatchesTheFormula) {
  auto p = make_var<float>({2, 2}, {1.0f, -2.0f, 0.5f, 0.0f}, true);
  auto n = make_var<float>({2}, {1.0f, 1.0f}, true);
  AdamWOptions o;
  o.weight_decay = 0.1;
  AdamW adam({{"w", p}, {"norm", n}}, o);
  p->g();
  p->grad = {0.1f, -0.2f, 0.0f, 0.3f};
  n->g();
  n->grad = {0.5f, -0.5f};
  adam.step(0.01);
  // First step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g).
  const float expect[] = {1.0f * (1 - 0.001f) - 0.01f, -2.0f * (1 - 0.001f) + 0.01f, 0.5f * (1 - 0.001f), -0.01f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p->value[i], expect[i], 1e-6) << i;
  EXPECT_NEAR(n->value[0], 0.99f, 1e-6);  // no decay on 1-D parameters
  EXPECT_NEAR(n->value[1], 1.01f, 1e-6);
  const double norm = clip_grad_norm({{"w", p}}, 0.1);
  EXPECT_NEAR(norm, std::sqrt(0.14), 1e-6);
  double after = 0;
  for (float g : p->grad) after += g * g;
  EXPECT_NEAR(std::sqrt(after), 0.1, 1e-5);
}

TEST(Trainer, DefaultModelRecipeIsValidAndFindsItsCorpus) {
  TrainOptions o = default_model_recipe({"a.txt"}, "/tmp/x");
  EXPECT_TRUE(check_trainable(o.model).ok());
  EXPECT_TRUE(validate(o).ok()) << validate(o).to_string();
  auto corpus = default_corpus();
  if (!corpus.ok()) GTEST_SKIP() << corpus.status().to_string();
  EXPECT_GT(corpus->size(), 10u);
  for (const std::string& f : *corpus) EXPECT_EQ(f.find(".dat"), std::string::npos) << f;
}

}  // namespace
}  // namespace slm::train
