// safetensors reader and writer: round trip, the real files in ../shared/data,
// and corrupt headers, each of which must be refused with a message.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>

#include "slm/core/half.h"
#include "slm/io/safetensors.h"
#include "test_util.h"

namespace slm::io {
namespace {

namespace fs = std::filesystem;

// u64 header length | header | data.
std::vector<uint8_t> image(const std::string& header, size_t data_bytes, uint8_t fill = 0x11) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, fill);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

// Parses a copy of exactly `size` bytes (so AddressSanitizer sees any read
// past the end); on success reads every byte of every readable tensor.
Status parse_copy(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size == 0 ? 1 : size]);
  if (size) std::memcpy(copy.get(), data, size);
  auto r = SafetensorsFile::parse(copy.get(), size, "image");
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
Status parse_header(const std::string& header, size_t data_bytes) { return parse_copy(image(header, data_bytes)); }

#define EXPECT_REFUSED(expr, needle)                                                   \
  do {                                                                                 \
    Status _st = (expr);                                                               \
    EXPECT_FALSE(_st.ok()) << "accepted a corrupt image (" << needle << ")";           \
    EXPECT_FALSE(_st.message().empty());                                               \
    EXPECT_NE(_st.message().find(needle), std::string::npos) << _st.message();         \
  } while (0)

const char* kGood =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"I64","shape":[1],"data_offsets":[32,40]},)"
    R"("d":{"dtype":"F64","shape":[],"data_offsets":[40,48]},"e":{"dtype":"F16","shape":[0,5],"data_offsets":[48,48]}})";

// kGood padded with spaces to a multiple of 8 bytes, as writers do, so the data is aligned.
std::string good_header() {
  std::string h = kGood;
  h.resize((h.size() + 7) / 8 * 8, ' ');
  return h;
}

