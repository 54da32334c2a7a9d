#pragma once
// Certificates for the TLS tests, made by the openssl CLI in a temporary directory: a test
// CA and certificates it issues (EC P-256 keys: quick to make).
#include <string>

#include <catch2/catch.hpp>

#include "harness.hpp"

namespace swactor::testing::pki {

// Runs `cmd` with sh (30 s at most); `out` gets stdout and stderr. A failure is a WARN with
// the output, so the REQUIRE that follows says what went wrong.
inline bool sh(const std::string& cmd, std::string* out = nullptr) {
  using namespace std::chrono_literals;
  auto r = run({"sh", "-c", cmd}, 30s);
  if (out) *out = r.out + r.err;
  if (r.exit_code != 0) WARN("command failed: " << cmd << "\n" << r.out << r.err);
  return r.exit_code == 0;
}

// ca.pem / ca.key in a fresh temporary directory.
struct test_ca {
  temp_dir dir;

  explicit test_ca(const std::string& cn = "swactor test CA", std::string_view prefix = "swactor-tls") : dir(prefix) {
    REQUIRE(sh("cd " + dir.path().string() +
               " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
               " -out ca.pem -days 2 -subj '/CN=" + cn + "' 2>/dev/null"));
  }

  std::string path(const std::string& name) const { return dir.file(name).string(); }

  // `name`.pem / `name`.key with `cn` and subjectAltName `san`, signed by the CA.
  bool issue(const std::string& name, const std::string& cn, const std::string& san) {
    auto ext = dir.write(name + ".ext", "subjectAltName=" + san + "\n").string();
    return sh("cd " + dir.path().string() + " && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" +
              " -keyout " + name + ".key -out " + name + ".csr -subj '/CN=" + cn + "' 2>/dev/null && openssl x509 -req -in " +
              name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out " + name + ".pem -extfile " + ext +
              " 2>/dev/null");
  }
};

}  // namespace swactor::testing::pki
