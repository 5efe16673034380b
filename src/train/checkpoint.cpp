#include "slm/train/checkpoint.h"

#include <cstring>

#include "slm/io/safetensors.h"

namespace slm::train {

namespace {

constexpr const char* kStateKey = "slm.train_state";

TensorView f32_view(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& v) {
  TensorView t;
  t.name = name;
  t.dtype = DType::kF32;
  t.shape = shape;
  t.data = v.data();
  t.nbytes = v.size() * sizeof(float);
  return t;
}

Status fill(const io::SafetensorsFile& f, const std::string& name, const std::vector<int64_t>& shape,
            std::vector<float>* dst) {
  const auto* info = f.find_tensor(name);
  if (info == nullptr) return Status::Corruption(fmt::format("[checkpoint] {}: tensor '{}' is missing", f.path(), name));
  if (info->dtype != "F32" || info->shape != shape)
    return Status::Corruption(fmt::format("[checkpoint] {}: tensor '{}' is {} {}, expected F32 {}", f.path(), name,
                                          info->dtype, nlohmann::json(info->shape).dump(), nlohmann::json(shape).dump()));
  SLM_ASSIGN_OR_RETURN(TensorView t, f.tensor(name));
  dst->resize(static_cast<size_t>(t.numel()));
  std::memcpy(dst->data(), t.data, t.nbytes);
  return Status::Ok();
}

}  // namespace

nlohmann::json config_to_json(const model::ModelConfig& c) {
  return {{"vocab", c.n_vocab}, {"dim", c.n_embd},   {"layers", c.n_layer},        {"heads", c.n_head},
          {"kv_heads", c.n_head_kv}, {"ffn", c.n_ff}, {"ctx", c.n_ctx_train}, {"rope_theta", c.rope_theta},
          {"norm_eps", c.norm_eps}};
}

Result<model::ModelConfig> config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("[train] model config must be a JSON object");
  static const char* kKeys[] = {"vocab", "dim", "layers", "heads", "kv_heads", "ffn", "ctx", "rope_theta", "norm_eps"};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (!known) return Status::InvalidArgument(fmt::format("[train] unknown model config key '{}'", key));
    if (!value.is_number())
      return Status::InvalidArgument(fmt::format("[train] model config key '{}' is {}, expected a number", key,
                                                 value.type_name()));
  }
  model::ModelConfig c;
  auto get_int = [&](const char* key, int64_t* dst, bool required) -> Status {
    if (!j.contains(key)) {
      return required ? Status::InvalidArgument(fmt::format("[train] model config lacks '{}'", key)) : Status::Ok();
    }
    const double v = j[key].get<double>();
    if (v != static_cast<double>(static_cast<int64_t>(v)) || v < 0 || v > 1e9)
      return Status::InvalidArgument(fmt::format("[train] model config '{}' is {}, expected a whole number", key, v));
    *dst = static_cast<int64_t>(v);
    return Status::Ok();
  };
  SLM_RETURN_IF_ERROR(get_int("vocab", &c.n_vocab, true));
  SLM_RETURN_IF_ERROR(get_int("dim", &c.n_embd, true));
  SLM_RETURN_IF_ERROR(get_int("layers", &c.n_layer, true));
  SLM_RETURN_IF_ERROR(get_int("heads", &c.n_head, true));
  c.n_head_kv = c.n_head;
  SLM_RETURN_IF_ERROR(get_int("kv_heads", &c.n_head_kv, false));
  SLM_RETURN_IF_ERROR(get_int("ffn", &c.n_ff, true));
  SLM_RETURN_IF_ERROR(get_int("ctx", &c.n_ctx_train, true));
  if (j.contains("rope_theta")) c.rope_theta = j["rope_theta"].get<float>();
  if (j.contains("norm_eps")) c.norm_eps = j["norm_eps"].get<float>();
  if (c.n_head <= 0 || c.n_embd % c.n_head != 0)
    return Status::InvalidArgument(fmt::format("[train] model config: dim {} is not a multiple of heads {}", c.n_embd,
                                               c.n_head));
  c.head_dim = c.n_embd / c.n_head;
  c.n_rot = c.head_dim;
  SLM_RETURN_IF_ERROR(check_trainable(c));
  return c;
}

Status save_checkpoint(const std::string& path, const Transformer<float>& model, AdamW& opt,
                       const nlohmann::json& state) {
  std::vector<TensorView> views;
  const auto& params = opt.params();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, p] = params[i];
    views.push_back(f32_view(name, p->shape, p->value));
    views.push_back(f32_view("adam.m." + name, p->shape, opt.m(i)));
    views.push_back(f32_view("adam.v." + name, p->shape, opt.v(i)));
  }
  nlohmann::json s = state;
  s["config"] = config_to_json(model.config());
  s["adam_steps"] = opt.steps();
  return io::write_safetensors(path, views, {{kStateKey, s.dump()}});
}

Result<nlohmann::json> read_checkpoint_state(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto f, io::SafetensorsFile::open(path));
  auto it = f->metadata().find(kStateKey);
  if (it == f->metadata().end())
    return Status::Corruption(fmt::format("[checkpoint] {} has no '{}' metadata: not an slm training checkpoint", path,
                                          kStateKey));
  nlohmann::json s = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (s.is_discarded() || !s.is_object())
    return Status::Corruption(fmt::format("[checkpoint] {}: the training state is not a JSON object", path));
  for (const char* key : {"config", "step", "adam_steps", "rng"})
    if (!s.contains(key)) return Status::Corruption(fmt::format("[checkpoint] {}: the training state lacks '{}'", path, key));
  if (!s["step"].is_number_unsigned() || !s["adam_steps"].is_number_unsigned() || !s["rng"].is_string())
    return Status::Corruption(fmt::format("[checkpoint] {}: step, adam_steps or rng has the wrong type", path));
  SLM_RETURN_IF_ERROR(config_from_json(s["config"]).status());
  return s;
}

Status load_checkpoint(const std::string& path, Transformer<float>& model, AdamW& opt) {
  SLM_ASSIGN_OR_RETURN(nlohmann::json state, read_checkpoint_state(path));
  SLM_ASSIGN_OR_RETURN(auto f, io::SafetensorsFile::open(path));
  const auto& params = opt.params();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, p] = params[i];
    SLM_RETURN_IF_ERROR(fill(*f, name, p->shape, &p->value));
    SLM_RETURN_IF_ERROR(fill(*f, "adam.m." + name, p->shape, &opt.m(i)));
    SLM_RETURN_IF_ERROR(fill(*f, "adam.v." + name, p->shape, &opt.v(i)));
  }
  opt.set_steps(state["adam_steps"].get<int64_t>());
  return Status::Ok();
}

}  // namespace slm::train
