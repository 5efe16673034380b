// GGUF reader and writer: round trips, the real files in ../shared/data, and a
// corruption suite in the manner of LevelDB's db/corruption_test.cc: every
// damaged image must be refused with a message, never crash.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>

#include "slm/core/half.h"
#include "slm/io/gguf.h"
#include "test_util.h"

namespace slm::io {
namespace {

namespace fs = std::filesystem;

// ---- a hand-rolled GGUF byte builder, independent of GgufWriter ----

struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return put<uint32_t>(0x46554747u).put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  Bytes& kv_u32(const std::string& k, uint32_t v) { return str(k).put<uint32_t>(4).put<uint32_t>(v); }
  // ne in GGUF order (innermost first).
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (uint64_t x : ne) put<uint64_t>(x);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  Bytes& pad(size_t align = 32) {
    b.resize((b.size() + align - 1) / align * align, 0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

// Parses a copy of exactly `size` bytes, so that AddressSanitizer sees any
// read past the end; on success touches every byte of every readable tensor.
Status parse_copy(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size == 0 ? 1 : size]);
  if (size) std::memcpy(copy.get(), data, size);
  auto r = GgufFile::parse(copy.get(), size, "image");
  if (!r.ok()) return r.status();
  unsigned sum = 0;
  for (const auto& ti : r.value()->tensors()) {
    auto v = r.value()->tensor(ti.name);
    if (!v.ok()) continue;
    const auto* p = static_cast<const uint8_t*>(v->data);
    for (size_t i = 0; i < v->nbytes; ++i) sum += p[i];
  }
  return sum == 0xdeadbeef ? Status::Internal("unlikely") : Status::Ok();
}
Status parse_copy(const std::vector<uint8_t>& b) { return parse_copy(b.data(), b.size()); }

#define EXPECT_REFUSED(expr, needle)                                                   \
  do {                                                                                 \
    Status _st = (expr);                                                               \
    EXPECT_FALSE(_st.ok()) << "accepted a corrupt image (" << needle << ")";           \
    EXPECT_FALSE(_st.message().empty());                                               \
    EXPECT_NE(_st.message().find(needle), std::string::npos) << _st.message();         \
  } while (0)

GgufValue scalar(GgufType t, int64_t i, uint64_t u, double f = 0) {
  GgufValue v;
  v.type = t;
  v.i = i;
  v.u = u;
  v.f = f;
  return v;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& x) {
  std::vector<uint8_t> b(x.size() * 4);
  std::memcpy(b.data(), x.data(), b.size());
  return b;
}

// A writer holding every metadata value type and tensors of several types.
GgufWriter full_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set("v.u8", scalar(GgufType::kUint8, 250, 250));
  w.set("v.i8", scalar(GgufType::kInt8, -120, 0));
  w.set("v.u16", scalar(GgufType::kUint16, 65000, 65000));
  w.set("v.i16", scalar(GgufType::kInt16, -32000, 0));
  w.set_u32("v.u32", 4000000000u);
  w.set_i32("v.i32", -2000000000);
  w.set("v.u64", scalar(GgufType::kUint64, 0, 18000000000000000000ull));
  w.set("v.i64", scalar(GgufType::kInt64, -9000000000000000000ll, 0));
  w.set_f32("v.f32", 0.15625f);
  w.set("v.f64", scalar(GgufType::kFloat64, 0, 0, 3.141592653589793));
  w.set_bool("v.true", true);
  w.set_bool("v.false", false);
  w.set_string("v.string", std::string("h\xc3\xa9llo\0world", 12));
  w.set_string("v.empty", "");
  w.set_string_array("v.strs", {"a", "", "<0x0A>", "\xe2\x96\x81the"});
  w.set_f32_array("v.f32s", {1.5f, -2.25f, 1e-30f});
  w.set_i32_array("v.i32s", {1, -2, 2147483647});
  GgufValue nested;
  nested.type = GgufType::kArray;
  nested.elem_type = GgufType::kArray;
  for (int r = 0; r < 3; ++r) {
    GgufValue row;
    row.type = GgufType::kArray;
    row.elem_type = GgufType::kUint16;
    for (int c = 0; c <= r; ++c) row.arr.push_back(scalar(GgufType::kUint16, r * 10 + c, static_cast<uint64_t>(r * 10 + c)));
    nested.arr.push_back(row);
  }
  w.set("v.nested", nested);
  GgufValue empty_arr;
  empty_arr.type = GgufType::kArray;
  empty_arr.elem_type = GgufType::kFloat64;
  w.set("v.empty_arr", empty_arr);

