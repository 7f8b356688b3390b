#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace xgrad::io {

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what) {
  auto fail = [&](const std::string& doing, int error = errno) {
    return ValueError(what + ": cannot write '" + path + "' (" + doing + ": " + std::strerror(error) + "); the file was left as it was");
  };
  // A unique name per writer: two processes saving to one path never write into each other's temporary file.
  std::vector<char> tmp(path.begin(), path.end());
  const char suffix[] = ".xgrad-tmp-XXXXXX";
  tmp.insert(tmp.end(), suffix, suffix + sizeof suffix);  // with its terminating zero
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw fail("creating a temporary file beside it");
  const std::string tmp_path(tmp.data());
  auto give_up = [&](const std::string& doing, int error = errno) {
    const ValueError e = fail(doing, error);
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return e;
  };
  if (::fchmod(fd, 0644) != 0) throw give_up("setting its permissions");  // mkstemp makes the file private
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw give_up("writing", n == 0 ? EIO : errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) throw give_up("flushing it to disk");  // before the rename: never a complete-looking empty file
  if (::close(fd) != 0) {
    const ValueError error = fail("closing");
    ::unlink(tmp_path.c_str());
    throw error;
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const ValueError error = fail("renaming the temporary file over it");
    ::unlink(tmp_path.c_str());
    throw error;
  }
  // The folder's entry too, so that a power cut after the rename keeps the new file (best effort: some file
  // systems refuse to sync a folder).
  std::string folder = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  if (folder.empty()) folder = path.find('/') == 0 ? "/" : ".";
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace xgrad::io
