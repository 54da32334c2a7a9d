#pragma once
#include <string>

namespace swactor::apps {
// `swactor run FILE`: exit status of the process.
int cmd_run(const std::string& file);
}  // namespace swactor::apps
