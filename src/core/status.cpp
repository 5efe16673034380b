#include "slm/core/status.h"

namespace slm {

std::string Status::to_string() const {
  const char* name = "ok";
  switch (code_) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: name = "invalid argument"; break;
    case Code::kCorruption: name = "corrupt input"; break;
    case Code::kNotFound: name = "not found"; break;
    case Code::kUnsupported: name = "unsupported"; break;
    case Code::kIoError: name = "I/O error"; break;
    case Code::kInternal: name = "internal error"; break;
  }
  return fmt::format("{}: {}", name, message_);
}

}  // namespace slm
