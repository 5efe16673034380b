// load_sentencepiece_model: a SentencePiece ModelProto (tokenizer.model),
// parsed by hand (docs/formats/sentencepiece-model.md).
#include <fmt/format.h>

#include <cstring>

#include "pipeline.h"
#include "slm/tokenizer/load.h"
#include "utf8.h"

namespace slm::tokenizer {

namespace {

Status pb_error(const std::string& msg) { return Status::Corruption("[sentencepiece] " + msg); }

// A protobuf wire-format reader over [p, end). Every read is bounds-checked.
class PbReader {
 public:
  PbReader(const uint8_t* p, size_t n, size_t base) : p_(p), end_(p + n), base_(base), start_(p) {}
  bool done() const { return p_ >= end_; }
  size_t offset() const { return base_ + static_cast<size_t>(p_ - start_); }

  Status varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return pb_error(fmt::format("truncated varint at offset {}", offset()));
      uint8_t b = *p_++;
      r |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return Status::Ok();
      }
    }
    return pb_error(fmt::format("varint longer than 10 bytes at offset {}", offset()));
  }
  // One field: number, wire type, and its payload (varint value, or bytes for wire types 1, 2, 5).
  Status field(uint32_t* number, uint32_t* wire, uint64_t* value, const uint8_t** bytes, size_t* len, size_t* at) {
    uint64_t key = 0;
    SLM_RETURN_IF_ERROR(varint(&key));
    *number = static_cast<uint32_t>(key >> 3);
    *wire = static_cast<uint32_t>(key & 7);
    *at = offset();
    switch (*wire) {
      case 0:
        return varint(value);
      case 1:
      case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        if (static_cast<size_t>(end_ - p_) < n) return pb_error(fmt::format("truncated fixed field at offset {}", *at));
        *bytes = p_;
        *len = n;
        p_ += n;
        return Status::Ok();
      }
      case 2: {
        uint64_t n = 0;
        SLM_RETURN_IF_ERROR(varint(&n));
        if (n > static_cast<uint64_t>(end_ - p_)) {
          return pb_error(fmt::format("field {} at offset {} claims {} bytes, only {} remain", *number, *at, n,
                                      static_cast<size_t>(end_ - p_)));
        }
        *bytes = p_;
        *len = static_cast<size_t>(n);
        p_ += n;
        return Status::Ok();
      }
      default:
        return pb_error(fmt::format("unsupported wire type {} at offset {}", *wire, *at));
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  size_t base_;
  const uint8_t* start_;
};

struct SpPiece {
  std::string piece;
  float score = 0;
  int type = 1;
};

struct Spec {
  int model_type = 1;  // 1 unigram, 2 bpe, 3 word, 4 char
  bool byte_fallback = false;
  bool treat_ws_as_suffix = false;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";
  std::string norm_name;
  size_t charsmap_size = 0;
  bool add_dummy_prefix = true, remove_extra_ws = true, escape_ws = true;
};

float as_float(const uint8_t* b) {
  float f;
  std::memcpy(&f, b, 4);
  return f;
}

