// llama2.c checkpoints: the real stories260K.bin, hand-built legacy and
// version-1 files whose every float says where it is, and bad headers.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <iostream>
#include <random>

#include "slm/io/gguf.h"
#include "slm/io/llama2c.h"
#include "test_util.h"

namespace slm::io {
namespace {

struct Dims {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 10, seq = 4;
};

// Floats in the file, in file order (llama2.c export.py / run.c layout).
int64_t float_count(const Dims& d, int version, bool shared) {
  const int64_t D = d.dim, F = d.hidden, L = d.layers, V = d.vocab, head = d.dim / d.heads;
  const int64_t kv = head * d.kv_heads;
  int64_t n = V * D + 2 * L * D + D + L * (2 * D * D + 2 * kv * D) + 3 * L * F * D;
  if (version == 0) n += d.seq * head;  // freq_cis real + imag
  if (!shared) n += V * D;
  return n;
}

// A checkpoint whose float number i holds the value i.
std::vector<uint8_t> make_file(const Dims& d, int version, bool shared) {
  std::vector<uint8_t> b;
  auto put = [&](auto x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof x);
  };
  if (version == 0) {
    for (int32_t v : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, shared ? d.vocab : -d.vocab, d.seq}) put(v);
  } else {
    put(uint32_t{0x616b3432});
    put(int32_t{version});
    for (int32_t v : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, d.vocab, d.seq}) put(v);
    put(uint8_t{shared ? uint8_t(1) : uint8_t(0)});
    b.resize(256, 0);
  }
  const int64_t n = float_count(d, version, shared);
  for (int64_t i = 0; i < n; ++i) put(static_cast<float>(i));
  return b;
}

Status parse_copy(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size == 0 ? 1 : size]);
  if (size) std::memcpy(copy.get(), data, size);
  auto r = Llama2cFile::parse(copy.get(), size, "ckpt");
  if (!r.ok()) return r.status();
  double sum = 0;
  for (const auto& t : r.value()->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    for (size_t i = 0; i < t.nbytes; ++i) sum += p[i];
  }
  return sum < 0 ? Status::Internal("unlikely") : Status::Ok();
}
Status parse_copy(const std::vector<uint8_t>& b) { return parse_copy(b.data(), b.size()); }

#define EXPECT_REFUSED(expr, needle)                                                   \
  do {                                                                                 \
    Status _st = (expr);                                                               \
    EXPECT_FALSE(_st.ok()) << "accepted a corrupt file (" << needle << ")";            \
    EXPECT_FALSE(_st.message().empty());                                               \
    EXPECT_NE(_st.message().find(needle), std::string::npos) << _st.message();         \
  } while (0)

const TensorView* find(const Llama2cFile& f, const std::string& name) {
  for (const auto& t : f.tensors())
    if (t.name == name) return &t;
  return nullptr;
}

float first(const TensorView* t) { return static_cast<const float*>(t->data)[0]; }

TEST(Llama2c, LegacyLayout) {
  const Dims d;
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared);
    std::vector<uint8_t> img = make_file(d, 0, shared);
    auto r = Llama2cFile::parse(img.data(), img.size(), "legacy");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Llama2cFile& f = *r.value();
    EXPECT_EQ(f.header().version, 0);
    EXPECT_EQ(f.header().vocab_size, 10);
    EXPECT_EQ(f.header().shared_classifier, shared);
    EXPECT_EQ(f.tensors().size(), 2u + 9u * 2u + (shared ? 0u : 1u));
    // D=8 F=12 L=2 V=10 kv_dim=4: offsets (in floats) worked out by hand from run.c.
    EXPECT_EQ(first(find(f, "token_embd.weight")), 0.f);
    EXPECT_EQ(first(find(f, "blk.0.attn_norm.weight")), 80.f);
    EXPECT_EQ(first(find(f, "blk.1.attn_norm.weight")), 88.f);
    EXPECT_EQ(first(find(f, "blk.0.attn_q.weight")), 96.f);
    EXPECT_EQ(first(find(f, "blk.0.attn_k.weight")), 96.f + 128);
    EXPECT_EQ(first(find(f, "blk.1.attn_k.weight")), 96.f + 128 + 32);
    EXPECT_EQ(first(find(f, "blk.0.attn_v.weight")), 96.f + 128 + 64);
    EXPECT_EQ(first(find(f, "blk.0.attn_output.weight")), 96.f + 128 + 128);
    EXPECT_EQ(first(find(f, "blk.0.ffn_norm.weight")), 96.f + 128 + 128 + 128);  // 480
    EXPECT_EQ(first(find(f, "blk.0.ffn_gate.weight")), 496.f);
    EXPECT_EQ(first(find(f, "blk.0.ffn_down.weight")), 496.f + 192);
    EXPECT_EQ(first(find(f, "blk.1.ffn_up.weight")), 496.f + 384 + 96);
    EXPECT_EQ(first(find(f, "output_norm.weight")), 496.f + 576);
    EXPECT_EQ(find(f, "blk.0.attn_k.weight")->shape, (std::vector<int64_t>{4, 8}));
    EXPECT_EQ(find(f, "blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{8, 12}));
    if (!shared) {
      // After the final norm (8) and freq_cis (seq 4 x head 4 = 16 floats).
      EXPECT_EQ(first(find(f, "output.weight")), 496.f + 576 + 8 + 16);
      EXPECT_EQ(find(f, "output.weight")->shape, (std::vector<int64_t>{10, 8}));
    } else {
      EXPECT_EQ(find(f, "output.weight"), nullptr);
    }
  }
}

