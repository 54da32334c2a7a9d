#pragma once
// The plugin ABI: module types that live in a shared library, named by `plugin = "..."` in a
// [modules.NAME] table. A plugin defines its one entry point with SWACTOR_PLUGIN:
//
//   void register_types(swactor::module_registry& r) { r.add<greeter>(); }
//   SWACTOR_PLUGIN(register_types)
//
// swactor dlopens the library wherever the module type is needed: `swactor check`, the
// master (options, user process counts), and every worker, task worker and user process,
// each of which is exec'd and so maps the file as it is at that moment (how a reload picks
// up new code). A plugin is never unloaded.
//
// A plugin resolves swactor's own symbols (module_base's vtable, config, log) from the
// `swactor` executable, which exports them: link it against swactor::module_api only (the
// package's swactor_add_module does), never against swactor's static libraries, or it would
// carry a second copy of their state.

#include <memory>
#include <string>

#include "swactor/actors/module.hpp"

namespace swactor {

// Bumped whenever a change breaks plugins that are already built: module_base's virtual
// functions, the layout of module_type, module_registry, context or the types handlers take,
// the entry point's signature. A plugin built with another number is refused at load, with
// both numbers in the message.
inline constexpr int plugin_abi_version = 5;  // 5: response_handle::pid, bus::target::pid

// The entry point's name and type. It is called with the host's ABI version and returns the
// plugin's; it registers its module types into `reg` only when the two are equal, so nothing
// of a layout that may differ is touched on a mismatch.
inline constexpr const char* plugin_entry_symbol = "swactor_plugin_entry";
using plugin_entry_fn = int (*)(int host_abi_version, module_registry* reg);

// -- host side ----------------------------------------------------------------------------

// A loaded plugin library and the module types it registered.
struct loaded_plugin {
  std::string path;  // absolute path, as given to dlopen
  module_registry types;
};

// dlopens `path` (RTLD_NOW: a missing symbol fails here, not in the middle of a request),
// checks the ABI and collects the module types. Loads of one path in a process share one
// result. On failure returns null and sets `error` (dlerror's text, or the two ABI
// versions).
std::shared_ptr<const loaded_plugin> load_plugin(const std::string& path, std::string& error);

}  // namespace swactor

// Defines the plugin's entry point; `register_fn` is a function taking swactor::module_registry&.
#define SWACTOR_PLUGIN(register_fn)                                                           \
  extern "C" __attribute__((visibility("default"))) int swactor_plugin_entry(               \
      int host_abi_version, ::swactor::module_registry* reg) {                              \
    if (host_abi_version == ::swactor::plugin_abi_version && reg != nullptr) register_fn(*reg); \
    return ::swactor::plugin_abi_version;                                                   \
  }