TEST(Safetensors, ParsesAndRefusesNonFloatDtypes) {
  std::vector<uint8_t> img = image(good_header(), 48);
  auto r = SafetensorsFile::parse(img.data(), img.size(), "good");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const SafetensorsFile& s = *r.value();
  EXPECT_EQ(s.metadata().at("format"), "pt");
  ASSERT_EQ(s.tensors().size(), 5u);
  auto a = s.tensor("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->nbytes, 24u);
  EXPECT_EQ(static_cast<const uint8_t*>(a->data), img.data() + 8 + good_header().size());
  auto b = s.tensor("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dtype, DType::kBF16);
  EXPECT_EQ(static_cast<const uint8_t*>(b->data) - static_cast<const uint8_t*>(a->data), 24);
  auto e = s.tensor("e");  // zero elements
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->nbytes, 0u);
  for (const char* name : {"c", "d"}) {
    auto t = s.tensor(name);
    ASSERT_FALSE(t.ok()) << name;
    EXPECT_EQ(t.status().code(), Status::Code::kUnsupported);
    EXPECT_NE(t.status().message().find(s.find_tensor(name)->dtype), std::string::npos) << t.status().message();
  }
  EXPECT_NE(s.tensor("c").status().message().find("I64"), std::string::npos);
  EXPECT_NE(s.tensor("d").status().message().find("F64"), std::string::npos);
  EXPECT_EQ(s.tensor("zzz").status().code(), Status::Code::kNotFound);
}

TEST(Safetensors, MisalignedDataRefused) {
  // Valid offsets, but F32 data that may sit at an address not a multiple of 4.
  int refused = 0;
  for (int b = 0; b < 4; ++b) {
    const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[)" + std::to_string(b) + "," +
                          std::to_string(b + 4) + "]}}";
    std::vector<uint8_t> img = image(h, 8);
    auto r = SafetensorsFile::parse(img.data(), img.size(), "odd");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    auto v = r.value()->tensor("a");
    if ((reinterpret_cast<uintptr_t>(img.data()) + 8 + h.size() + static_cast<size_t>(b)) % 4 != 0) {
      ++refused;
      ASSERT_FALSE(v.ok());
      EXPECT_EQ(v.status().code(), Status::Code::kUnsupported);
      EXPECT_NE(v.status().message().find("element size"), std::string::npos) << v.status().message();
    } else {
      EXPECT_TRUE(v.ok()) << v.status().to_string();
    }
  }
  EXPECT_EQ(refused, 3);
}

TEST(Safetensors, WriteRoundTrip) {
  fs::path dir = fs::temp_directory_path() / ("slm_st_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "t.safetensors").string();
  std::vector<float> f32 = {1.f, -2.5f, 3.25f, 1e-20f, 0.f, 7.f};
  std::vector<uint16_t> f16 = {f32_to_f16(0.5f), f32_to_f16(-65504.f), f32_to_f16(1e-7f)};
  std::vector<uint16_t> bf16 = {f32_to_bf16(3.f), f32_to_bf16(-1e30f), 0x7fc0, f32_to_bf16(1.f), 0, 1, 2};
  std::vector<TensorView> ts(3);
  ts[0] = {"model.w", DType::kF32, {2, 3}, f32.data(), f32.size() * 4};
  ts[1] = {"h", DType::kF16, {3}, f16.data(), f16.size() * 2};
  ts[2] = {"odd.bf16", DType::kBF16, {7, 1}, bf16.data(), bf16.size() * 2};
  ASSERT_TRUE(write_safetensors(path, ts, {{"format", "pt"}, {"note", "x\"y"}}).ok());

  auto r = SafetensorsFile::open(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const SafetensorsFile& s = *r.value();
  EXPECT_EQ(s.metadata().size(), 2u);
  EXPECT_EQ(s.metadata().at("note"), "x\"y");
  ASSERT_EQ(s.tensors().size(), 3u);
  for (const auto& t : ts) {
    auto v = s.tensor(t.name);
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    EXPECT_EQ(v->dtype, t.dtype);
    EXPECT_EQ(v->shape, t.shape);
    ASSERT_EQ(v->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(v->data, t.data, t.nbytes), 0) << t.name;
    // The writer pads the header so that data starts 8-byte aligned.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.tensor(ts[0].name)->data) % 8, 0u);
  }
  // Non-float tensors are refused by the writer, naming the tensor.
  std::vector<int32_t> ints = {1, 2};
  Status st = write_safetensors((dir / "bad.safetensors").string(), {{"ids", DType::kI32, {2}, ints.data(), 8}});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("ids"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dir / "bad.safetensors"));
  // No metadata, no tensors: still a valid file.
  ASSERT_TRUE(write_safetensors((dir / "empty.safetensors").string(), {}).ok());
  auto empty = SafetensorsFile::open((dir / "empty.safetensors").string());
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_TRUE(empty.value()->tensors().empty());
  fs::remove_all(dir);
}

TEST(SafetensorsData, RealFiles) {
  const std::string stories = test::shared_data("models/stories260K-hf/model.safetensors");
  SLM_REQUIRE_DATA(stories);
  auto r = SafetensorsFile::open(stories);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto emb = r.value()->tensor("model.embed_tokens.weight");
  ASSERT_TRUE(emb.ok()) << emb.status().to_string();
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb->dtype, DType::kF32);

  auto tiny = SafetensorsFile::open(test::shared_data("models/tiny-random-llama-2/model.safetensors"));
  ASSERT_TRUE(tiny.ok()) << tiny.status().to_string();
  auto t = tiny.value()->tensor("model.embed_tokens.weight");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->dtype, DType::kBF16);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3000, 16}));

  int n = 0;
  for (const auto& e : fs::directory_iterator(test::shared_data("models/hf-tiny"))) {
    auto f = SafetensorsFile::open((e.path() / "model.safetensors").string());
    ASSERT_TRUE(f.ok()) << e.path() << ": " << f.status().to_string();
    EXPECT_FALSE(f.value()->tensors().empty());
    ++n;
  }
  EXPECT_GE(n, 8);
}

// ---- corruption ----

TEST(SafetensorsCorrupt, HeaderLength) {
  EXPECT_REFUSED(parse_copy(nullptr, 0), "too short");
  std::vector<uint8_t> five = {1, 2, 3, 4, 5};
  EXPECT_REFUSED(parse_copy(five), "too short");
  std::vector<uint8_t> img = image("{}", 0);
  uint64_t n = 3;  // past the end of a 10-byte file
  std::memcpy(img.data(), &n, 8);
  img.resize(9);
  EXPECT_REFUSED(parse_copy(img), "runs past the end");
  for (uint64_t huge : {~uint64_t(0), uint64_t(1) << 40, uint64_t(100) << 20 | 1}) {
    std::vector<uint8_t> h = image("{}", 0);
    std::memcpy(h.data(), &huge, 8);
    EXPECT_REFUSED(parse_copy(h), "limit");
  }
}