TEST(Llama2c, Version1Layout) {
  const Dims d;
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared);
    std::vector<uint8_t> img = make_file(d, 1, shared);
    auto r = Llama2cFile::parse(img.data(), img.size(), "v1");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Llama2cFile& f = *r.value();
    EXPECT_EQ(f.header().version, 1);
    EXPECT_EQ(f.header().shared_classifier, shared);
    // Norms first: att (2x8), ffn (2x8), final (8); then embedding, wq, wk, ...
    EXPECT_EQ(first(find(f, "blk.0.attn_norm.weight")), 0.f);
    EXPECT_EQ(first(find(f, "blk.1.ffn_norm.weight")), 24.f);
    EXPECT_EQ(first(find(f, "output_norm.weight")), 32.f);
    EXPECT_EQ(first(find(f, "token_embd.weight")), 40.f);
    EXPECT_EQ(first(find(f, "blk.0.attn_q.weight")), 120.f);
    EXPECT_EQ(first(find(f, "blk.0.attn_k.weight")), 120.f + 128);
    EXPECT_EQ(first(find(f, "blk.0.ffn_gate.weight")), 120.f + 128 + 64 + 64 + 128);
    if (!shared) {
      EXPECT_EQ(first(find(f, "output.weight")), 120.f + 128 + 64 + 64 + 128 + 3 * 192);
    }
  }
}

