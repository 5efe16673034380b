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

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::open(const std::string& path) {
  std::unique_ptr<AtomicFileWriter> w(new AtomicFileWriter());
  w->path_ = path;
  w->tmp_ = path + ".tmp." + std::to_string(::getpid());
  w->fd_ = ::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return Status::IoError(fmt::format("cannot create '{}': {}", w->tmp_, errno_text()));
  return w;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

Status AtomicFileWriter::append(const void* data, size_t size) {
  if (fd_ < 0) return Status::Internal("append after commit");
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd_, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(fmt::format("cannot write '{}': {}", tmp_, errno_text()));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status AtomicFileWriter::commit() {
  if (fd_ < 0) return Status::Internal("commit twice");
  if (::fsync(fd_) != 0) return Status::IoError(fmt::format("cannot fsync '{}': {}", tmp_, errno_text()));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    Status st = Status::IoError(fmt::format("cannot rename '{}' to '{}': {}", tmp_, path_, errno_text()));
    ::unlink(tmp_.c_str());
    return st;
  }
  return Status::Ok();
}

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  SLM_ASSIGN_OR_RETURN(auto w, AtomicFileWriter::open(path));
  SLM_RETURN_IF_ERROR(w->append(data, size));
  return w->commit();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace slm
