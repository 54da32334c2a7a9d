#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/steady_timer.hpp>

#include "swactor/core/log.hpp"
#include "swactor/core/plain_io.hpp"
#include "net/socket_waits.hpp"

namespace swactor::net {

// -- contexts -------------------------------------------------------------------------------

class tls_context {
 public:
  explicit tls_context(std::chrono::milliseconds timeout) : handshake_timeout(timeout) {}
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  SSL_CTX* initial() const noexcept { return const_cast<asio::ssl::context&>(main).native_handle(); }

  asio::ssl::context main{asio::ssl::context::tls_server};
  struct sni_entry {
    std::string host;  // lower case; "*.example.com" for a wildcard
    std::unique_ptr<asio::ssl::context> ctx;
  };
  std::vector<sni_entry> sni;
  std::string alpn_wire;  // ALPN protocols in wire format (length-prefixed), our preference order
  std::string ocsp_der;   // stapled for `main`'s certificate
  std::string passphrase;
  std::chrono::milliseconds handshake_timeout;
};

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// OpenSSL's error queue as text (the earliest error first), emptied.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Reads a whole file; the reason in `error` when it cannot.
std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool host_matches(const std::string& pattern, const std::string& name) {
  if (pattern.starts_with("*.")) {
    auto suffix = std::string_view(pattern).substr(1);  // ".example.com"
    if (name.size() <= suffix.size() || !name.ends_with(suffix)) return false;
    auto label = std::string_view(name).substr(0, name.size() - suffix.size());
    return label.find('.') == std::string_view::npos;
  }
  return pattern == name;
}

int on_servername(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const tls_context*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  auto host = lower(name);
  for (const auto& e : self->sni)
    if (host_matches(e.host, host)) {
      SSL_set_SSL_CTX(ssl, e.ctx->native_handle());
      break;
    }
  return SSL_TLSEXT_ERR_OK;  // no match: the listener's own certificate
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
            void* arg) {
  const auto* self = static_cast<const tls_context*>(arg);
  unsigned char* chosen = nullptr;
  unsigned char len = 0;
  // Our order wins (SSL_select_next_proto walks its first list).
  if (SSL_select_next_proto(&chosen, &len, reinterpret_cast<const unsigned char*>(self->alpn_wire.data()),
                            static_cast<unsigned>(self->alpn_wire.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // nothing in common: go on without ALPN
  *out = chosen;
  *outlen = len;
  return SSL_TLSEXT_ERR_OK;
}

int on_status(SSL* ssl, void* arg) {
  const auto* self = static_cast<const tls_context*>(arg);
  // Only `main`'s certificate has a response; a client served an sni certificate gets none.
  if (self->ocsp_der.empty() || SSL_get_SSL_CTX(ssl) != self->initial()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(self->ocsp_der.size()));
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, self->ocsp_der.data(), self->ocsp_der.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(self->ocsp_der.size()));  // takes ownership
  return SSL_TLSEXT_ERR_OK;
}

// The passphrase for an encrypted key; never prompts on a terminal (no passphrase = fail).
int on_passphrase(char* buf, int size, int, void* arg) {
  const auto* pass = static_cast<const std::string*>(arg);
  if (!pass || pass->empty() || static_cast<int>(pass->size()) > size) return -1;
  std::memcpy(buf, pass->data(), pass->size());
  return static_cast<int>(pass->size());
}

int version_of(const std::string& name) {
  if (name == "TLSv1") return TLS1_VERSION;
  if (name == "TLSv1.1") return TLS1_1_VERSION;
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  return TLS1_3_VERSION;
}

// Everything but the certificate, identical on `main` and every sni context (after an SNI
// switch OpenSSL takes verification, ALPN and tickets from the new context).
bool configure(SSL_CTX* ctx, tls_context& self, const tls_config& tc, const ticket_keys* keys, tls_problem& p) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes and a moving buffer: the connection retries a blocked write from its own
  // queue. Released buffers: an idle TLS connection keeps no 16 KiB record buffers.
  // Read-ahead: one recv takes every record that has arrived (the BIO serves it).
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  int lo = TLS1_3_VERSION, hi = TLS1_VERSION;
  for (const auto& v : tc.protocols) {
    lo = std::min(lo, version_of(v));
    hi = std::max(hi, version_of(v));
  }
  SSL_CTX_set_min_proto_version(ctx, lo);
  SSL_CTX_set_max_proto_version(ctx, hi);
  ERR_clear_error();
  if (!tc.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, tc.ciphers.c_str()) != 1) {
    p = {"ciphers", -1, "OpenSSL accepts no cipher in \"" + tc.ciphers + "\": " + openssl_errors()};
    return false;
  }
  if (!tc.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, tc.ciphersuites.c_str()) != 1) {
    p = {"ciphersuites", -1, "OpenSSL refuses the TLS 1.3 ciphersuites \"" + tc.ciphersuites + "\": " + openssl_errors()};
    return false;
  }
  if (!tc.curves.empty() && SSL_CTX_set1_groups_list(ctx, tc.curves.c_str()) != 1) {
    p = {"curves", -1, "OpenSSL refuses the groups \"" + tc.curves + "\": " + openssl_errors()};
    return false;
  }
  // Tickets only: every worker can resume them; a per-process session cache could not.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (tc.session_tickets) {
    if (keys && SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<unsigned char*>(keys->data()),
                                               static_cast<long>(keys->size())) != 1) {
      p = {"session_tickets", -1, "cannot install the ticket keys: " + openssl_errors()};
      return false;
    }
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  // A resumed session must come from the same listener settings (and is required by
  // OpenSSL with client verification).
  unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
  unsigned int sid_len = 0;
  std::string tag = tc.cert + "|" + tc.ca + "|" + tc.verify_client;
  EVP_Digest(tag.data(), tag.size(), sid, &sid_len, EVP_sha256(), nullptr);
  SSL_CTX_set_session_id_context(ctx, sid, std::min<unsigned>(sid_len, SSL_MAX_SID_CTX_LENGTH));
  if (tc.verify_client != "none") {
    if (SSL_CTX_load_verify_locations(ctx, tc.ca.c_str(), nullptr) != 1) {
      p = {"ca", -1, "cannot load the CA file " + tc.ca + ": " + openssl_errors()};
      return false;
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tc.ca.c_str())) SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (tc.verify_client == "required") mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  if (!self.alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx, on_alpn, &self);
  return true;
}

