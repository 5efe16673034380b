#include "slm/train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <sstream>

#include <cblas.h>

#include "slm/core/mapped_file.h"
#include "slm/core/progress.h"
#include "slm/train/checkpoint.h"
#include "slm/train/data_parallel.h"
#include "slm/train/data.h"
#include "slm/train/export.h"
#include "slm/train/loss_curve.h"
#include "slm/train/transformer.h"

namespace slm::train {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string rng_state(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

Status restore_rng(const std::string& state, std::mt19937_64* rng) {
  std::istringstream s(state);
  s >> *rng;
  if (s.fail()) return Status::Corruption("[checkpoint] the data sampler's RNG state does not parse");
  return Status::Ok();
}

// A batch of `batch` windows of seq + 1 tokens starting at the given offsets.
void fill_batch(const TokenData& data, const std::vector<int64_t>& offsets, int64_t seq, std::vector<int32_t>* x,
                std::vector<int32_t>* y) {
  x->clear();
  y->clear();
  for (int64_t off : offsets)
    for (int64_t i = 0; i < seq; ++i) {
      x->push_back(static_cast<int32_t>(data.data()[off + i]));
      y->push_back(static_cast<int32_t>(data.data()[off + i + 1]));
    }
}

}  // namespace

Status validate(const TrainOptions& o) {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("[train] " + what); };
  if (o.out_dir.empty()) return bad("--out DIR is required");
  if (o.batch < 1 || o.batch > 65536) return bad(fmt::format("batch is {}, expected 1..65536", o.batch));
  if (o.seq < 2 || o.seq > o.model.n_ctx_train)
    return bad(fmt::format("sequence length is {}, expected 2..ctx ({})", o.seq, o.model.n_ctx_train));
  if (o.accum < 1) return bad(fmt::format("accumulation is {}, expected >= 1", o.accum));
  if (!(o.val_frac > 0 && o.val_frac < 1)) return bad(fmt::format("validation fraction is {}, expected (0, 1)", o.val_frac));
  if (o.eval_every < 1 || o.eval_batches < 1 || o.ckpt_every < 1 || o.log_every < 1)
    return bad("eval-every, eval-batches, ckpt-every and log-every must be >= 1");
  if (o.stop_at < 0 || o.stop_at > o.schedule.total) return bad(fmt::format("stop-at is {}, expected 0..steps", o.stop_at));
  if (!(o.clip >= 0)) return bad(fmt::format("clip is {}, expected >= 0", o.clip));
  if (!(o.adam.beta1 >= 0 && o.adam.beta1 < 1 && o.adam.beta2 >= 0 && o.adam.beta2 < 1 && o.adam.weight_decay >= 0))
    return bad("AdamW betas must be in [0, 1) and weight decay >= 0");
  return o.schedule.validate();
}

