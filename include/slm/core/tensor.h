// TensorView: a typed, non-owning view of a tensor's bytes, which usually live
// in a memory-mapped model file. Shape is outermost first (numpy order): a
// weight matrix is {rows = out_features, cols = in_features}, row-major.
// Also the one serialized description of a tensor (name, dtype, shape, bytes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/dtype.h"

namespace slm {

// How a matrix's blocks are ordered: row after row (as files store them), or
// interleaved in kernels' row panels (kernels::repack), which only matmul reads.
enum class Layout : uint8_t { kRows, kPanels };

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first
  const void* data = nullptr;
  size_t nbytes = 0;
  Layout layout = Layout::kRows;  // kPanels: row() means nothing, only matmul reads it

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return shape.empty() ? 1 : numel() / cols(); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes(dtype, cols());
  }
  std::string shape_string() const;
};

}  // namespace slm
