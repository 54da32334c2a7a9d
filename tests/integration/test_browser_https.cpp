// Headless Chromium (Debian's chromium driven by playwright-core) loads a page and a ranged
// media file from http_static over https://, in both modes: the certificate comes from a
// test CA made here (openssl CLI) and the listener sends the chain, so the browser trusts
// the CA's key (node/browser_static.js has the checks).
#include <filesystem>
#include <string>

#include "node_clients.hpp"
#include "server_helpers.hpp"
#include "test_pki.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace node = swactor::testing::node;
using swactor::testing::server::server_under_test;

namespace {

using t::pki::sh;

// `alpn`: the listener's tls.alpn list ("" = its default); `protocol`: what the browser must
// have used then ("" = not checked).
void load_static_site(const std::string& mode, const std::string& alpn, const std::string& protocol) {
  node::require_deps(true);
  // A CA, a server certificate for 127.0.0.1 it signs, and the chain file the listener sends.
  t::pki::test_ca ca("swactor browser test CA", "swactor-browser-https");
  REQUIRE(ca.issue("server", "localhost", "DNS:localhost,IP:127.0.0.1"));
  const auto& dir = ca.dir;
  const auto d = dir.path().string();
  REQUIRE(sh("cd " + d + " && cat server.pem ca.pem > chain.pem"));
  std::string spki;
  REQUIRE(sh("cd " + d +
                 " && openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform der"
                 " | openssl dgst -sha256 -binary | base64",
             &spki));
  while (!spki.empty() && (spki.back() == '\n' || spki.back() == '\r')) spki.pop_back();
  REQUIRE(!spki.empty());

  // The document root: a page and a 300 KiB "video" whose byte i is i % 251.
  std::filesystem::create_directories(dir.path() / "www");
  t::write_file((dir.path() / "www" / "index.html").string(),
                "<!doctype html><meta charset=\"utf-8\"><title>static</title><p id=\"marker\">swactor static</p>\n");
  constexpr std::size_t clip_size = 300 * 1024;
  std::string clip(clip_size, '\0');
  for (std::size_t i = 0; i < clip_size; ++i) clip[i] = static_cast<char>(i % 251);
  t::write_file((dir.path() / "www" / "clip.mp4").string(), clip);

  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2",
                        "[modules.files]\ntype = \"http_static\"\nroot = \"" + d + "/www\"\n\n"
                        "[[listen]]\nurl = \"https://127.0.0.1:{port}\"\nmodule = \"files\"\n"
                        "tls = { cert = \"" + d + "/chain.pem\", key = \"" + d + "/server.key\"" +
                            (alpn.empty() ? "" : ", alpn = " + alpn) + " }\n");
  REQUIRE(srv.started);
  std::vector<std::string> args = {"https://127.0.0.1:" + std::to_string(srv.port) + "/", spki,
                                   std::to_string(clip_size)};
  if (!protocol.empty()) args.push_back(protocol);
  auto r = node::run_script("browser_static.js", args, 150s);
  INFO(r.run.out << r.run.err << "\nserver log:\n" << server_under_test::tail(srv.log()));
  CHECK(r.run.exit_code == 0);
  CHECK(r.not_ok == 0);
  CHECK(r.ok == (protocol.empty() ? 8 : 9));
  if (!protocol.empty()) CHECK(r.has("ok protocol " + protocol));
  CHECK(r.has("ok page over https"));
  CHECK(r.has("ok fetch Range: bytes=100-199 -> 206"));
  CHECK(r.has("ok video request answered 206"));
  srv.stop_and_check();
}

}  // namespace

TEST_CASE("browser: Chromium loads a page and a ranged video file from http_static over https",
          "[http][static][tls][clients][browser]") {
  load_static_site(GENERATE(as<std::string>{}, "base", "process"), "", "http/1.1");
}

TEST_CASE("browser: Chromium negotiates h2 by ALPN and loads the static site over HTTP/2",
          "[http][static][tls][http2][clients][browser]") {
  load_static_site(GENERATE(as<std::string>{}, "base", "process"), "[\"h2\", \"http/1.1\"]", "h2");
}