  std::vector<float> x(2 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  w.add_tensor("t.f32", kGgmlF32, {2, 64}, f32_bytes(x));
  std::vector<uint8_t> f16(x.size() * 2);
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t h = f32_to_f16(x[i]);
    std::memcpy(&f16[i * 2], &h, 2);
  }
  w.add_tensor("t.f16", kGgmlF16, {2, 64}, f16);
  // Quantized blocks as opaque bytes (test_io does not link the kernels).
  std::vector<uint8_t> q8(4 * 34), q4(4 * 18);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < q4.size(); ++i) q4[i] = static_cast<uint8_t>(i * 13);
  w.add_tensor("t.q8_0", kGgmlQ8_0, {128}, q8);
  w.add_tensor("t.q4_0", kGgmlQ4_0, {1, 1, 128}, q4);
  w.add_tensor("t.i32", kGgmlI32, {3}, std::vector<uint8_t>(12, 7));
  w.add_tensor("t.q5_1", kGgmlQ5_1, {2, 256}, std::vector<uint8_t>(2 * 8 * 24, 1));
  return w;
}

void expect_same(const GgufValue& a, const GgufValue& b, const std::string& key) {
  ASSERT_EQ(a.type, b.type) << key;
  switch (a.type) {
    case GgufType::kUint8: case GgufType::kUint16: case GgufType::kUint32: case GgufType::kUint64:
      EXPECT_EQ(a.u, b.u) << key;
      break;
    case GgufType::kInt8: case GgufType::kInt16: case GgufType::kInt32: case GgufType::kInt64:
      EXPECT_EQ(a.i, b.i) << key;
      break;
    case GgufType::kFloat32: EXPECT_EQ(static_cast<float>(a.f), static_cast<float>(b.f)) << key; break;
    case GgufType::kFloat64: EXPECT_EQ(a.f, b.f) << key; break;
    case GgufType::kBool: EXPECT_EQ(a.b, b.b) << key; break;
    case GgufType::kString: EXPECT_EQ(a.s, b.s) << key; break;
    case GgufType::kArray:
      EXPECT_EQ(a.elem_type, b.elem_type) << key;
      ASSERT_EQ(a.arr.size(), b.arr.size()) << key;
      for (size_t k = 0; k < a.arr.size(); ++k) expect_same(a.arr[k], b.arr[k], key + "[" + std::to_string(k) + "]");
      break;
  }
}

// ---- round trips ----