Status expect_wire(uint32_t got, uint32_t want, const char* what, size_t at) {
  if (got != want) return pb_error(fmt::format("{} at offset {} has wire type {}, expected {}", what, at, got, want));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& data) {
  const auto* base = reinterpret_cast<const uint8_t*>(data.data());
  PbReader top(base, data.size(), 0);
  std::vector<SpPiece> pieces;
  Spec spec;
  uint32_t num, wire;
  uint64_t val;
  const uint8_t* bytes;
  size_t len, at;
  while (!top.done()) {
    SLM_RETURN_IF_ERROR(top.field(&num, &wire, &val, &bytes, &len, &at));
    if (num == 1) {  // SentencePiece
      SLM_RETURN_IF_ERROR(expect_wire(wire, 2, "piece", at));
      PbReader r(bytes, len, at);
      SpPiece p;
      while (!r.done()) {
        uint32_t n2, w2;
        uint64_t v2;
        const uint8_t* b2;
        size_t l2, at2;
        SLM_RETURN_IF_ERROR(r.field(&n2, &w2, &v2, &b2, &l2, &at2));
        if (n2 == 1) {
          SLM_RETURN_IF_ERROR(expect_wire(w2, 2, "piece text", at2));
          p.piece.assign(reinterpret_cast<const char*>(b2), l2);
        } else if (n2 == 2) {
          SLM_RETURN_IF_ERROR(expect_wire(w2, 5, "piece score", at2));
          p.score = as_float(b2);
        } else if (n2 == 3) {
          SLM_RETURN_IF_ERROR(expect_wire(w2, 0, "piece type", at2));
          if (v2 < 1 || v2 > 6) return pb_error(fmt::format("piece {} has type {}, expected 1..6", pieces.size(), v2));
          p.type = static_cast<int>(v2);
        }
      }
      if (utf8_first_invalid(p.piece)) return pb_error(fmt::format("piece {} is not valid UTF-8", pieces.size()));
      pieces.push_back(std::move(p));
    } else if (num == 2) {  // TrainerSpec
      SLM_RETURN_IF_ERROR(expect_wire(wire, 2, "trainer_spec", at));
      PbReader r(bytes, len, at);
      while (!r.done()) {
        uint32_t n2, w2;
        uint64_t v2;
        const uint8_t* b2;
        size_t l2, at2;
        SLM_RETURN_IF_ERROR(r.field(&n2, &w2, &v2, &b2, &l2, &at2));
        auto as_i32 = [&] { return static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v2))); };
        if (w2 == 0) {
          if (n2 == 3) spec.model_type = static_cast<int>(v2);
          if (n2 == 35) spec.byte_fallback = v2 != 0;
          if (n2 == 24) spec.treat_ws_as_suffix = v2 != 0;
          if (n2 == 40) spec.unk_id = as_i32();
          if (n2 == 41) spec.bos_id = as_i32();
          if (n2 == 42) spec.eos_id = as_i32();
          if (n2 == 43) spec.pad_id = as_i32();
        } else if (w2 == 2 && n2 == 44) {
          spec.unk_surface.assign(reinterpret_cast<const char*>(b2), l2);
        }
      }
    } else if (num == 3) {  // NormalizerSpec
      SLM_RETURN_IF_ERROR(expect_wire(wire, 2, "normalizer_spec", at));
      PbReader r(bytes, len, at);
      while (!r.done()) {
        uint32_t n2, w2;
        uint64_t v2;
        const uint8_t* b2;
        size_t l2, at2;
        SLM_RETURN_IF_ERROR(r.field(&n2, &w2, &v2, &b2, &l2, &at2));
        if (w2 == 2 && n2 == 1) spec.norm_name.assign(reinterpret_cast<const char*>(b2), l2);
        if (w2 == 2 && n2 == 2) spec.charsmap_size = l2;
        if (w2 == 0 && n2 == 3) spec.add_dummy_prefix = v2 != 0;
        if (w2 == 0 && n2 == 4) spec.remove_extra_ws = v2 != 0;
        if (w2 == 0 && n2 == 5) spec.escape_ws = v2 != 0;
      }
    }
    // Other fields (self-test data, denormalizer) are not needed.
  }
  if (pieces.empty()) return pb_error("no pieces: not a SentencePiece model (or an empty one)");
  if (spec.model_type != 1 && spec.model_type != 2) {
    return Status::Unsupported(fmt::format("[sentencepiece] model_type {} is not supported (1 unigram, 2 bpe)", spec.model_type));
  }
  if (spec.treat_ws_as_suffix) return Status::Unsupported("[sentencepiece] treat_whitespace_as_suffix is not supported");
  if (spec.charsmap_size > 0) {
    return Status::Unsupported("[sentencepiece] normalizer '" + spec.norm_name +
                               "' uses a precompiled character map, which is not supported yet");
  }
  const int64_t n = static_cast<int64_t>(pieces.size());
  for (auto [name, id] : {std::pair<const char*, int64_t>{"unk_id", spec.unk_id}, {"bos_id", spec.bos_id},
                          {"eos_id", spec.eos_id}, {"pad_id", spec.pad_id}}) {
    if (id < -1 || id >= n) return pb_error(fmt::format("{} = {} is out of range [0, {})", name, id, n));
  }

  auto t = std::make_unique<PipelineTokenizer>();
  t->tokens_.reserve(n);
  for (const SpPiece& p : pieces) {
    t->tokens_.push_back(p.piece);
    t->scores_.push_back(p.score);
    t->attrs_.push_back(static_cast<TokenAttr>(p.type));
  }
  t->unk_ = static_cast<int32_t>(spec.unk_id);
  t->bos_ = static_cast<int32_t>(spec.bos_id);
  t->eos_ = static_cast<int32_t>(spec.eos_id);
  t->pad_ = static_cast<int32_t>(spec.pad_id);
  t->add_bos_ = t->bos_ >= 0;
  NormalizerStep ws{NormalizerStep::Kind::kSpmWhitespace};
  ws.remove_extra_whitespaces = spec.remove_extra_ws;
  ws.add_dummy_prefix = spec.add_dummy_prefix;
  ws.escape_whitespaces = spec.escape_ws;
  t->normalizers_.push_back(std::move(ws));
  t->model_ = spec.model_type == 2 ? ModelKind::kBpeScore : ModelKind::kUnigram;
  t->byte_fallback_ = spec.byte_fallback;
  t->fuse_unk_ = spec.model_type == 1;
  t->decode_style_ = DecodeStyle::kSpm;
  t->strip_leading_space_ = spec.add_dummy_prefix;
  t->unk_surface_ = spec.unk_surface;
  t->kind_ = spec.model_type == 2 ? "spm" : "unigram";
  SLM_RETURN_IF_ERROR(t->finish());
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm::tokenizer
