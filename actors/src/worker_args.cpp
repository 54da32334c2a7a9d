#include <charconv>

#include "swactor/actors/server.hpp"

namespace swactor {
namespace {

std::string join(const std::vector<int>& fds) {
  if (fds.empty()) return "-";
  std::string out;
  for (int fd : fds) out += (out.empty() ? "" : ",") + std::to_string(fd);
  return out;
}

bool to_int(const std::string& s, int& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool split(const std::string& s, std::vector<int>& out) {
  out.clear();
  if (s == "-" || s.empty()) return true;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    auto part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int v = 0;
    if (!to_int(part, v) || v < 0) return false;
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

}  // namespace

std::vector<std::string> worker_args::to_argv(const std::string& exe) const {
  const char* r = role == proc_role::worker ? "worker" : role == proc_role::task ? "task" : "user";
  return {exe, "worker", "--role", r, "--id", std::to_string(id), "--ipc-fd", std::to_string(ipc_fd),
          "--config-fd", std::to_string(config_fd), "--state-fd", std::to_string(state_fd),
          "--listen-fds", join(listen_fds), "--reactor-fds", join(reactor_fds), "--table-fds", join(table_fds),
          "--config-name", config_name};
}

std::vector<int> worker_args::inherited_fds() const {
  std::vector<int> fds = {ipc_fd, config_fd, state_fd};
  fds.insert(fds.end(), listen_fds.begin(), listen_fds.end());
  fds.insert(fds.end(), reactor_fds.begin(), reactor_fds.end());
  fds.insert(fds.end(), table_fds.begin(), table_fds.end());
  return fds;
}

std::optional<worker_args> worker_args::parse(const std::vector<std::string>& args, std::string& error) {
  worker_args w;
  bool have_role = false, have_id = false, have_ipc = false, have_cfg = false, have_state = false;
  for (std::size_t i = 0; i < args.size(); i += 2) {
    const auto& key = args[i];
    if (i + 1 >= args.size()) {
      error = key + " needs a value";
      return std::nullopt;
    }
    const auto& v = args[i + 1];
    bool ok = true;
    if (key == "--role") {
      have_role = true;
      if (v == "worker") w.role = proc_role::worker;
      else if (v == "task") w.role = proc_role::task;
      else if (v == "user") w.role = proc_role::user;
      else ok = false;
    } else if (key == "--id") {
      have_id = ok = to_int(v, w.id);
    } else if (key == "--ipc-fd") {
      have_ipc = ok = to_int(v, w.ipc_fd);
    } else if (key == "--config-fd") {
      have_cfg = ok = to_int(v, w.config_fd);
    } else if (key == "--state-fd") {
      have_state = ok = to_int(v, w.state_fd);
    } else if (key == "--listen-fds") {
      ok = split(v, w.listen_fds);
    } else if (key == "--reactor-fds") {
      ok = split(v, w.reactor_fds);
    } else if (key == "--table-fds") {
      ok = split(v, w.table_fds);
    } else if (key == "--config-name") {
      w.config_name = v;
    } else {
      error = "unknown option " + key;
      return std::nullopt;
    }
    if (!ok) {
      error = "bad value \"" + v + "\" for " + key;
      return std::nullopt;
    }
  }
  if (!have_role || !have_id || !have_ipc || !have_cfg || !have_state) {
    error = "--role, --id, --ipc-fd, --config-fd and --state-fd are required";
    return std::nullopt;
  }
  return w;
}

}  // namespace swactor
