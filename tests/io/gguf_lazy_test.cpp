// GgufWriter's lazily filled tensors: the same file as tensors given whole,
// with each fill called when its bytes are written.
#include <gtest/gtest.h>

#include <cstring>

#include "slm/io/gguf.h"

namespace slm::io {
namespace {

TEST(GgufLazy, SameBytesAsEagerTensors) {
  const std::vector<uint8_t> a = {1, 2, 3, 4, 5, 6, 7, 8}, b(40, 9);  // b: not a multiple of the alignment
  GgufWriter eager, lazy;
  for (GgufWriter* w : {&eager, &lazy}) w->set_string("general.architecture", "llama");
  eager.add_tensor("a", 0, {2}, a);
  eager.add_tensor("b", 0, {10}, b);
  int calls = 0;
  lazy.add_tensor("a", 0, {2}, a.size(), [&](uint8_t* dst) { ++calls, std::memcpy(dst, a.data(), a.size()); });
  lazy.add_tensor("b", 0, {10}, b.size(), [&](uint8_t* dst) { ++calls, std::memcpy(dst, b.data(), b.size()); });
  EXPECT_EQ(lazy.serialize_header(), eager.serialize_header());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(lazy.serialize(), eager.serialize());
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace slm::io