Result<TrainResult> train(TrainOptions opt) {
  const std::string ckpt_path = opt.out_dir + "/checkpoint.safetensors";
  SLM_ASSIGN_OR_RETURN(TrainTokenizer tok, TrainTokenizer::open(opt.tokenizer));
  nlohmann::json resumed;
  if (opt.resume) {
    if (!file_exists(ckpt_path))
      return Status::NotFound(fmt::format("[train] --resume: no checkpoint at {}", ckpt_path));
    SLM_ASSIGN_OR_RETURN(resumed, read_checkpoint_state(ckpt_path));
    SLM_ASSIGN_OR_RETURN(opt.model, config_from_json(resumed["config"]));
    if (resumed.value("tokenizer", "") != opt.tokenizer)
      return Status::InvalidArgument(fmt::format("[train] --resume: the checkpoint was trained with tokenizer '{}', "
                                                 "not '{}'", resumed.value("tokenizer", ""), opt.tokenizer));
  }
  if (opt.model.n_vocab == 0) opt.model.n_vocab = tok.n_vocab();
  if (opt.model.n_vocab < tok.n_vocab())
    return Status::InvalidArgument(fmt::format("[train] the model's vocabulary ({}) is smaller than the tokenizer's ({})",
                                               opt.model.n_vocab, tok.n_vocab()));
  SLM_RETURN_IF_ERROR(check_trainable(opt.model));
  SLM_RETURN_IF_ERROR(validate(opt));
  if (opt.threads > 0) {
    omp_set_num_threads(opt.threads);
    openblas_set_num_threads(opt.threads);
  }
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  if (ec) return Status::IoError(fmt::format("[train] cannot create {}: {}", opt.out_dir, ec.message()));

  SLM_ASSIGN_OR_RETURN(TokenData data, TokenData::build(opt.data, tok, opt.out_dir + "/tokens.bin"));
  const int64_t n_val = static_cast<int64_t>(static_cast<double>(data.size()) * opt.val_frac);
  const int64_t n_train = data.size() - n_val;
  if (n_train < opt.seq + 1 || n_val < opt.seq + 1)
    return Status::InvalidArgument(fmt::format(
        "[train] the corpus has {} tokens: too few for sequences of {} with a {:.0f}% validation split (need at least "
        "{})", data.size(), opt.seq, opt.val_frac * 100, static_cast<int64_t>((opt.seq + 1) / std::min(opt.val_frac, 1 - opt.val_frac)) + 1));

  SLM_ASSIGN_OR_RETURN(Transformer<float> model, Transformer<float>::create(opt.model, opt.seed));
  AdamW adam(model.params(), opt.adam);
  DataParallel shards(model, opt.threads > 0 ? opt.threads : omp_get_max_threads());
  std::mt19937_64 rng(opt.seed);
  int64_t step = 0;
  std::vector<LossPoint> curve;
  if (opt.resume) {
    SLM_RETURN_IF_ERROR(load_checkpoint(ckpt_path, model, adam));
    SLM_RETURN_IF_ERROR(restore_rng(resumed["rng"].get<std::string>(), &rng));
    step = resumed["step"].get<int64_t>();
    if (auto csv = read_file(opt.out_dir + "/loss.csv"); csv.ok()) {
      // The curve is a report, not state: a damaged one restarts, the run goes on.
      auto parsed = parse_loss_csv(*csv);
      if (parsed.ok()) {
        curve = std::move(*parsed);
        std::erase_if(curve, [&](const LossPoint& p) { return p.step > step; });
      } else {
        std::fprintf(stderr, "train: %s; the loss curve restarts at step %lld\n", parsed.status().to_string().c_str(),
                     static_cast<long long>(step));
      }
    }
  }
  std::fprintf(stderr, "train: %s, %.2fM parameters; %lld tokens (%lld train, %lld validation); %s\n",
               opt.model.describe().c_str(), static_cast<double>(model.n_params()) / 1e6,
               static_cast<long long>(data.size()), static_cast<long long>(n_train), static_cast<long long>(n_val),
               opt.resume ? fmt::format("resuming at step {}", step).c_str() : "from scratch");

  // Validation windows: fixed for the whole run (and its resumptions).
  std::vector<int64_t> val_offsets;
  {
    std::mt19937_64 vr(opt.seed + 1);
    for (int64_t i = 0; i < opt.eval_batches * opt.batch; ++i)
      val_offsets.push_back(n_train + static_cast<int64_t>(vr() % static_cast<uint64_t>(n_val - opt.seq)));
  }
  std::vector<int32_t> x, y;
  auto eval_val = [&]() {
    double sum = 0;
    for (int64_t b = 0; b < opt.eval_batches; ++b) {
      const std::vector<int64_t> offs(val_offsets.begin() + b * opt.batch, val_offsets.begin() + (b + 1) * opt.batch);
      fill_batch(data, offs, opt.seq, &x, &y);
      sum += shards.step(x, y, opt.batch, opt.seq, /*backward=*/false, 1.0f, opt.bf16, false);
    }
    return sum / static_cast<double>(opt.eval_batches);
  };
  const int64_t tokens_per_step = opt.batch * opt.seq * opt.accum;
  auto save = [&](double val_loss) -> Status {
    nlohmann::json state = {{"step", step}, {"rng", rng_state(rng)}, {"tokenizer", opt.tokenizer},
                            {"seed", opt.seed}, {"val_loss", val_loss},
                            {"tokens_seen", step * tokens_per_step}, {"data", opt.data},
                            {"batch", opt.batch}, {"seq", opt.seq}, {"accum", opt.accum}};
    SLM_RETURN_IF_ERROR(save_checkpoint(ckpt_path, model, adam, state));
    // A readable copy for people and scripts; resume reads the checkpoint's own.
    state["config"] = config_to_json(model.config());
    const std::string json = state.dump(2) + "\n";
    SLM_RETURN_IF_ERROR(write_file_atomic(opt.out_dir + "/state.json", json.data(), json.size()));
    const std::string csv = loss_csv(curve), svg = loss_svg(curve, "slm train: loss per token (nats)");
    SLM_RETURN_IF_ERROR(write_file_atomic(opt.out_dir + "/loss.csv", csv.data(), csv.size()));
    SLM_RETURN_IF_ERROR(write_file_atomic(opt.out_dir + "/loss.svg", svg.data(), svg.size()));
    return export_gguf(model, tok, opt.out_dir + "/model.gguf");
  };

  const int64_t end = opt.stop_at > 0 ? opt.stop_at : opt.schedule.total;
  Progress progress("train", opt.schedule.total, "step", step);
  const bool tty = isatty(2) != 0;
  double train_sum = 0, last_train = NAN, last_val = NAN, train_time = 0;
  int64_t train_n = 0, steps_run = 0;
  std::vector<int64_t> offs(static_cast<size_t>(opt.batch));
  while (step < end) {
    const double t0 = now();
    const double lr = opt.schedule.at(step);
    double loss_sum = 0;
    for (int64_t a = 0; a < opt.accum; ++a) {
      for (int64_t& o : offs) o = static_cast<int64_t>(rng() % static_cast<uint64_t>(n_train - opt.seq));
      fill_batch(data, offs, opt.seq, &x, &y);
      loss_sum += shards.step(x, y, opt.batch, opt.seq, /*backward=*/true, 1.0f / static_cast<float>(opt.accum),
                              opt.bf16, opt.recompute);
    }
    const double loss = loss_sum / static_cast<double>(opt.accum);
    if (!std::isfinite(loss))
      return Status::Internal(fmt::format("[train] the loss is {} at step {}: lower the learning rate ({})", loss, step, lr));
    clip_grad_norm(adam.params(), opt.clip);
    adam.step(lr);
    adam.zero_grad();
    ++step;
    ++steps_run;
    train_time += now() - t0;
    train_sum += loss;
    ++train_n;
    const bool eval = step % opt.eval_every == 0 || step == end;
    if (step % opt.log_every == 0 || eval) {
      LossPoint p;
      p.step = step;
      p.lr = lr;
      p.train_loss = last_train = train_sum / static_cast<double>(train_n);
      train_sum = 0;
      train_n = 0;
      if (eval) p.val_loss = last_val = eval_val();
      curve.push_back(p);
      if (eval && !tty)  // logs get a line per evaluation instead of the redrawn bar
        std::fprintf(stderr, "train: step %lld/%lld  loss %.4f  val %.4f  lr %.2e  %.0f tok/s\n",
                     static_cast<long long>(step), static_cast<long long>(opt.schedule.total), p.train_loss, p.val_loss,
                     lr, static_cast<double>(tokens_per_step * steps_run) / train_time);
    }
    progress.set_note(fmt::format("loss {:.4f}{} lr {:.2e} {:.0f} tok/s", loss,
                                  std::isnan(last_val) ? "" : fmt::format(" val {:.4f}", last_val), lr,
                                  static_cast<double>(tokens_per_step * steps_run) / train_time));
    progress.update(step);
    if (step % opt.ckpt_every == 0 || step == end) SLM_RETURN_IF_ERROR(save(last_val));
  }
  progress.finish();
  TrainResult r;
  r.step = step;
  r.train_loss = last_train;
  r.val_loss = std::isnan(last_val) ? eval_val() : last_val;
  r.tokens_per_s = train_time > 0 ? static_cast<double>(tokens_per_step * steps_run) / train_time : 0;
  r.gguf_path = opt.out_dir + "/model.gguf";
  return r;
}

}  // namespace slm::train