bool load_pair(SSL_CTX* ctx, const tls_context& self, const std::string& cert, const std::string& key,
               const std::string& cert_key, const std::string& key_key, int sni, tls_problem& p) {
  std::string error;
  if (!read_file(cert, error)) {
    p = {cert_key, sni, error};
    return false;
  }
  auto key_text = read_file(key, error);
  if (!key_text) {
    p = {key_key, sni, error};
    return false;
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    p = {cert_key, sni, "cannot load the certificate chain " + cert + " (expected PEM): " + openssl_errors()};
    return false;
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key_text->data(), static_cast<int>(key_text->size())),
                                                BIO_free);
  EVP_PKEY* pkey =
      PEM_read_bio_PrivateKey(bio.get(), nullptr, on_passphrase, const_cast<std::string*>(&self.passphrase));
  if (!pkey) {
    bool encrypted = key_text->find("ENCRYPTED") != std::string::npos;
    p = {key_key, sni,
         "cannot load the private key " + key + " (expected PEM): " + openssl_errors() +
             (encrypted && self.passphrase.empty() ? " (the key is encrypted: set passphrase_file)" : "")};
    return false;
  }
  bool ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(pkey);
  if (!ok) {
    p = {key_key, sni, "the private key " + key + " does not match the certificate " + cert + ": " + openssl_errors()};
    return false;
  }
  return true;
}

}  // namespace

bool make_ticket_keys(ticket_keys& out) { return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1; }