TEST(Gguf, RoundTripEveryValueTypeAndTensors) {
  for (size_t align : {size_t(32), size_t(64), size_t(4), size_t(4096)}) {
    SCOPED_TRACE(align);
    GgufWriter w = full_writer();
    std::vector<uint8_t> img = w.serialize(align);
    auto r = GgufFile::parse(img.data(), img.size(), "rt");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const GgufFile& g = *r.value();
    EXPECT_EQ(g.version(), 3u);
    EXPECT_EQ(g.alignment(), align);

    // Compare against the values as set, through a second writer built the same way.
    GgufWriter w2 = full_writer();
    std::vector<uint8_t> img2 = w2.serialize(align);
    EXPECT_EQ(img, img2) << "serialize is not deterministic";

    EXPECT_EQ(g.get_string("general.architecture"), "llama");
    EXPECT_EQ(g.find("v.u8")->u, 250u);
    EXPECT_EQ(g.find("v.i8")->i, -120);
    EXPECT_EQ(g.find("v.u16")->u, 65000u);
    EXPECT_EQ(g.find("v.i16")->i, -32000);
    EXPECT_EQ(g.get_int("v.u32"), 4000000000ll);
    EXPECT_EQ(g.get_int("v.i32"), -2000000000ll);
    EXPECT_EQ(g.find("v.u64")->u, 18000000000000000000ull);
    EXPECT_EQ(g.get_int("v.i64"), -9000000000000000000ll);
    EXPECT_EQ(g.get_float("v.f32"), 0.15625);
    EXPECT_EQ(g.get_float("v.f64"), 3.141592653589793);
    EXPECT_EQ(g.get_bool("v.true"), true);
    EXPECT_EQ(g.get_bool("v.false"), false);
    EXPECT_EQ(g.get_string("v.string"), std::string("h\xc3\xa9llo\0world", 12));
    EXPECT_EQ(g.get_string("v.empty"), "");
    const GgufValue* strs = g.find("v.strs");
    ASSERT_NE(strs, nullptr);
    ASSERT_EQ(strs->arr.size(), 4u);
    EXPECT_EQ(strs->elem_type, GgufType::kString);
    EXPECT_EQ(strs->arr[2].s, "<0x0A>");
    EXPECT_EQ(strs->arr[3].s, "\xe2\x96\x81the");
    const GgufValue* f32s = g.find("v.f32s");
    ASSERT_EQ(f32s->arr.size(), 3u);
    EXPECT_EQ(static_cast<float>(f32s->arr[2].f), 1e-30f);
    EXPECT_EQ(g.find("v.i32s")->arr[2].i, 2147483647);
    const GgufValue* nested = g.find("v.nested");
    ASSERT_EQ(nested->arr.size(), 3u);
    EXPECT_EQ(nested->elem_type, GgufType::kArray);
    EXPECT_EQ(nested->arr[2].elem_type, GgufType::kUint16);
    ASSERT_EQ(nested->arr[2].arr.size(), 3u);
    EXPECT_EQ(nested->arr[2].arr[1].u, 21u);
    EXPECT_TRUE(g.find("v.empty_arr")->arr.empty());
    // Wrong-typed getters say "absent" rather than converting.
    EXPECT_FALSE(g.get_string("v.u32").has_value());
    EXPECT_FALSE(g.get_bool("v.u8").has_value());
    EXPECT_FALSE(g.get_int("v.string").has_value());
    EXPECT_EQ(g.find("no.such.key"), nullptr);

    // Key order is file order.
    ASSERT_GE(g.key_order().size(), 20u);
    EXPECT_EQ(g.key_order()[0], "general.architecture");
    EXPECT_EQ(g.key_order()[1], "v.u8");

    // Tensors: names, shapes, types, offsets aligned, bytes identical.
    ASSERT_EQ(g.tensors().size(), 6u);
    GgufFile::TensorInfo const* q4 = g.find_tensor("t.q4_0");
    ASSERT_NE(q4, nullptr);
    EXPECT_EQ(q4->shape, (std::vector<int64_t>{1, 1, 128}));
    EXPECT_EQ(q4->nbytes, 4u * 18u);
    for (const auto& ti : g.tensors()) EXPECT_EQ(ti.offset % align, 0u) << ti.name;
    auto f32 = g.tensor("t.f32");
    ASSERT_TRUE(f32.ok());
    EXPECT_EQ(f32->dtype, DType::kF32);
    EXPECT_EQ(f32->shape, (std::vector<int64_t>{2, 64}));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f32->data) % std::min<size_t>(align, 4), 0u);
    float x5;
    std::memcpy(&x5, static_cast<const uint8_t*>(f32->data) + 20, 4);
    EXPECT_EQ(x5, std::sin(0.37f * 5) * 3.0f);
    EXPECT_EQ((static_cast<const uint8_t*>(f32->data) - img.data()) % align, 0u);
    auto q8 = g.tensor("t.q8_0");
    ASSERT_TRUE(q8.ok());
    EXPECT_EQ(q8->dtype, DType::kQ8_0);
    EXPECT_EQ(q8->nbytes, 4u * 34u);
    auto i32 = g.tensor("t.i32");
    ASSERT_TRUE(i32.ok());
    EXPECT_EQ(i32->dtype, DType::kI32);
    EXPECT_EQ(static_cast<const uint8_t*>(i32->data)[11], 7);
    // A known type we do not compute with: listed, refused by name.
    auto qk = g.tensor("t.q5_1");
    ASSERT_FALSE(qk.ok());
    EXPECT_EQ(qk.status().code(), Status::Code::kUnsupported);
    EXPECT_NE(qk.status().message().find("Q5_1"), std::string::npos) << qk.status().message();
    EXPECT_EQ(g.find_tensor("t.q5_1")->nbytes, 384u);
    auto none = g.tensor("nope");
    EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  }
}

