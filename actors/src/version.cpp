// Library anchor: the library version string.
namespace swactor::actors {
const char* library_name() { return "swactor_actors"; }
}  // namespace swactor::actors