TEST(SafetensorsCorrupt, NotJsonOrNotObject) {
  EXPECT_REFUSED(parse_header("", 0), "not valid JSON");
  EXPECT_REFUSED(parse_header("{\"a\":", 0), "not valid JSON");
  EXPECT_REFUSED(parse_header(std::string("{\"a\0\":1}", 8), 0), "not valid JSON");
  EXPECT_REFUSED(parse_header("\xff\xfe{}", 0), "not valid JSON");
  EXPECT_REFUSED(parse_header("{\"a\":\"\xc3\"}", 0), "not valid JSON");  // bad UTF-8
  EXPECT_REFUSED(parse_header(std::string(100000, '['), 0), "not valid JSON");
  EXPECT_REFUSED(parse_header("[]", 0), "not a JSON object");
  EXPECT_REFUSED(parse_header("42", 0), "not a JSON object");
  EXPECT_REFUSED(parse_header("\"x\"", 0), "not a JSON object");
  EXPECT_REFUSED(parse_header("null", 0), "not a JSON object");
}

TEST(SafetensorsCorrupt, EntryFields) {
  EXPECT_REFUSED(parse_header(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "needs dtype");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "needs dtype");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "needs dtype");
  EXPECT_REFUSED(parse_header(R"({"a":[1,2]})", 4), "needs dtype");
  EXPECT_REFUSED(parse_header(R"({"a":7})", 4), "needs dtype");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4), "dtype is not a string");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", 4), "shape");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4),
                 "at most 8");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4), "non-integer");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-integer");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4), "non-integer");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}})", 4), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"__metadata__":[1]})", 0), "__metadata__");
  EXPECT_REFUSED(parse_header(R"({"__metadata__":{"k":1}})", 0), "not a string");
}

TEST(SafetensorsCorrupt, Offsets) {
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", 4), "data_offsets");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "outside");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 7), "outside");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4),
                 "outside");
  EXPECT_REFUSED(
      parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}})", 4),
      "outside");
}

TEST(SafetensorsCorrupt, SizeAndDtype) {
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8), "need 8 bytes");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8), "need 6 bytes");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"Q4_0","shape":[32],"data_offsets":[0,18]}})", 18), "unknown dtype 'Q4_0'");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'f32'");
  // Dimensions whose product overflows must not wrap around to a small size.
  EXPECT_REFUSED(
      parse_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}})", 0),
      "absurd");
  EXPECT_REFUSED(parse_header(R"({"a":{"dtype":"F32","shape":[1099511627777],"data_offsets":[0,4]}})", 4), "absurd");
}

TEST(SafetensorsCorrupt, TruncatedAtEveryOffset) {
  std::vector<uint8_t> img = image(good_header(), 48);
  for (size_t n = 0; n < img.size(); ++n) {
    Status st = parse_copy(img.data(), n);
    ASSERT_FALSE(st.ok()) << "truncated to " << n << " was accepted";
    ASSERT_FALSE(st.message().empty());
  }
}

TEST(SafetensorsCorrupt, RandomMutations) {
  std::vector<uint8_t> img = image(good_header(), 48);
  std::mt19937 rng(424242);
  int refused = 0;
  for (int it = 0; it < 2000; ++it) {
    std::vector<uint8_t> m = img;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % m.size();
      // Half the time swap in a JSON-significant character, to get past the parser more often.
      static const char kSig[] = "{}[],:\"0123456789-.e ";
      m[at] = (rng() % 2) ? static_cast<uint8_t>(kSig[rng() % (sizeof kSig - 1)]) : static_cast<uint8_t>(rng());
    }
    Status st = parse_copy(m);
    if (!st.ok()) {
      ++refused;
      ASSERT_FALSE(st.message().empty());
    }
  }
  std::cout << "[ safetensors mutations ] " << refused << " of 2000 refused\n";
  EXPECT_GT(refused, 1000);
}

TEST(SafetensorsCorruptReal, TruncatedAndMutated) {
  const std::string path = test::shared_data("models/stories260K-hf/model.safetensors");
  SLM_REQUIRE_DATA(path);
  auto f = MappedFile::open(path);
  ASSERT_TRUE(f.ok());
  std::vector<uint8_t> img(f.value()->data(), f.value()->data() + f.value()->size());
  uint64_t n = 0;
  std::memcpy(&n, img.data(), 8);
  for (size_t k = 0; k < 8 + n; ++k) ASSERT_FALSE(parse_copy(img.data(), k).ok()) << k;
  EXPECT_REFUSED(parse_copy(img.data(), img.size() - 1), "outside");
  std::mt19937 rng(5);
  for (int it = 0; it < 100; ++it) {
    std::vector<uint8_t> m = img;
    m[rng() % (8 + n)] ^= static_cast<uint8_t>(1 + rng() % 255);
    Status st = parse_copy(m);
    if (!st.ok()) {
      ASSERT_FALSE(st.message().empty());
    }
  }
}

}  // namespace
}  // namespace slm::io
