#pragma once
// TLS for stream listeners (https://, tls://, wss://), with OpenSSL through asio::ssl.
//
//   accept -> start_tls(): handshake on the connection's loop, bounded by handshake_timeout
//          -> a tls transport (the connection layer's byte pipe) -> conn_host::adopt()
//
// A listener's settings become one tls_context (an SSL_CTX, plus one per `sni` entry); a
// tls_store holds the current context of each listener and swaps it on reload, while open
// connections keep the context they were made with. No OpenSSL or asio::ssl header here:
// this is included by the config parser and the connection host.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "net/transport.hpp"
#include "swactor/actors/app_config.hpp"

namespace swactor::net {

// -- contexts -------------------------------------------------------------------------

// Session ticket keys (name 16, HMAC 32, AES 32 bytes): made once by the master and given
// to every process (server_state), so a ticket issued by one worker resumes on another.
inline constexpr std::size_t kTicketKeyBytes = 80;
using ticket_keys = std::array<unsigned char, kTicketKeyBytes>;
// Fresh random keys (OpenSSL's RAND_bytes); false if the generator failed.
bool make_ticket_keys(ticket_keys& out);

class tls_context;  // one listener's SSL_CTX(s); defined in tls.cpp

// What is wrong with a tls table: the key (relative to the table, "" = the table) or the
// sni entry it concerns, and the reason (with OpenSSL's text where it gave one).
struct tls_problem {
  std::string key;
  int sni = -1;
  std::string text;
};

// Builds a context from resolved settings (absolute paths). `keys` null: OpenSSL's own
// per-context ticket keys (checks, tests).
std::shared_ptr<const tls_context> make_tls_context(const tls_config& tc, const ticket_keys* keys,
                                                    tls_problem& problem);
// Loads everything as make_tls_context does: nullopt = usable (`swactor check`, config).
std::optional<tls_problem> check_tls(const tls_config& tc);

// The current context of each TLS listener of one process. get() may be called from any
// thread (process mode: every reactor); load() and reload() from one.
class tls_store {
 public:
  // Builds every TLS listener's context; false with `error` ("listener URL: key: reason")
  // at the first that fails. `keys` must outlive the store (it points into server_state).
  bool load(const app_config& app, const ticket_keys* keys, std::string& error);
  // Re-reads every certificate and key: all or nothing. On failure nothing changes and
  // `error` says why; open connections keep their context either way.
  bool reload(std::string& error);
  std::shared_ptr<const tls_context> get(int listener) const;
  bool empty() const noexcept { return count_ == 0; }

 private:
  bool build(std::vector<std::shared_ptr<const tls_context>>& out, std::string& error) const;

  const app_config* app_ = nullptr;
  const ticket_keys* keys_ = nullptr;
  std::size_t count_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<const tls_context>> contexts_;  // by listener; null = plain
};

// -- handshake ------------------------------------------------------------------------

// A handshake in progress; cancel() closes the socket (done then runs with "cancelled").
class tls_handshake {
 public:
  virtual ~tls_handshake() = default;
  virtual void cancel() noexcept = 0;
  virtual bool done() const noexcept = 0;
};

// Runs the server handshake on `fd` (a connected non-blocking socket, owned from here on) on
// the loop of `io`, within `timeout`. `done` runs once: with
// the transport and "" on success, with null and the reason (OpenSSL's where it has one)
// otherwise. The returned handle is for cancelling; dropping it does not cancel.
using tls_done = std::function<void(std::unique_ptr<transport>, std::string reason)>;
std::shared_ptr<tls_handshake> start_tls(asio::io_context& io, int fd, std::shared_ptr<const tls_context> ctx,
                                         std::chrono::milliseconds timeout, tls_done done);

}  // namespace swactor::net
