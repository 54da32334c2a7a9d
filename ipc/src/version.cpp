// Library anchor: the library version string.
namespace swactor::ipc {
const char* library_name() { return "swactor_ipc"; }
}  // namespace swactor::ipc
