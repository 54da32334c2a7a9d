#pragma once
// The built-in modules, registered at compile time.

#include "swactor/actors/module.hpp"

namespace swactor::apps {

const module_registry& builtin_modules();

}  // namespace swactor::apps