TEST(Gguf, Alignment1MisalignedViewsRefused) {
  // general.alignment 1 is legal GGUF, but can leave floats at odd addresses.
  std::vector<uint8_t> img = full_writer().serialize(1);
  auto r = GgufFile::parse(img.data(), img.size(), "a1");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  int refused = 0;
  for (const auto& ti : r.value()->tensors()) {
    if (!dtype_from_ggml(ti.ggml_type)) continue;
    auto v = r.value()->tensor(ti.name);
    if (v.ok()) {
      const size_t need = (v->dtype == DType::kF32 || v->dtype == DType::kI32) ? 4 : 2;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % need, 0u) << ti.name;
    } else {
      ++refused;
      EXPECT_NE(v.status().message().find("aligned"), std::string::npos) << v.status().message();
    }
  }
  EXPECT_GT(refused, 0) << "expected some tensor at an odd offset with alignment 1";
}

TEST(Gguf, AlignmentKeySetByCallerDecidesLayout) {
  GgufWriter w = full_writer();
  w.set_u32("general.alignment", 64);
  std::vector<uint8_t> img = w.serialize();  // default argument 32: the key must win
  auto r = GgufFile::parse(img.data(), img.size(), "align");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->alignment(), 64u);
  for (const auto& ti : r.value()->tensors()) EXPECT_EQ(ti.offset % 64, 0u);
}

TEST(Gguf, WriteAndOpenFile) {
  fs::path dir = fs::temp_directory_path() / ("slm_gguf_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "m.gguf").string();
  ASSERT_TRUE(full_writer().write(path).ok());
  auto r = GgufFile::open(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->tensors().size(), 6u);
  EXPECT_EQ(r.value()->path(), path);
  // Only the file itself: no temp file left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  auto missing = GgufFile::open((dir / "missing.gguf").string());
  EXPECT_FALSE(missing.ok());
  fs::remove_all(dir);
}

TEST(Gguf, Version2Accepted) {
  std::vector<uint8_t> img = full_writer().serialize();
  img[4] = 2;
  auto r = GgufFile::parse(img.data(), img.size(), "v2");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->version(), 2u);
  EXPECT_EQ(r.value()->tensors().size(), 6u);
}

TEST(Gguf, HandBuiltImageWithAlignment64) {
  // An image built without GgufWriter: a second opinion on the layout.
  Bytes b;
  b.header(2, 1).kv_u32("general.alignment", 64);
  b.tensor("a", {4}, kGgmlF32, 0).tensor("b", {2, 3}, kGgmlF32, 64).pad(64);
  const size_t data_at = b.b.size();
  for (int i = 0; i < 4; ++i) b.put<float>(static_cast<float>(i));
  b.pad(64);
  for (int i = 0; i < 6; ++i) b.put<float>(10.f + static_cast<float>(i));
  auto r = GgufFile::parse(b.b.data(), b.b.size(), "hand");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto t = r.value()->tensor("b");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 2}));  // outermost first
  EXPECT_EQ(static_cast<const uint8_t*>(t->data) - b.b.data(), static_cast<ptrdiff_t>(data_at + 64));
  EXPECT_EQ(static_cast<const float*>(t->data)[5], 15.f);
}

TEST(Gguf, EmptyFileWithNoTensors) {
  Bytes b;
  b.header(0, 0);
  auto r = GgufFile::parse(b.b.data(), b.b.size(), "empty");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r.value()->tensors().empty());
  EXPECT_TRUE(r.value()->metadata().empty());
}

// ---- the real files ----

TEST(GgufData, Stories260K) {
  const std::string path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(path);
  auto r = GgufFile::open(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const GgufFile& g = *r.value();
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g.get_int("llama.block_count"), 5);
  EXPECT_EQ(g.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv"), 4);
  const GgufValue* toks = g.find("tokenizer.ggml.tokens");
  ASSERT_NE(toks, nullptr);
  EXPECT_EQ(toks->arr.size(), 512u);
  auto emb = g.tensor("token_embd.weight");
  ASSERT_TRUE(emb.ok()) << emb.status().to_string();
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb->dtype, DType::kF32);
  for (const auto& ti : g.tensors()) {
    auto v = g.tensor(ti.name);
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    EXPECT_EQ(v->nbytes, row_bytes(v->dtype, v->cols()) * static_cast<size_t>(v->rows())) << ti.name;
  }
}

