// http_echo's SHA-256 of uploaded files and streamed bodies (OpenSSL EVP): fed as the bytes arrive, or read
// from the temporary file in pieces, so a file is never held in memory whole.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <openssl/evp.h>

#include "modules/http_modules.hpp"

namespace swactor::apps {
namespace {

EVP_MD_CTX* md(void* ctx) { return static_cast<EVP_MD_CTX*>(ctx); }

}  // namespace

sha256_stream::sha256_stream() : ctx_(EVP_MD_CTX_new()) { reset(); }
sha256_stream::~sha256_stream() { EVP_MD_CTX_free(md(ctx_)); }
void sha256_stream::reset() { EVP_DigestInit_ex(md(ctx_), EVP_sha256(), nullptr); }
void sha256_stream::feed(std::string_view data) { EVP_DigestUpdate(md(ctx_), data.data(), data.size()); }

std::string sha256_stream::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(md(ctx_), digest, &n);
  reset();
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(digits[digest[i] >> 4]);
    out.push_back(digits[digest[i] & 15]);
  }
  return out;
}

std::string sha256_of(const http::uploaded_file& f) {
  sha256_stream hash;
  if (f.temp_path.empty()) {
    hash.feed(f.content);
    return hash.hex();
  }
  int fd = ::open(f.temp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string buf(64 * 1024, '\0');
  for (;;) {
    auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    hash.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return hash.hex();
}

}  // namespace swactor::apps