std::shared_ptr<const tls_context> make_tls_context(const tls_config& tc, const ticket_keys* keys,
                                                    tls_problem& p) {
  // Loading leaves errors queued even on success (PEM's end of file): the transports need
  // this thread's queue empty.
  struct clear_errors {
    ~clear_errors() { ERR_clear_error(); }
  } on_exit;
  auto self = std::make_shared<tls_context>(tc.handshake_timeout);
  std::string error;
  if (!tc.passphrase_file.empty()) {
    auto text = read_file(tc.passphrase_file, error);
    if (!text) {
      p = {"passphrase_file", -1, error};
      return nullptr;
    }
    self->passphrase = text->substr(0, text->find_first_of("\r\n"));
  }
  for (const auto& a : tc.alpn) {
    self->alpn_wire += static_cast<char>(a.size());
    self->alpn_wire += a;
  }
  if (!tc.ocsp_file.empty()) {
    auto der = read_file(tc.ocsp_file, error);
    if (!der) {
      p = {"ocsp_file", -1, error};
      return nullptr;
    }
    const auto* d = reinterpret_cast<const unsigned char*>(der->data());
    OCSP_RESPONSE* r = d2i_OCSP_RESPONSE(nullptr, &d, static_cast<long>(der->size()));
    if (!r) {
      p = {"ocsp_file", -1, tc.ocsp_file + " is not a DER OCSP response: " + openssl_errors()};
      return nullptr;
    }
    OCSP_RESPONSE_free(r);
    self->ocsp_der = std::move(*der);
  }
  SSL_CTX* main = self->main.native_handle();
  if (!configure(main, *self, tc, keys, p) ||
      !load_pair(main, *self, tc.cert, tc.key, "cert", "key", -1, p))
    return nullptr;
  for (std::size_t i = 0; i < tc.sni.size(); ++i) {
    const auto& e = tc.sni[i];
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    if (!configure(ctx->native_handle(), *self, tc, keys, p) ||
        !load_pair(ctx->native_handle(), *self, e.cert, e.key, "cert", "key", static_cast<int>(i), p))
      return nullptr;
    self->sni.push_back({lower(e.host), std::move(ctx)});
  }
  if (!self->sni.empty()) {
    SSL_CTX_set_tlsext_servername_callback(main, on_servername);
    SSL_CTX_set_tlsext_servername_arg(main, self.get());
  }
  if (!self->ocsp_der.empty()) {
    SSL_CTX_set_tlsext_status_cb(main, on_status);
    SSL_CTX_set_tlsext_status_arg(main, self.get());
  }
  return self;
}

std::optional<tls_problem> check_tls(const tls_config& tc) {
  tls_problem p;
  if (make_tls_context(tc, nullptr, p)) return std::nullopt;
  return p;
}

// -- store ----------------------------------------------------------------------------------

bool tls_store::build(std::vector<std::shared_ptr<const tls_context>>& out, std::string& error) const {
  out.assign(app_->listen.size(), nullptr);
  for (std::size_t i = 0; i < app_->listen.size(); ++i) {
    const auto& lc = app_->listen[i];
    if (!lc.tls.enabled) continue;
    tls_problem p;
    out[i] = make_tls_context(lc.tls, keys_, p);
    if (!out[i]) {
      std::string key = "tls";
      if (p.sni >= 0) key += ".sni[" + std::to_string(p.sni) + "]";
      if (!p.key.empty()) key += "." + p.key;
      error = "listener " + lc.url + ": " + key + ": " + p.text;
      return false;
    }
  }
  return true;
}

bool tls_store::load(const app_config& app, const ticket_keys* keys, std::string& error) {
  app_ = &app;
  keys_ = keys;
  count_ = 0;
  for (const auto& lc : app.listen) count_ += lc.tls.enabled ? 1 : 0;
  std::vector<std::shared_ptr<const tls_context>> fresh;
  if (!build(fresh, error)) return false;
  std::lock_guard lock(mutex_);
  contexts_ = std::move(fresh);
  return true;
}

bool tls_store::reload(std::string& error) {
  if (!app_ || count_ == 0) return true;
  std::vector<std::shared_ptr<const tls_context>> fresh;
  if (!build(fresh, error)) return false;
  std::lock_guard lock(mutex_);
  contexts_.swap(fresh);
  return true;  // the old contexts go when their last connection does
}

std::shared_ptr<const tls_context> tls_store::get(int listener) const {
  std::lock_guard lock(mutex_);
  auto i = static_cast<std::size_t>(listener);
  return i < contexts_.size() ? contexts_[i] : nullptr;
}

