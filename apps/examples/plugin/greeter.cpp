// The plugin's entry point: registers the greeter module type (greeter.hpp).
#include <swactor/actors/plugin.hpp>

#include "greeter.hpp"

namespace {

void register_types(swactor::module_registry& registry) { registry.add<greeter_example::greeter>(); }

}  // namespace

SWACTOR_PLUGIN(register_types)
