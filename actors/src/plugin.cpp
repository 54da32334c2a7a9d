#include "swactor/actors/plugin.hpp"

#include <dlfcn.h>

#include <map>
#include <mutex>

namespace swactor {

std::shared_ptr<const loaded_plugin> load_plugin(const std::string& path, std::string& error) {
  // Two instances of one plugin run its registration once; and a path that is loaded stays
  // loaded (dlopen would hand back the same mapping anyway).
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const loaded_plugin>> loaded;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(path); it != loaded.end()) return it->second;

  ::dlerror();
  // RTLD_NODELETE: the registered types point into the library's code, and a module
  // instance may outlive any handle we could count.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) {
    const char* why = ::dlerror();
    error = std::string("cannot load the plugin: ") + (why ? why : "dlopen failed");
    return nullptr;
  }
  ::dlerror();
  void* sym = ::dlsym(handle, plugin_entry_symbol);
  if (!sym) {
    const char* why = ::dlerror();
    error = path + " is not a swactor plugin: no entry point `" + plugin_entry_symbol + "` (dlsym: " +
            (why ? why : "not found") + "); define it with SWACTOR_PLUGIN(register_fn) from <swactor/actors/plugin.hpp>";
    ::dlclose(handle);
    return nullptr;
  }
  auto entry = reinterpret_cast<plugin_entry_fn>(sym);
  auto out = std::make_shared<loaded_plugin>();
  out->path = path;
  int abi = 0;
  try {
    abi = entry(plugin_abi_version, &out->types);
  } catch (const std::exception& e) {
    error = path + ": the plugin's registration threw: " + e.what();
    return nullptr;
  } catch (...) {
    error = path + ": the plugin's registration threw";
    return nullptr;
  }
  if (abi != plugin_abi_version) {
    error = path + " was built for swactor plugin ABI version " + std::to_string(abi) +
            ", this swactor has plugin ABI version " + std::to_string(plugin_abi_version) +
            "; rebuild the plugin against this swactor's installed package";
    return nullptr;
  }
  loaded.emplace(path, out);
  return out;
}

}  // namespace swactor
