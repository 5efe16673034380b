#include "slm/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slm {

namespace {
std::string errno_text() { return std::strerror(errno); }

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};
}  // namespace

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return Status::IoError(fmt::format("cannot open '{}': {}", path, errno_text()));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return Status::IoError(fmt::format("cannot stat '{}': {}", path, errno_text()));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(fmt::format("'{}' is not a regular file", path));
  std::unique_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (p == MAP_FAILED) return Status::IoError(fmt::format("cannot map '{}': {}", path, errno_text()));
    m->data_ = static_cast<const uint8_t*>(p);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return Status::IoError(fmt::format("cannot open '{}': {}", path, errno_text()));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return Status::IoError(fmt::format("cannot stat '{}': {}", path, errno_text()));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(fmt::format("'{}' is not a regular file", path));
  if (static_cast<size_t>(st.st_size) > max_bytes)
    return Status::InvalidArgument(fmt::format("'{}' is {} bytes, more than the {} allowed", path, st.st_size, max_bytes));
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(f.fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IoError(fmt::format("cannot read '{}': {}", path, n == 0 ? "short read" : errno_text()));
    got += static_cast<size_t>(n);
  }
  return out;
}

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) return Status::IoError(fmt::format("cannot create '{}': {}", tmp, errno_text()));
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(f.fd, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::unlink(tmp.c_str());
      return Status::IoError(fmt::format("cannot write '{}': {}", tmp, errno_text()));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(f.fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError(fmt::format("cannot fsync '{}': {}", tmp, errno_text()));
  }
  ::close(f.fd);
  f.fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError(fmt::format("cannot rename '{}' to '{}': {}", tmp, path, errno_text()));
  }
  return Status::Ok();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace slm
