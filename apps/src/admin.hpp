#pragma once
#include <string>

namespace swactor::apps {
// `swactor stats|reload|stop [--pid-file F | --socket PATH]`: sends the command to the
// master's admin socket and prints the reply. Exit 0 on success, 1 when the server cannot
// be reached, 2 on bad arguments. `line` is what is sent (default: cmd), e.g.
// "bus_publish TOPIC MESSAGE" for `swactor bus publish`.
int cmd_admin(const std::string& cmd, const std::string& pid_file, const std::string& socket,
              const std::string& line = {});
}  // namespace swactor::apps