TEST(Llama2cData, Stories260K) {
  const std::string path = test::shared_data("models/stories260K/stories260K.bin");
  SLM_REQUIRE_DATA(path);
  auto r = Llama2cFile::open(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Llama2cFile& f = *r.value();
  const Llama2cHeader& h = f.header();
  EXPECT_EQ(h.version, 0);
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  // The GGUF of the same model holds the same numbers (q/k aside, which converters permute).
  auto g = GgufFile::open(test::shared_data("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(g.ok());
  for (const char* name : {"token_embd.weight", "output_norm.weight", "blk.3.ffn_down.weight", "blk.0.attn_v.weight",
                           "blk.4.ffn_norm.weight"}) {
    const TensorView* a = find(f, name);
    ASSERT_NE(a, nullptr) << name;
    auto b = g.value()->tensor(name);
    ASSERT_TRUE(b.ok()) << name;
    EXPECT_EQ(a->shape, b->shape) << name;
    ASSERT_EQ(a->nbytes, b->nbytes) << name;
    EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << name;
  }
}

TEST(Llama2cCorrupt, Truncated) {
  for (int version : {0, 1}) {
    std::vector<uint8_t> img = make_file(Dims{}, version, false);
    for (size_t n = 0; n < img.size(); ++n) {
      Status st = parse_copy(img.data(), n);
      ASSERT_FALSE(st.ok()) << "version " << version << " truncated to " << n;
      ASSERT_FALSE(st.message().empty());
    }
  }
  EXPECT_REFUSED(parse_copy(nullptr, 0), "too short");
}

TEST(Llama2cCorrupt, TrailingGarbage) {
  for (int version : {0, 1}) {
    std::vector<uint8_t> img = make_file(Dims{}, version, true);
    img.push_back(0);
    EXPECT_REFUSED(parse_copy(img), "account for");
    img.resize(img.size() + 3);
    EXPECT_REFUSED(parse_copy(img), "account for");
  }
}

TEST(Llama2cCorrupt, BadHeaderValues) {
  struct Case {
    int field;  // index into the 7 header ints
    int32_t value;
    const char* needle;
  };
  const Case cases[] = {
      {0, 0, "dim is 0"},           {0, -8, "dim is -8"},          {0, 1 << 20, "dim is 1048576"},
      {1, 0, "hidden_dim is 0"},    {1, -1, "hidden_dim"},         {1, INT_MAX, "hidden_dim"},
      {2, 0, "n_layers is 0"},      {2, 5000, "n_layers is 5000"}, {3, 0, "n_heads is 0"},
      {3, 3, "n_heads is 3"},       {3, -2, "n_heads"},            {4, 0, "n_kv_heads is 0"},
      {4, 3, "n_kv_heads is 3"},    {5, 0, "vocab_size is 0"},     {5, INT_MIN, "vocab_size"},
      {5, 1 << 30, "vocab_size"},   {6, 0, "seq_len is 0"},        {6, -1, "seq_len"},
      {3, 8, "head size is 1"},  // dim 8 / 8 heads: odd head size
  };
  for (int version : {0, 1}) {
    for (const Case& c : cases) {
      std::vector<uint8_t> img = make_file(Dims{}, version, true);
      const size_t at = (version == 0 ? 0 : 8) + 4 * static_cast<size_t>(c.field);
      std::memcpy(&img[at], &c.value, 4);
      if (c.field == 3 && c.value == 8) {  // keep n_kv_heads a divisor so head size is what fails
        const int32_t one = 1;
        std::memcpy(&img[at + 4], &one, 4);
      }
      SCOPED_TRACE(std::string("version ") + std::to_string(version) + ": " + c.needle);
      EXPECT_REFUSED(parse_copy(img), c.needle);
    }
  }
}

TEST(Llama2cCorrupt, SizesThatDoNotMatchTheFile) {
  // A valid-looking header whose shapes need far more than the file holds.
  Dims big;
  big.dim = 4096;
  big.hidden = 11008;
  big.layers = 32;
  big.heads = 32;
  big.kv_heads = 32;
  big.vocab = 32000;
  big.seq = 2048;
  std::vector<uint8_t> img = make_file(Dims{}, 0, true);
  std::memcpy(&img[0], &big, sizeof big);
  EXPECT_REFUSED(parse_copy(img), "truncated");
  // Shapes that disagree with the file by one layer.
  std::vector<uint8_t> img2 = make_file(Dims{}, 0, true);
  const int32_t three = 3;
  std::memcpy(&img2[8], &three, 4);
  EXPECT_FALSE(parse_copy(img2).ok());
}

TEST(Llama2cCorrupt, Version2AndFlags) {
  for (int32_t v : {2, 0, 3, -1}) {
    std::vector<uint8_t> img = make_file(Dims{}, 1, true);
    std::memcpy(&img[4], &v, 4);
    Status st = parse_copy(img);
    EXPECT_REFUSED(st, "version " + std::to_string(v));
    EXPECT_EQ(st.code(), Status::Code::kUnsupported);
  }
  std::vector<uint8_t> img = make_file(Dims{}, 1, true);
  img[36] = 2;
  EXPECT_REFUSED(parse_copy(img), "shared_classifier flag is 2");
  // "ak42" with fewer than 256 bytes.
  std::vector<uint8_t> small(img.begin(), img.begin() + 100);
  EXPECT_REFUSED(parse_copy(small), "256");
}

TEST(Llama2cCorrupt, RandomHeaderMutations) {
  std::mt19937 rng(1234);
  int refused = 0;
  for (int it = 0; it < 2000; ++it) {
    const int version = static_cast<int>(it % 2);
    std::vector<uint8_t> img = make_file(Dims{}, version, it % 4 < 2);
    const size_t header = version == 0 ? 28 : 40;
    for (int f = 0; f < 2; ++f) img[rng() % header] ^= static_cast<uint8_t>(1 + rng() % 255);
    Status st = parse_copy(img);
    if (!st.ok()) {
      ++refused;
      ASSERT_FALSE(st.message().empty());
    }
  }
  std::cout << "[ llama2c mutations ] " << refused << " of 2000 refused\n";
  EXPECT_GT(refused, 1500);
}

}  // namespace
}  // namespace slm::io
