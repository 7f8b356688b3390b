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
  auto fail = [&](const std::string& doing) {
    return ValueError(what + ": cannot write '" + path + "' (" + doing + ": " + std::strerror(errno) + "); the file was left as it was");
  };
  // A unique name per writer: two processes saving to one path never write into each other's temporary file.
  std::vector<char> tmp(path.begin(), path.end());
  const char suffix[] = ".xgrad-tmp-XXXXXX";
  tmp.insert(tmp.end(), suffix, suffix + sizeof suffix);  // with its terminating zero
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw fail("creating a temporary file beside it");
  const std::string tmp_path(tmp.data());
  auto give_up = [&](const std::string& doing) {
    const ValueError error = fail(doing);
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return error;
  };
  if (::fchmod(fd, 0644) != 0) throw give_up("setting its permissions");  // mkstemp makes the file private
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw give_up("writing");
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
}

}  // namespace xgrad::io
