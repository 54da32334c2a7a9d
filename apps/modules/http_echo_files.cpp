// http_echo's SHA-256 of uploaded files and streamed bodies (OpenSSL EVP): fed as the bytes arrive, or read
// from the temporary file in pieces, so a file is never held in memory whole.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <openssl/evp.h>

#include "modules/http_modules.hpp"

namespace swactor::apps {
namespace {

std::string hex_digest(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(digits[md[i] >> 4]);
    out.push_back(digits[md[i] & 15]);
  }
  return out;
}

}  // namespace

sha256_stream::sha256_stream() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
sha256_stream::~sha256_stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void sha256_stream::feed(std::string_view data) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()); }
std::string sha256_stream::hex() { return hex_digest(static_cast<EVP_MD_CTX*>(ctx_)); }

upload_hasher::upload_hasher() : ctx_(EVP_MD_CTX_new()) {}
upload_hasher::~upload_hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void upload_hasher::on_file_begin(const http::uploaded_file&) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
void upload_hasher::on_file_data(const http::uploaded_file&, std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
void upload_hasher::on_file_end(const http::uploaded_file&) {
  digests_.push_back(hex_digest(static_cast<EVP_MD_CTX*>(ctx_)));
}

std::string sha256_of(const http::uploaded_file& f) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  if (f.temp_path.empty()) {
    EVP_DigestUpdate(ctx.get(), f.content.data(), f.content.size());
    return hex_digest(ctx.get());
  }
  int fd = ::open(f.temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string buf(64 * 1024, '\0');
  for (;;) {
    auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return hex_digest(ctx.get());
}

}  // namespace swactor::apps