// -- the transport --------------------------------------------------------------------------

namespace {

bool would_block(const std::error_code& ec) { return ec == std::errc::operation_would_block; }

// One write hands OpenSSL at most this much of a gathered queue (records are 16 KiB).
constexpr std::size_t kCoalesce = 64 * 1024;

// TLS over a bare non-blocking descriptor whose readiness comes from the loop's epoll set
// (swactor/core/readiness.hpp), as the plain socket transport's does: an event marks the
// socket as worth reading and completes the pending wait; OpenSSL reads it through the BIO.
class tls_transport final : public transport, public socket_waits {
 public:
  tls_transport(asio::io_context& io, int fd, std::shared_ptr<const tls_context> ctx)
      : socket_waits(io, fd), ctx_(std::move(ctx)), ssl_(SSL_new(ctx_->initial())) {
    if (!ssl_) return;
    BIO* bio = BIO_new(socket_bio_method());
    if (!bio) {
      SSL_free(ssl_);
      ssl_ = nullptr;
      return;
    }
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // the SSL owns it
    SSL_set_accept_state(ssl_);
  }
  // (A descriptor never closed, after a failed start, is closed by socket_waits: no
  // close_notify, no reset.)
  ~tls_transport() override {
    if (ssl_) SSL_free(ssl_);
  }

  using socket_waits::io;
  using socket_waits::open;
  SSL* ssl() const noexcept { return ssl_; }
  void mark_fatal() noexcept { fatal_ = true; }

