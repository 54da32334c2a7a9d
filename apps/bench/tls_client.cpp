#include "tls_client.hpp"

#include <stdexcept>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace swactor::bench {

tls_client_context::tls_client_context(std::string_view alpn) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) throw std::runtime_error("cannot create a TLS client context");
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  if (!alpn.empty()) {
    // Wire format: one length byte, then the protocol name.
    std::string wire(1, static_cast<char>(alpn.size()));
    wire += alpn;
    SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
  }
}

tls_client_context::~tls_client_context() { SSL_CTX_free(ctx_); }

tls_client::tls_client(const tls_client_context& ctx, const std::string& server_name) {
  ssl_ = SSL_new(ctx.native());
  if (!ssl_) throw std::runtime_error("cannot create a TLS session");
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_connect_state(ssl_);
  // SNI only for names, never for addresses (RFC 6066 §3).
  if (!server_name.empty() && server_name.find(':') == std::string::npos &&
      server_name.find_first_not_of("0123456789.") != std::string::npos)
    SSL_set_tlsext_host_name(ssl_, server_name.c_str());
}

tls_client::~tls_client() { SSL_free(ssl_); }

void tls_client::drain(std::string& out) {
  char buf[16384];
  for (;;) {
    const int n = BIO_read(wbio_, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool tls_client::failed(int ret) {
  const int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
  if (err == SSL_ERROR_ZERO_RETURN) {
    why_ = "the server closed the TLS session";
  } else {
    char text[256] = "TLS error";
    if (auto code = ERR_get_error()) ERR_error_string_n(code, text, sizeof text);
    why_ = text;
  }
  ERR_clear_error();
  return true;
}

tls_client::step tls_client::handshake(std::string_view in, std::string& out) {
  if (!in.empty()) BIO_write(rbio_, in.data(), static_cast<int>(in.size()));
  const int ret = SSL_do_handshake(ssl_);
  drain(out);
  if (ret == 1) return step::done;
  return failed(ret) ? step::failed : step::more;
}

std::string tls_client::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

bool tls_client::decrypt(std::string_view cipher, std::string& plain) {
  if (!cipher.empty()) BIO_write(rbio_, cipher.data(), static_cast<int>(cipher.size()));
  char buf[16384];
  for (;;) {
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    return !failed(n);
  }
}

bool tls_client::encrypt(std::string_view plain, std::string& cipher) {
  if (!plain.empty()) {
    const int n = SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
    // Memory BIOs grow as needed: a write is whole or an error.
    if (n <= 0 && failed(n)) return false;
  }
  drain(cipher);
  return true;
}

}  // namespace swactor::bench
