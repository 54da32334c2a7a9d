#pragma once
// The load tester's TLS client: OpenSSL on memory BIOs, so the runner keeps doing the socket
// I/O (with its timeouts) and TLS only turns bytes into bytes. No certificate check: a load
// tester measures a server, it does not trust it (as h2load).

#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace swactor::bench {

// One per run: the client context, offering `alpn` (empty: no ALPN).
class tls_client_context {
 public:
  explicit tls_client_context(std::string_view alpn);  // throws std::runtime_error
  ~tls_client_context();
  tls_client_context(const tls_client_context&) = delete;
  tls_client_context& operator=(const tls_client_context&) = delete;
  ssl_ctx_st* native() const noexcept { return ctx_; }

 private:
  ssl_ctx_st* ctx_ = nullptr;
};

// One per connection.
class tls_client {
 public:
  tls_client(const tls_client_context& ctx, const std::string& server_name);
  ~tls_client();
  tls_client(const tls_client&) = delete;
  tls_client& operator=(const tls_client&) = delete;

  enum class step { more, done, failed };
  // Handshake: `in` is what the server sent since the last call; what to send is appended
  // to `out`. failed: why() says why.
  step handshake(std::string_view in, std::string& out);
  // The ALPN protocol the server chose ("" when none).
  std::string alpn() const;
  // Application data: ciphertext in, plaintext appended to `plain`. false: a TLS error or
  // the peer's close_notify (why()).
  bool decrypt(std::string_view cipher, std::string& plain);
  // Plaintext in, ciphertext appended to `cipher`.
  bool encrypt(std::string_view plain, std::string& cipher);
  const std::string& why() const noexcept { return why_; }

 private:
  void drain(std::string& out);
  bool failed(int ret);

  ssl_st* ssl_ = nullptr;
  bio_st* rbio_ = nullptr;  // network -> OpenSSL (owned by ssl_)
  bio_st* wbio_ = nullptr;  // OpenSSL -> network (owned by ssl_)
  std::string why_;
};

}  // namespace swactor::bench