  // The handshake is done: note what it negotiated (info() reports it).
  void established() {
    ready_ = true;
    info_.version = SSL_get_version(ssl_);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) info_.cipher = SSL_CIPHER_get_name(c);
    if (const char* n = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) info_.sni = n;
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &proto, &len);
    if (proto) info_.alpn.assign(reinterpret_cast<const char*>(proto), len);
    info_.resumed = SSL_session_reused(ssl_) == 1;
    if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
      if (BIO* b = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0) info_.peer_subject.assign(data, static_cast<std::size_t>(n));
        BIO_free(b);
      }
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int md_len = 0;
      if (X509_digest(peer, EVP_sha256(), md, &md_len) == 1) {
        static constexpr char hex[] = "0123456789ABCDEF";
        for (unsigned i = 0; i < md_len; ++i) {
          if (i) info_.peer_fingerprint += ':';
          info_.peer_fingerprint += hex[md[i] >> 4];
          info_.peer_fingerprint += hex[md[i] & 15];
        }
      }
      X509_free(peer);
    }
  }

  // No ERR_clear_error() before each call (it costs more than a small record's crypto):
  // every failure path below, the handshake and make_tls_context leave this thread's error
  // queue empty, which is what SSL_get_error() needs.
  std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) override {
    read_seen();
    if (nothing_to_read()) {  // an SSL_read now would only say WANT_READ
      ec = make_error_code(std::errc::operation_would_block);
      return 0;
    }
    std::size_t got = 0;
    if (SSL_read_ex(ssl_, buf, n, &got) == 1) {
      ec.clear();
      return got;
    }
    return failed(SSL_get_error(ssl_, 0), ec, true);
  }

  std::size_t write_some(const iovec* iov, int count, std::error_code& ec) override {
    const char* p = static_cast<const char*>(iov[0].iov_base);
    std::size_t len = iov[0].iov_len;
    // SSL_write takes one buffer: gather small pieces (bounded, and never less than a
    // blocked write was given: OpenSSL requires its retry to be at least as long).
    if (count > 1 && len < kCoalesce) {
      thread_local std::string scratch;
      scratch.clear();
      for (int i = 0; i < count && scratch.size() < kCoalesce; ++i)
        scratch.append(static_cast<const char*>(iov[i].iov_base),
                       std::min(iov[i].iov_len, kCoalesce - scratch.size()));
      p = scratch.data();
      len = scratch.size();
    }
    std::size_t total = 0;
    while (total < len) {
      std::size_t put = 0;
      if (SSL_write_ex(ssl_, p + total, len - total, &put) == 1) {
        total += put;
        continue;
      }
      std::error_code e;
      failed(SSL_get_error(ssl_, 0), e, false);
      if (total > 0 && would_block(e)) break;  // the rest waits for writability
      ec = e;
      return total;
    }
    ec.clear();
    return total;
  }

  // The record layer may have to write first (rare: a key update's answer): room then ends
  // the reader's wait.
  void wait_readable(std::shared_ptr<io_owner> owner) override { wait_read(std::move(owner), want_write_); }
  void wait_writable(std::shared_ptr<io_owner> owner) override { wait_write(std::move(owner)); }

  void on_ready(std::uint32_t events) override {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) sock_more_ = true;  // the BIO reads the socket again
    socket_waits::on_ready(events);
  }

  void shutdown() noexcept override {
    notify_close();
    if (fd() >= 0) ::shutdown(fd(), SHUT_WR);
  }
  void close(bool reset) noexcept override {
    if (fd() < 0) return;
    if (!reset) notify_close();
    close_descriptor(reset);
  }
  bool is_open() const noexcept override { return fd() >= 0; }
  int native_handle() const noexcept override { return fd(); }
  const tls_info* tls() const noexcept override { return &info_; }

 private:
  // An SSL_read/SSL_write that did not complete, as the transport's error model.
  std::size_t failed(int err, std::error_code& ec, bool reading) {
    int sys = errno;
    switch (err) {
      case SSL_ERROR_WANT_READ:
        want_write_ = false;
        ec = make_error_code(std::errc::operation_would_block);
        return 0;
      case SSL_ERROR_WANT_WRITE:
        want_write_ = true;
        ec = make_error_code(std::errc::operation_would_block);
        return 0;
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
        ERR_clear_error();
        if (reading) {
          ec.clear();
        } else {
          ec = make_error_code(std::errc::broken_pipe);
        }
        return 0;
      case SSL_ERROR_SYSCALL:
        fatal_ = true;
        ERR_clear_error();
        if (sys != 0) {
          ec = std::error_code(sys, std::system_category());
        } else if (reading) {
          ec.clear();  // the peer closed without close_notify
        } else {
          ec = make_error_code(std::errc::broken_pipe);
        }
        return 0;
      default:
        fatal_ = true;
        ec = std::error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
        ERR_clear_error();
        return 0;
    }
  }

  // No ciphertext anywhere (the socket as far as we know, OpenSSL's read-ahead) and no
  // plaintext held: an SSL_read now would only report WANT_READ.
  bool nothing_to_read() const noexcept {
    return !sock_more_ && !eof_ && !want_write_ && SSL_has_pending(ssl_) == 0;
  }

  // -- the BIO under the SSL: the socket itself --------------------------------------------

  static BIO_METHOD* socket_bio_method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "swactor socket");
      BIO_meth_set_read_ex(b, [](BIO* bio, char* out, std::size_t n, std::size_t* got) {
        return static_cast<tls_transport*>(BIO_get_data(bio))->bio_read(bio, out, n, got);
      });
      BIO_meth_set_write_ex(b, [](BIO* bio, const char* p, std::size_t n, std::size_t* put) {
        return static_cast<tls_transport*>(BIO_get_data(bio))->bio_write(bio, p, n, put);
      });
      BIO_meth_set_ctrl(b, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
      return b;
    }();
    return m;
  }

  // 1 = bytes; 0 with no retry flag = end of stream or an error (errno tells which).
  int bio_read(BIO* bio, char* out, std::size_t n, std::size_t* got) {
    BIO_clear_retry_flags(bio);
    if (eof_) {
      errno = 0;
      return 0;
    }
    if (!sock_more_) {  // the last read emptied the socket: wait for the next edge
      BIO_set_retry_read(bio);
      return 0;
    }
    ssize_t r;
    do r = plain_io::recv(fd(), out, n);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
      if (static_cast<std::size_t>(r) < n) sock_more_ = false;
      *got = static_cast<std::size_t>(r);
      return 1;
    }
    if (r == 0) {
      eof_ = true;
      errno = 0;
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      sock_more_ = false;
      BIO_set_retry_read(bio);
    }
    return 0;
  }

  int bio_write(BIO* bio, const char* p, std::size_t n, std::size_t* put) {
    BIO_clear_retry_flags(bio);
    ssize_t r;
    do r = plain_io::send(fd(), p, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
      *put = static_cast<std::size_t>(r);
      return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
    return 0;
  }

  // close_notify, once, without waiting for the peer's (bounded: one non-blocking write;
  // if the socket is full it is skipped).
  void notify_close() noexcept {
    if (!ready_ || fatal_ || shut_ || !ssl_) return;
    shut_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }

  std::shared_ptr<const tls_context> ctx_;  // the context this connection was made with
  SSL* ssl_;
  tls_info info_;
  bool ready_ = false;
  bool fatal_ = false;
  bool shut_ = false;
  bool want_write_ = false;
  bool eof_ = false;        // the peer closed its side (seen by a read)
  bool sock_more_ = true;   // the socket may hold bytes (an event since the read that drained it)
};

