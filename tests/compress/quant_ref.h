// The rand-2m model of ../shared/data/models/quant-ref, which llama.cpp
// quantized to every type beside it, quantized by slm (rtn) for comparison.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "slm/compress/format.h"
#include "slm/compress/quantize.h"
#include "test_util.h"

namespace slm {

inline std::string quant_ref_dir() { return test::shared_data("models/quant-ref/"); }

// Our file of rand-2m-f32.gguf in `type`: its path, or "" (and a test failure) when quantizing failed.
inline std::string quantize_rand_2m(const std::string& type) {
  const std::string out = ::testing::TempDir() + "/slm_rand2m_" + type + "." + std::to_string(::getpid()) + ".gguf";
  compress::QuantizeOptions opt;
  auto f = compress::parse_quant_format(type, -1);
  if (!f.ok()) {
    ADD_FAILURE() << f.status().to_string();
    return "";
  }
  opt.format = *f;
  auto rep = compress::quantize_gguf(quant_ref_dir() + "rand-2m-f32.gguf", out, opt);
  if (!rep.ok()) {
    ADD_FAILURE() << rep.status().to_string();
    return "";
  }
  return out;
}

}  // namespace slm
