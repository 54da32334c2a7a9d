// Library anchor: the library version string.
namespace swactor::protocols {
const char* library_name() { return "swactor_protocols"; }
}  // namespace swactor::protocols