class handshake_op final : public tls_handshake, public io_owner, public std::enable_shared_from_this<handshake_op> {
 public:
  handshake_op(std::unique_ptr<tls_transport> t, tls_done done)
      : t_(std::move(t)), timer_(t_->io()), done_(std::move(done)) {}

  void start(std::chrono::milliseconds timeout) {
    if (!t_->ssl()) {
      fail("cannot create a TLS session: " + openssl_errors());
      return;
    }
    if (auto ec = t_->open()) {
      fail("cannot register the socket with the loop: " + ec.message());
      return;
    }
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), timeout](std::error_code ec) {
      if (!ec) self->fail("handshake not finished within handshake_timeout (" + std::to_string(timeout.count()) + " ms)");
    });
    step();
  }

  void cancel() noexcept override { fail("cancelled (server stopping)"); }
  bool done() const noexcept override { return finished_; }

  // The socket is ready for the step that waited (the transport's wait on the loop's epoll set).
  void on_readable(std::error_code ec) override { resume(ec); }
  void on_writable(std::error_code ec) override { resume(ec); }

 private:
  void step() {
    if (finished_) return;
    ERR_clear_error();
    int r = SSL_do_handshake(t_->ssl());
    if (r == 1) {
      succeed();
      return;
    }
    int err = SSL_get_error(t_->ssl(), r);
    int sys = errno;
    if (err == SSL_ERROR_WANT_READ) {
      t_->wait_readable(shared_from_this());
      return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      t_->wait_writable(shared_from_this());
      return;
    }
    std::string why;
    if (err == SSL_ERROR_SSL) {
      why = openssl_errors();
      long v = SSL_get_verify_result(t_->ssl());
      if (v != X509_V_OK) why += " (client certificate: " + std::string(X509_verify_cert_error_string(v)) + ")";
    } else if (err == SSL_ERROR_SYSCALL && sys != 0) {
      why = std::strerror(sys);
    } else {
      why = "the client closed the connection";
    }
    fail(std::move(why));
  }

  void resume(std::error_code ec) {
    if (finished_) return;
    if (ec) {
      fail(ec.message());
      return;
    }
    step();
  }

  void succeed() {
    ERR_clear_error();  // what a callback may have queued: the transport relies on an empty queue
    finished_ = true;
    timer_.cancel();
    t_->established();
    auto done = std::move(done_);
    done(std::move(t_), {});
  }

  void fail(std::string why) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    t_->mark_fatal();  // no close_notify after a failed handshake
    t_->close(false);
    t_.reset();
    auto done = std::move(done_);
    done(nullptr, std::move(why));
  }

  std::unique_ptr<tls_transport> t_;
  asio::steady_timer timer_;
  tls_done done_;
  bool finished_ = false;
};

}  // namespace

std::shared_ptr<tls_handshake> start_tls(asio::io_context& io, int fd, std::shared_ptr<const tls_context> ctx,
                                         std::chrono::milliseconds timeout, tls_done done) {
  auto op = std::make_shared<handshake_op>(std::make_unique<tls_transport>(io, fd, std::move(ctx)), std::move(done));
  op->start(timeout);
  return op;
}

}  // namespace swactor::net
