#include "core/plugin.h"

#include <dlfcn.h>

namespace xgrad {

std::string open_plugin(const std::string& file_name, const std::string& what, bool global) {
  Dl_info self{};
  if (!dladdr(reinterpret_cast<void*>(&open_plugin), &self) || !self.dli_fname)
    return "cannot locate the xgrad library to find " + file_name + " beside it";
  std::string dir(self.dli_fname);
  const std::size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  if (!dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL))
    return "cannot make xgrad's symbols visible to " + what + ": " + dlerror();
  if (!dlopen((dir + "/" + file_name).c_str(), RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)))
    return what + " could not be loaded: " + dlerror();
  return "";
}

}  // namespace xgrad
