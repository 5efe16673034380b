#include "slm/train/data.h"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "slm/core/progress.h"
#include "slm/io/gguf.h"
#include "slm/tokenizer/gguf_export.h"
#include "slm/tokenizer/load.h"

namespace slm::train {

namespace {

constexpr size_t kChunk = size_t(1) << 20;
constexpr char kMagic[8] = {'S', 'L', 'M', 'T', 'O', 'K', '0', '1'};

// Bytes of a valid UTF-8 prefix of s (stops at the first bad sequence).
size_t utf8_valid_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return i;
    i += len;
  }
  return i;
}

}  // namespace

Result<TrainTokenizer> TrainTokenizer::open(const std::string& spec) {
  TrainTokenizer t;
  t.spec_ = spec;
  if (spec == "byte") return t;
  if (!file_exists(spec))
    return Status::NotFound(fmt::format("[train] tokenizer '{}' is neither 'byte' nor an existing file "
                                        "(a tokenizer.json or a .gguf model)", spec));
  SLM_ASSIGN_OR_RETURN(auto tok, tokenizer::load_tokenizer_file(spec));
  // The run ends in a GGUF with the tokenizer inside: find out now, not after training.
  io::GgufWriter scratch;
  SLM_RETURN_IF_ERROR(tokenizer::add_tokenizer_to_gguf(*tok, spec, &scratch));
  t.tok_ = std::move(tok);
  return t;
}

int32_t TrainTokenizer::n_vocab() const { return tok_ ? tok_->n_vocab() : 256; }

Status TrainTokenizer::encode(std::string_view text, std::vector<int32_t>* out) const {
  if (!tok_) {
    for (char c : text) out->push_back(static_cast<uint8_t>(c));
    return Status::Ok();
  }
  SLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok_->encode(text, /*add_special=*/false));
  out->insert(out->end(), ids.begin(), ids.end());
  return Status::Ok();
}

std::string TrainTokenizer::decode(const std::vector<int32_t>& ids) const {
  if (tok_) return tok_->decode(ids);
  std::string s;
  for (int32_t id : ids) s.push_back(static_cast<char>(id));
  return s;
}

Result<TokenData> TokenData::build(const std::vector<std::string>& files, const TrainTokenizer& tok,
                                   const std::string& cache_path) {
  if (files.empty()) return Status::InvalidArgument("[train] no --data files given");
  uint64_t total_bytes = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    const auto sz = std::filesystem::file_size(f, ec);
    if (ec) return Status::NotFound(fmt::format("[train] cannot read data file '{}': {}", f, ec.message()));
    total_bytes += sz;
  }
  SLM_ASSIGN_OR_RETURN(auto out, AtomicFileWriter::open(cache_path));
  SLM_RETURN_IF_ERROR(out->append(kMagic, sizeof(kMagic)));
  Progress progress("tokenize", static_cast<int64_t>(total_bytes), "B");
  int64_t n_ids = 0, done = 0;
  std::vector<int32_t> ids;
  std::vector<uint32_t> packed;
  std::string buf;
  for (const std::string& path : files) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) return Status::NotFound(fmt::format("[train] cannot open data file '{}'", path));
    uint64_t offset = 0;  // of buf[0] in the file
    buf.clear();
    for (bool eof = false; !eof;) {
      const size_t old = buf.size();
      buf.resize(old + kChunk);
      const size_t got = std::fread(buf.data() + old, 1, kChunk, f.get());
      buf.resize(old + got);
      eof = got < kChunk;
      // Tokenize up to the last newline; the rest waits for the next piece.
      size_t cut = buf.size();
      if (!eof) {
        const size_t nl = buf.rfind('\n');
        if (nl != std::string::npos) cut = nl + 1;
      }
      const std::string_view piece(buf.data(), cut);
      if (const void* nul = std::memchr(piece.data(), 0, piece.size()); nul != nullptr)
        return Status::InvalidArgument(fmt::format(
            "[train] '{}' looks binary (NUL byte at offset {}); training data must be text", path,
            offset + static_cast<uint64_t>(static_cast<const char*>(nul) - piece.data())));
      const size_t valid = utf8_valid_prefix(piece);
      if (valid < piece.size() && (eof || piece.size() - valid > 4))
        return Status::InvalidArgument(fmt::format(
            "[train] '{}' is not UTF-8 text (invalid byte 0x{:02x} at offset {})", path,
            static_cast<uint8_t>(piece[valid]), offset + valid));
      ids.clear();
      SLM_RETURN_IF_ERROR(tok.encode(piece.substr(0, valid), &ids));
      packed.assign(ids.begin(), ids.end());
      SLM_RETURN_IF_ERROR(out->append(packed.data(), packed.size() * sizeof(uint32_t)));
      n_ids += static_cast<int64_t>(ids.size());
      done += static_cast<int64_t>(valid);
      progress.update(done);
      buf.erase(0, valid);
      offset += valid;
    }
  }
  progress.finish();
  if (n_ids == 0)
    return Status::InvalidArgument(fmt::format("[train] the corpus ({} file(s), {} bytes) has no tokens: give text",
                                               files.size(), total_bytes));
  SLM_RETURN_IF_ERROR(out->commit());
  TokenData d;
  SLM_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(cache_path));
  d.file_ = std::move(mapped);
  d.ids_ = reinterpret_cast<const uint32_t*>(d.file_->data() + sizeof(kMagic));
  d.n_ = n_ids;
  return d;
}

}  // namespace slm::train
