// MappedFile: a read-only memory map of a whole file. Weights are views into
// it, so loading a model copies nothing; pages come in as they are touched.
// Immutable after open: safe to read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "slm/core/status.h"

namespace slm {

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string: configs, tokenizer files.
Result<std::string> read_file(const std::string& path, size_t max_bytes = size_t(1) << 30);

// Writes a file atomically: temp file beside it, fsync, rename.
Status write_file_atomic(const std::string& path, const void* data, size_t size);

// The same for a file written piece by piece: append(), then commit(). A
// writer destroyed before commit() removes its temp file; the target is untouched.
class AtomicFileWriter {
 public:
  static Result<std::unique_ptr<AtomicFileWriter>> open(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  Status append(const void* data, size_t size);
  Status commit();

 private:
  AtomicFileWriter() = default;
  int fd_ = -1;
  std::string path_, tmp_;
};

bool file_exists(const std::string& path);

}  // namespace slm