TEST(GgufData, QuantRefFiles) {
  const std::string dir = test::shared_data("models/quant-ref");
  SLM_REQUIRE_DATA(dir + "/rand-2m-f32.gguf");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    ++files;
    SCOPED_TRACE(e.path().string());
    auto r = GgufFile::open(e.path().string());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const GgufFile& g = *r.value();
    EXPECT_GT(g.tensors().size(), 10u);
    const std::string stem = e.path().stem().string();  // rand-2m-Q4_K
    const std::string type = stem.substr(stem.rfind('-') + 1);
    bool saw_type = false;
    for (const auto& ti : g.tensors()) {
      const std::string tn = ggml_type_name(ti.ggml_type);
      auto v = g.tensor(ti.name);
      if (dtype_from_ggml(ti.ggml_type)) {
        EXPECT_TRUE(v.ok()) << v.status().to_string();
      } else {
        ASSERT_FALSE(v.ok()) << ti.name << " of type " << tn << " was not refused";
        EXPECT_EQ(v.status().code(), Status::Code::kUnsupported);
        EXPECT_NE(v.status().message().find(tn), std::string::npos) << v.status().message();
      }
      if (tn == type || (type == "f32" && tn == "F32")) saw_type = true;
    }
    EXPECT_TRUE(saw_type) << "no tensor of type " << type;
  }
  EXPECT_EQ(files, 12);
}

TEST(GgufData, LlamaCppVocabFiles) {
  const std::string dir = test::shared_data("tokenizers/llamacpp-vocab");
  SLM_REQUIRE_DATA(dir + "/ggml-vocab-llama-spm.gguf");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    ++files;
    auto r = GgufFile::open(e.path().string());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const GgufValue* toks = r.value()->find("tokenizer.ggml.tokens");
    ASSERT_NE(toks, nullptr) << e.path();
    EXPECT_EQ(toks->elem_type, GgufType::kString);
    EXPECT_GT(toks->arr.size(), 1000u) << e.path();
    EXPECT_TRUE(r.value()->get_string("tokenizer.ggml.model").has_value()) << e.path();
  }
  EXPECT_EQ(files, 5);
}

// ---- corruption ----

// Offset just after the first occurrence of the length-prefixed string s.
size_t after_string(const std::vector<uint8_t>& img, const std::string& s) {
  Bytes needle;
  needle.str(s);
  auto it = std::search(img.begin(), img.end(), needle.b.begin(), needle.b.end());
  EXPECT_NE(it, img.end()) << s;
  return static_cast<size_t>(it - img.begin()) + needle.b.size();
}

template <typename T>
void poke(std::vector<uint8_t>& img, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), img.size());
  std::memcpy(&img[at], &v, sizeof(T));
}

class GgufCorrupt : public ::testing::Test {
 protected:
  void SetUp() override { img_ = full_writer().serialize(); }
  std::vector<uint8_t> img_;
};

TEST_F(GgufCorrupt, IntactImageParses) { EXPECT_TRUE(parse_copy(img_).ok()); }

TEST_F(GgufCorrupt, WrongMagic) {
  img_[0] = 'X';
  EXPECT_REFUSED(parse_copy(img_), "magic");
  std::vector<uint8_t> tiny = {'G', 'G'};
  EXPECT_REFUSED(parse_copy(tiny), "truncated");
  EXPECT_REFUSED(parse_copy(tiny.data(), 0), "truncated");
}

TEST_F(GgufCorrupt, UnsupportedVersion) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    poke<uint32_t>(img_, 4, v);
    Status st = parse_copy(img_);
    EXPECT_REFUSED(st, "version " + std::to_string(v));
    EXPECT_EQ(st.code(), Status::Code::kUnsupported);
  }
}

TEST_F(GgufCorrupt, TruncatedAtEveryOffset) {
  for (size_t n = 0; n < img_.size(); ++n) {
    Status st = parse_copy(img_.data(), n);
    ASSERT_FALSE(st.ok()) << "truncated to " << n << " of " << img_.size() << " bytes was accepted";
    ASSERT_FALSE(st.message().empty());
  }
}

TEST_F(GgufCorrupt, BadValueType) {
  size_t at = after_string(img_, "v.u32");
  poke<uint32_t>(img_, at, 13);
  EXPECT_REFUSED(parse_copy(img_), "value type 13");
  poke<uint32_t>(img_, at, 0xffffffffu);
  EXPECT_REFUSED(parse_copy(img_), "offset " + std::to_string(at));
}

TEST_F(GgufCorrupt, BadArrayElementType) {
  size_t at = after_string(img_, "v.f32s") + 4;
  poke<uint32_t>(img_, at, 99);
  EXPECT_REFUSED(parse_copy(img_), "array element type 99");
}

TEST_F(GgufCorrupt, HugeStringLength) {
  size_t at = after_string(img_, "v.string") + 4;
  poke<uint64_t>(img_, at, uint64_t(1) << 62);
  EXPECT_REFUSED(parse_copy(img_), "string");
  poke<uint64_t>(img_, at, img_.size());  // merely past the end
  EXPECT_REFUSED(parse_copy(img_), "remain");
}

TEST_F(GgufCorrupt, HugeKeyLength) {
  poke<uint64_t>(img_, 24, ~uint64_t(0));
  EXPECT_REFUSED(parse_copy(img_), "metadata key");
}

TEST_F(GgufCorrupt, HugeArrayCount) {
  size_t at = after_string(img_, "v.i32s") + 8;
  for (uint64_t n : {~uint64_t(0), uint64_t(1) << 40, uint64_t(img_.size())}) {
    poke<uint64_t>(img_, at, n);
    EXPECT_REFUSED(parse_copy(img_), "cannot fit");
  }
  // A string array claiming more strings than there are bytes for length prefixes.
  std::vector<uint8_t> img2 = full_writer().serialize();
  poke<uint64_t>(img2, after_string(img2, "v.strs") + 8, uint64_t(1) << 33);
  EXPECT_REFUSED(parse_copy(img2), "cannot fit");
}

TEST(GgufCorruptHand, ArrayElementBudget) {
  // A u8 array whose bytes are all there, but whose count passes the limit on
  // metadata array elements (each costs ~100 bytes of RAM once parsed).
  Bytes b;
  b.header(0, 1).str("big").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(uint64_t(5) << 20);
  b.zeros(size_t(5) << 20);
  EXPECT_REFUSED(parse_copy(b.b), "limit");
}

TEST(GgufCorruptHand, NestingTooDeep) {
  Bytes b;
  b.header(0, 1).str("deep").put<uint32_t>(9);
  for (int d = 0; d < 10; ++d) b.put<uint32_t>(9).put<uint64_t>(1);
  b.put<uint32_t>(4).put<uint64_t>(1).put<uint32_t>(0);
  b.zeros(64);
  EXPECT_REFUSED(parse_copy(b.b), "nested");
}

TEST_F(GgufCorrupt, AbsurdCounts) {
  for (uint64_t n : {~uint64_t(0), uint64_t(1) << 40, uint64_t(img_.size())}) {
    std::vector<uint8_t> a = img_;
    poke<uint64_t>(a, 8, n);
    EXPECT_REFUSED(parse_copy(a), "tensor count");
    std::vector<uint8_t> b = img_;
    poke<uint64_t>(b, 16, n);
    EXPECT_REFUSED(parse_copy(b), "metadata count");
  }
  // One more than there is: runs into the tensor infos and fails there or later.
  std::vector<uint8_t> c = img_;
  uint64_t nkv;
  std::memcpy(&nkv, &c[16], 8);
  poke<uint64_t>(c, 16, nkv + 1);
  EXPECT_FALSE(parse_copy(c).ok());
}

TEST_F(GgufCorrupt, TensorDims) {
  const size_t at = after_string(img_, "t.f16");
  for (uint32_t nd : {0u, 5u, 0xffffffffu}) {
    std::vector<uint8_t> a = img_;
    poke<uint32_t>(a, at, nd);
    EXPECT_REFUSED(parse_copy(a), std::to_string(nd) + " dimensions");
  }
  for (uint64_t d : {uint64_t(0), uint64_t(1) << 41, ~uint64_t(0)}) {
    std::vector<uint8_t> a = img_;
    poke<uint64_t>(a, at + 4 + 8, d);  // the outer dimension
    EXPECT_REFUSED(parse_copy(a), "dimension 1 is " + std::to_string(d));
  }
  // Each dimension plausible, their product absurd.
  std::vector<uint8_t> q = img_;
  const size_t q4 = after_string(q, "t.q4_0");  // 3 dims: 128, 1, 1
  poke<uint64_t>(q, q4 + 4 + 8, uint64_t(1) << 30);
  poke<uint64_t>(q, q4 + 4 + 16, uint64_t(1) << 30);
  EXPECT_REFUSED(parse_copy(q), "absurd");
  // A dimension that is merely too large for the data.
  std::vector<uint8_t> b = img_;
  poke<uint64_t>(b, at + 4 + 8, 1000);
  EXPECT_REFUSED(parse_copy(b), "t.f16");
}

TEST_F(GgufCorrupt, RowNotMultipleOfBlock) {
  const size_t at = after_string(img_, "t.q8_0");
  poke<uint64_t>(img_, at + 4, 100);
  EXPECT_REFUSED(parse_copy(img_), "not a multiple of 32");
}

TEST_F(GgufCorrupt, UnknownGgmlType) {
  const size_t at = after_string(img_, "t.f32") + 4 + 2 * 8;
  for (uint32_t t : {4u, 5u, 31u, 1000u}) {
    poke<uint32_t>(img_, at, t);
    EXPECT_REFUSED(parse_copy(img_), "type id " + std::to_string(t));
  }
}

TEST_F(GgufCorrupt, OffsetPastEnd) {
  const size_t at = after_string(img_, "t.q5_1") + 4 + 2 * 8 + 4;
  poke<uint64_t>(img_, at, 1 << 20);
  EXPECT_REFUSED(parse_copy(img_), "t.q5_1");
  poke<uint64_t>(img_, at, ~uint64_t(0) - 31);  // aligned, and offset + size wraps
  EXPECT_REFUSED(parse_copy(img_), "spans");
}

TEST_F(GgufCorrupt, MisalignedOffset) {
  const size_t at = after_string(img_, "t.f16") + 4 + 2 * 8 + 4;
  uint64_t off;
  std::memcpy(&off, &img_[at], 8);
  poke<uint64_t>(img_, at, off + 4);
  EXPECT_REFUSED(parse_copy(img_), "alignment 32");
}

TEST(GgufCorruptHand, DuplicateKey) {
  Bytes b;
  b.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
  EXPECT_REFUSED(parse_copy(b.b), "duplicate metadata key 'k'");
}

TEST(GgufCorruptHand, DuplicateTensorName) {
  Bytes b;
  b.header(2, 0).tensor("w", {8}, kGgmlF32, 0).tensor("w", {8}, kGgmlF32, 32).pad().zeros(64);
  EXPECT_REFUSED(parse_copy(b.b), "duplicate tensor name 'w'");
}

TEST(GgufCorruptHand, BoolByte) {
  for (uint8_t v : {uint8_t(2), uint8_t(0xff)}) {
    Bytes b;
    b.header(0, 1).str("flag").put<uint32_t>(7).put<uint8_t>(v);
    EXPECT_REFUSED(parse_copy(b.b), "expected 0 or 1");
  }
  // Inside an array too.
  Bytes a;
  a.header(0, 1).str("flags").put<uint32_t>(9).put<uint32_t>(7).put<uint64_t>(3);
  a.put<uint8_t>(1).put<uint8_t>(0).put<uint8_t>(2);
  EXPECT_REFUSED(parse_copy(a.b), "expected 0 or 1");
}

TEST(GgufCorruptHand, BadAlignment) {
  for (uint32_t al : {0u, 3u, 48u, 1u << 20}) {
    Bytes b;
    b.header(0, 1).kv_u32("general.alignment", al);
    EXPECT_REFUSED(parse_copy(b.b), "power of two");
  }
  Bytes f;  // alignment of the wrong type
  f.header(0, 1).str("general.alignment").put<uint32_t>(6).put<float>(32.f);
  EXPECT_REFUSED(parse_copy(f.b), "power of two");
  Bytes n;  // a negative i64
  n.header(0, 1).str("general.alignment").put<uint32_t>(11).put<int64_t>(-32);
  EXPECT_REFUSED(parse_copy(n.b), "power of two");
}

TEST(GgufCorruptHand, DataSectionMissing) {
  Bytes b;
  b.header(1, 0).tensor("w", {8}, kGgmlF32, 0);  // no padding, no data
  EXPECT_REFUSED(parse_copy(b.b), "past the end");
}

// Flips random bytes of the writer's image; must never crash or hang.
TEST_F(GgufCorrupt, RandomMutations) {
  std::mt19937 rng(20240611);
  int refused = 0;
  for (int it = 0; it < 2000; ++it) {
    std::vector<uint8_t> m = img_;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) {
      // Mostly the header, where the structure is.
      const size_t span = (rng() % 4 == 0) ? m.size() : std::min<size_t>(m.size(), 900);
      m[rng() % span] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    Status st = parse_copy(m);
    if (!st.ok()) {
      ++refused;
      ASSERT_FALSE(st.message().empty());
    }
  }
  std::cout << "[ gguf mutations ] " << refused << " of 2000 refused, the rest parsed\n";
  EXPECT_GT(refused, 200);
}

// ---- the same against the real stories260K.gguf ----

class GgufCorruptReal : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = test::shared_data("models/stories260K/stories260K.gguf");
    if (!file_exists(path)) GTEST_SKIP() << "missing " << path << " (../shared/data is absent): skipped";
    auto f = MappedFile::open(path);
    ASSERT_TRUE(f.ok());
    img_.assign(f.value()->data(), f.value()->data() + f.value()->size());
    auto g = GgufFile::parse(img_.data(), img_.size(), "stories");
    ASSERT_TRUE(g.ok());
    // Where the data section starts: the first tensor's view minus its offset.
    const auto& t0 = g.value()->tensors().front();
    auto v = g.value()->tensor(t0.name);
    ASSERT_TRUE(v.ok());
    data_at_ = static_cast<size_t>(static_cast<const uint8_t*>(v->data) - img_.data()) - t0.offset;
  }
  std::vector<uint8_t> img_;
  size_t data_at_ = 0;
};

TEST_F(GgufCorruptReal, Truncated) {
  // Every offset of the header (cheap copies), then a sample of the data.
  for (size_t n = 0; n < data_at_; n += (n < 4096 ? 1 : 7)) {
    Status st = parse_copy(img_.data(), n);
    ASSERT_FALSE(st.ok()) << "truncated to " << n;
    ASSERT_FALSE(st.message().empty());
  }
  std::mt19937 rng(7);
  for (int k = 0; k < 40; ++k) {
    const size_t n = data_at_ + rng() % (img_.size() - data_at_);
    EXPECT_REFUSED(parse_copy(img_.data(), n), "truncated?");
  }
  EXPECT_REFUSED(parse_copy(img_.data(), img_.size() - 1), "truncated?");
}

TEST_F(GgufCorruptReal, TargetedDamage) {
  {
    auto m = img_;
    m[3] = 'X';
    EXPECT_REFUSED(parse_copy(m), "magic");
  }
  {
    auto m = img_;
    poke<uint32_t>(m, 4, 7);
    EXPECT_REFUSED(parse_copy(m), "version 7");
  }
  {
    auto m = img_;
    poke<uint32_t>(m, after_string(m, "tokenizer.ggml.tokens") + 4, 77);
    EXPECT_REFUSED(parse_copy(m), "array element type 77");
  }
  {
    auto m = img_;
    poke<uint64_t>(m, after_string(m, "tokenizer.ggml.scores") + 8, uint64_t(1) << 50);
    EXPECT_REFUSED(parse_copy(m), "cannot fit");
  }
  {
    auto m = img_;
    poke<uint32_t>(m, after_string(m, "output_norm.weight"), 5);
    EXPECT_REFUSED(parse_copy(m), "5 dimensions");
  }
  {
    auto m = img_;
    const size_t at = after_string(m, "token_embd.weight");
    poke<uint32_t>(m, at + 4 + 2 * 8, 12345);
    EXPECT_REFUSED(parse_copy(m), "type id 12345");
  }
  {
    auto m = img_;
    const size_t at = after_string(m, "output_norm.weight");
    poke<uint64_t>(m, at + 4 + 8 + 4, img_.size());
    EXPECT_FALSE(parse_copy(m).ok());
  }
}

TEST_F(GgufCorruptReal, RandomMutationsOfTheHeader) {
  std::mt19937 rng(99);
  int refused = 0;
  for (int it = 0; it < 150; ++it) {
    std::vector<uint8_t> m = img_;
    for (int f = 0; f < 4; ++f) m[rng() % data_at_] ^= static_cast<uint8_t>(1 + rng() % 255);
    Status st = parse_copy(m);
    if (!st.ok()) {
      ++refused;
      ASSERT_FALSE(st.message().empty());
    }
  }
  std::cout << "[ gguf real mutations ] " << refused << " of 150 refused\n";
}

}  // namespace
}  // namespace slm::io
