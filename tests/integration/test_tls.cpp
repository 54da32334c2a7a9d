// TLS listeners through the real server, in both modes: https:// (curl, openssl s_client),
// tls:// (framed TCP over TLS), protocol versions, SNI, ALPN, mutual TLS, session
// resumption across workers, certificate reload, the handshake timeout and `swactor check`.
// Every certificate is made here with the openssl CLI.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "http_helpers.hpp"
#include "server_helpers.hpp"
#include "test_pki.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace srv = swactor::testing::server;
using nlohmann::json;

namespace {

using t::pki::sh;

// The test CA and what the tests need from it, and a self-signed stranger.
struct test_pki : t::pki::test_ca {
  test_pki() {
    bool ok = issue("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    ok = ok && issue("wild", "*.example.test", "DNS:*.example.test");
    ok = ok && issue("reloaded", "reloaded.test", "DNS:localhost,IP:127.0.0.1");
    ok = ok && issue("client", "test client", "DNS:client.test");
    ok = ok && sh("cd " + dir.path().string() +
                  " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout rogue.key"
                  " -out rogue.pem -days 2 -subj '/CN=rogue' 2>/dev/null");
    // The server's key once more, encrypted (passphrase_file).
    ok = ok && sh("cd " + dir.path().string() +
                  " && openssl pkey -in server.key -aes256 -passout pass:s3cret -out server.enc.key && echo s3cret > pass.txt");
    REQUIRE(ok);
  }

  // A DER OCSP response saying `name`'s certificate is good, signed by the CA (which acts as
  // its own responder), as a CA's OCSP service would hand it to a server to staple.
  bool ocsp_good(const std::string& name, const std::string& out) {
    return sh("cd " + dir.path().string() + " && serial=$(openssl x509 -in " + name +
              ".pem -noout -serial | cut -d= -f2) && subj=$(openssl x509 -in " + name +
              ".pem -noout -subject -nameopt compat | sed 's/^subject=//') && printf 'V\\t300101000000Z\\t\\t%s\\t"
              "unknown\\t%s\\n' \"$serial\" \"$subj\" > index.txt && openssl ocsp -issuer ca.pem -cert " +
              name + ".pem -reqout ocsp-req.der && openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem"
              " -reqin ocsp-req.der -respout " + out + " -ndays 1 2>/dev/null");
  }

  // openssl x509 -fingerprint's form: "AB:CD:...".
  std::string fingerprint(const std::string& name) const {
    std::string out;
    sh("openssl x509 -in " + path(name + ".pem") + " -noout -fingerprint -sha256", &out);
    auto eq = out.find('=');
    auto s = eq == std::string::npos ? out : out.substr(eq + 1);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
};

// openssl s_client against 127.0.0.1:port with `args`; `input` is sent, then the client
// waits `linger` before it closes (so replies and TLS 1.3 tickets arrive). Output: stdout
// and stderr together; ok = the handshake and the session worked.
struct s_client_result {
  bool ok = false;
  std::string out;
};
s_client_result s_client(std::uint16_t port, const std::string& args, const std::string& input = "",
                         const std::string& linger = "0.5") {
  std::string cmd = "(printf '" + input + "'; sleep " + linger + ") | openssl s_client -connect 127.0.0.1:" +
                    std::to_string(port) + " " + args + " 2>&1";
  auto r = t::run({"sh", "-c", cmd}, 20s);
  return {r.exit_code == 0 && r.out.find("Cipher is (NONE)") == std::string::npos &&
              r.out.find("Cipher    : 0000") == std::string::npos,
          r.out};
}

std::string field(const std::string& text, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(text, m, std::regex(pattern)) ? m[1].str() : std::string();
}

// A server with three TLS listeners:
//   {port}:  wss:// (HTTP with upgrades): /ws ws_echo, else http_echo; SNI (*.example.test),
//            handshake_timeout 600ms, the encrypted key
//   {port2}: tls://, the probe module (eof "\n" framing)
//   {port3}: https://, http_echo, client certificates required (mutual TLS)
struct tls_server : srv::server_under_test {
  tls_server(const test_pki& pki, const std::string& mode)
      : server_under_test("mode = \"" + mode + "\"\nworkers = 2\nreactor_threads = 2\nmax_wait_time = \"2s\"\n",
                          config(pki)) {}

  static std::string config(const test_pki& pki) {
    auto p = [&](const char* n) { return pki.path(n); };
    return std::string("[[listen]]\nurl = \"wss://127.0.0.1:{port}\"\n") +
           "routes = [ { path = \"/ws\", module = \"ws_echo\" }, { path = \"/\", module = \"http_echo\" } ]\n" +
           "tls = { cert = \"" + p("server.pem") + "\", key = \"" + p("server.enc.key") + "\", passphrase_file = \"" +
           p("pass.txt") + "\", handshake_timeout = \"600ms\", sni = [ { host = \"*.example.test\", cert = \"" +
           p("wild.pem") + "\", key = \"" + p("wild.key") + "\" } ] }\n" +
           "[[listen]]\nurl = \"tls://127.0.0.1:{port2}\"\nmodule = \"probe\"\nframing = { type = \"eof\", delimiter = "
           "\"\\n\" }\n" +
           "tls = { cert = \"" + p("server.pem") + "\", key = \"" + p("server.key") + "\" }\n" +
           "[[listen]]\nurl = \"https://127.0.0.1:{port3}\"\nmodule = \"http_echo\"\n" +
           "tls = { cert = \"" + p("server.pem") + "\", key = \"" + p("server.key") + "\", ca = \"" + p("ca.pem") +
           "\", verify_client = \"required\" }\n";
  }
};

json curl_json(const test_pki& pki, std::uint16_t port, const std::string& extra = "") {
  auto r = t::run({"sh", "-c", "curl -sS --max-time 10 --cacert " + pki.path("ca.pem") + " " + extra +
                                   " https://127.0.0.1:" + std::to_string(port) + "/hello"},
                  20s);
  INFO("curl: " << r.out << r.err);
  if (r.exit_code != 0) return json();
  try {
    return json::parse(r.out);
  } catch (...) {
    return json();
  }
}

void exercise(const std::string& mode) {
  REQUIRE(t::http::have_tool("openssl"));  // scripts/install-deps.sh installs openssl and curl
  REQUIRE(t::http::have_tool("curl"));
  test_pki pki;
  tls_server s(pki, mode);
  REQUIRE(s.started);
  INFO("mode " << mode);

  // https:// with curl: the request arrives decrypted, info() reports the session.
  auto j = curl_json(pki, s.port);
  REQUIRE(j.is_object());
  CHECK(j["path"] == "/hello");
  REQUIRE(j.contains("tls"));
  CHECK(j["tls"]["version"] == "TLSv1.3");
  CHECK(j["tls"]["alpn"] == "http/1.1");
  CHECK(j["tls"]["peer_subject"] == "");

  // TLS 1.2 and 1.3 handshakes; subject and ALPN as s_client sees them.
  for (const char* v : {"-tls1_2", "-tls1_3"}) {
    auto r = s_client(s.port, std::string(v) + " -alpn h2,http/1.1 -CAfile " + pki.path("ca.pem"),
                      "GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n");
    INFO(r.out);
    CHECK(r.ok);
    CHECK(field(r.out, "Protocol *: (TLSv1\\.[23])") == (std::string(v) == "-tls1_2" ? "TLSv1.2" : "TLSv1.3"));
    CHECK(field(r.out, "ALPN protocol: (\\S+)") == "http/1.1");
    CHECK(field(r.out, "Verify return code: (\\d+)") == "0");
    CHECK(r.out.find("HTTP/1.1 200") != std::string::npos);
  }

  // wss://: an upgrade, then a masked text frame (mask 0) echoed back.
  {
    auto r = s_client(s.port, "-brief",
                      "GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
                      "\\201\\205\\000\\000\\000\\000hello");
    INFO(r.out);
    CHECK(r.out.find("101 Switching Protocols") != std::string::npos);
    CHECK(r.out.find("\x81\x05hello") != std::string::npos);
  }

  // SNI: a name under *.example.test gets that certificate, any other name the listener's.
  {
    auto a = s_client(s.port, "-servername api.example.test -CAfile " + pki.path("ca.pem"));
    INFO(a.out);
    CHECK(a.out.find("CN = *.example.test") != std::string::npos);
    auto b = s_client(s.port, "-servername other.test -CAfile " + pki.path("ca.pem"));
    INFO(b.out);
    CHECK(b.out.find("CN = localhost") != std::string::npos);
    auto deep = s_client(s.port, "-servername a.b.example.test");
    CHECK(deep.out.find("CN = localhost") != std::string::npos);  // a wildcard covers one label
  }

  // tls:// (framed): the probe answers per line; its info() shows the session.
  {
    auto r = s_client(s.port2, "-brief -servername x.test", "whoami\\ninfo\\n");
    INFO(r.out);
    CHECK(r.out.find("worker ") != std::string::npos);
    CHECK(r.out.find("tls_version=TLSv1.3") != std::string::npos);
    CHECK(r.out.find("tls_sni=x.test") != std::string::npos);
  }

  // TLS 1.0 / 1.1 are refused. The client is opened up first and shown to work against a
  // permissive openssl s_server, so this fails if the client, not the server, refuses.
  {
    auto port = t::free_tcp_port();
    t::process ref({"openssl", "s_server", "-accept", std::to_string(port), "-cert", pki.path("server.pem"), "-key",
                    pki.path("server.key"), "-cipher", "DEFAULT:@SECLEVEL=0", "-tls1", "-naccept", "1"});
    REQUIRE(ref.wait_for("ACCEPT", 10s));
    auto ok = s_client(port, "-tls1 -cipher DEFAULT:@SECLEVEL=0", "", "0.2");
    INFO(ok.out);
    REQUIRE(field(ok.out, "Protocol *: (TLSv1)\\b") == "TLSv1");
    for (const char* v : {"-tls1", "-tls1_1"}) {
      auto r = s_client(s.port, std::string(v) + " -cipher DEFAULT:@SECLEVEL=0", "", "0.2");
      INFO(r.out);
      CHECK_FALSE(r.ok);
    }
    CHECK(s.wait_log("TLS handshake with 127\\.0\\.0\\.1:\\d+ failed: .*(unsupported protocol|version)", 5s));
  }

  // Mutual TLS: a trusted client certificate is accepted and reported; none or an untrusted
  // one is refused (a log line each).
  {
    auto ok = curl_json(pki, s.port3, "--cert " + pki.path("client.pem") + " --key " + pki.path("client.key"));
    REQUIRE(ok.is_object());
    CHECK(ok["tls"]["peer_subject"] == "CN=test client");
    CHECK(ok["tls"]["peer_fingerprint"] == pki.fingerprint("client"));
    CHECK_FALSE(curl_json(pki, s.port3).is_object());
    CHECK_FALSE(curl_json(pki, s.port3, "--cert " + pki.path("rogue.pem") + " --key " + pki.path("rogue.key")).is_object());
    CHECK(s.wait_log("failed: .*(peer did not return a certificate|certificate required)", 5s));
    CHECK(s.wait_log("failed: .*certificate verify failed", 5s));
  }

  // Session resumption with a ticket, also on another worker (the keys are shared).
  {
    auto sess = pki.path("session.pem");
    auto first = s_client(s.port2, "-sess_out " + sess, "whoami\\n");
    INFO(first.out);
    REQUIRE(first.ok);
    auto issuer = field(first.out, "worker (\\d+)");
    bool resumed_elsewhere = false, resumed = false;
    for (int i = 0; i < 30 && !resumed_elsewhere; ++i) {
      auto again = s_client(s.port2, "-sess_in " + sess, "whoami\\n");
      bool reused = again.out.find("Reused, TLS") != std::string::npos;
      resumed = resumed || reused;
      if (reused && field(again.out, "worker (\\d+)") != issuer) resumed_elsewhere = true;
    }
    CHECK(resumed);
    CHECK(resumed_elsewhere);
  }

  // A client that stops mid-handshake is closed at handshake_timeout (600ms), with a log line.
  {
    auto c = srv::connect_tcp("127.0.0.1", s.port);
    REQUIRE(c);
    REQUIRE(c.send_all(std::string("\x16\x03\x01\x00\x80", 5)));  // a record header, then nothing
    auto t0 = std::chrono::steady_clock::now();
    CHECK(c.wait_closed(5s));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 400ms);
    CHECK(waited < 3s);
    CHECK(s.wait_log("handshake not finished within handshake_timeout \\(600 ms\\)", 3s));
  }

  // Reload: new connections get the new certificate; one that is open keeps working (process
  // mode: the reactors hold it across the reload); a bad certificate is refused.
  {
    std::optional<t::process> open;
    if (mode == "process") {
      open.emplace(std::vector<std::string>{
          "sh", "-c",
          "(printf 'whoami\\n'; sleep 2.5; printf 'whoami\\n'; sleep 0.7) | openssl s_client -brief -connect 127.0.0.1:" +
              std::to_string(s.port2) + " 2>/dev/null"});
      REQUIRE(open->wait_for("worker \\d+", 10s));
    }
    std::filesystem::copy_file(pki.path("reloaded.pem"), pki.path("server.pem"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(pki.path("reloaded.key"), pki.path("server.key"),
                               std::filesystem::copy_options::overwrite_existing);
    REQUIRE(sh("cd " + pki.dir.path().string() +
               " && openssl pkey -in server.key -aes256 -passout pass:s3cret -out server.enc.key"));
    REQUIRE(s.proc->signal(SIGUSR1));
    REQUIRE(s.wait_log("TLS certificates re-read", 10s));
    REQUIRE(s.wait_log("reload done", 15s));
    auto after = s_client(s.port2, "");
    INFO(after.out);
    CHECK(after.out.find("CN = reloaded.test") != std::string::npos);
    if (open) {
      auto code = open->wait(10s);
      CHECK(code);
      auto out = open->stdout_text();
      INFO(out);
      std::size_t answers = 0;
      for (auto& l : t::lines(out)) answers += l.starts_with("worker ") ? 1 : 0;
      CHECK(answers == 2);  // the second answer came after the reload, on the same connection
    }
    // A broken certificate: the reload is refused and the current one stays.
    t::write_file(pki.path("server.pem"), "not a certificate\n");
    REQUIRE(s.proc->signal(SIGUSR1));
    CHECK(s.wait_log("reload refused.*tls\\.cert: cannot load the certificate chain", 10s));
    // `swactor reload` says so (exit code 1), not just the log.
    auto cli = t::run({t::swactor_bin(), "reload", "--pid-file", s.pid_file}, 30s);
    INFO(cli.out << cli.err);
    CHECK(cli.exit_code == 1);
    CHECK(cli.out.find("reload refused: the new TLS certificates did not load") != std::string::npos);
    CHECK(cli.out.find("cannot load the certificate chain") != std::string::npos);
    auto still = s_client(s.port2, "");
    CHECK(still.out.find("CN = reloaded.test") != std::string::npos);
  }

  s.stop_and_check();
}

}  // namespace

TEST_CASE("tls: https and tls listeners in base mode", "[tls]") { exercise("base"); }

TEST_CASE("tls: https and tls listeners in process mode", "[tls][process]") { exercise("process"); }

// OCSP stapling: a client that asks (status_request) gets the response from ocsp_file; one
// that does not ask gets none; a file that is not an OCSP response is refused at check.
TEST_CASE("tls: OCSP stapling from ocsp_file", "[tls]") {
  REQUIRE(t::http::have_tool("openssl"));
  test_pki pki;
  REQUIRE(pki.ocsp_good("server", "server.ocsp"));
  for (const char* mode : {"base", "process"}) {
    INFO("mode " << mode);
    srv::server_under_test s(std::string("mode = \"") + mode + "\"\nworkers = 1\nmax_wait_time = \"1s\"\n",
                             "[[listen]]\nurl = \"https://127.0.0.1:{port}\"\nmodule = \"http_echo\"\n"
                             "tls = { cert = \"" + pki.path("server.pem") + "\", key = \"" + pki.path("server.key") +
                                 "\", ocsp_file = \"" + pki.path("server.ocsp") + "\" }\n");
    REQUIRE(s.started);
    auto asked = s_client(s.port, "-status -CAfile " + pki.path("ca.pem"));
    INFO(asked.out);
    CHECK(asked.ok);
    CHECK(asked.out.find("OCSP Response Status: successful") != std::string::npos);
    CHECK(asked.out.find("Cert Status: good") != std::string::npos);
    CHECK(field(asked.out, "Serial Number: ([0-9A-F]+)") ==
          [&] {
            std::string o;
            sh("openssl x509 -in " + pki.path("server.pem") + " -noout -serial | cut -d= -f2", &o);
            while (!o.empty() && (o.back() == '\n' || o.back() == '\r')) o.pop_back();
            return o;
          }());
    auto quiet = s_client(s.port, "-status -CAfile " + pki.path("ca.pem"), "", "0.2");
    CHECK(quiet.out.find("OCSP Response Status: successful") != std::string::npos);  // every handshake staples
    auto plain = s_client(s.port, "-CAfile " + pki.path("ca.pem"), "", "0.2");
    CHECK(plain.ok);
    CHECK(plain.out.find("OCSP response") == std::string::npos);  // not asked, not sent
    s.stop_and_check();
  }
  auto cfg = pki.dir.write("app.toml", "[[listen]]\nurl = \"https://127.0.0.1:1\"\nmodule = \"http_echo\"\n"
                                       "tls = { cert = \"server.pem\", key = \"server.key\", ocsp_file = \"pass.txt\" }\n");
  auto bad = t::run({t::swactor_bin(), "check", cfg.string()}, 20s);
  INFO(bad.out << bad.err);
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("listen[0].tls.ocsp_file") != std::string::npos);
  CHECK(bad.err.find("is not a DER OCSP response") != std::string::npos);
}

TEST_CASE("tls: check and run refuse bad TLS settings with file, line and key", "[tls]") {
  REQUIRE(t::http::have_tool("openssl"));
  test_pki pki;
  auto check = [&](const std::string& listen) {
    auto cfg = pki.dir.write("app.toml", "[[listen]]\n" + listen);
    return t::run({t::swactor_bin(), "check", cfg.string()}, 20s);
  };
  auto url = std::string("url = \"https://127.0.0.1:1\"\nmodule = \"http_echo\"\n");
  auto good = check(url + "tls = { cert = \"server.pem\", key = \"server.key\" }\n");  // relative to app.toml
  INFO(good.out << good.err);
  CHECK(good.exit_code == 0);

  auto missing = check(url + "tls = { cert = \"nope.pem\", key = \"server.key\" }\n");
  CHECK(missing.exit_code != 0);
  CHECK(std::regex_search(missing.err, std::regex("app\\.toml:4:.*listen\\[0\\]\\.tls\\.cert.*cannot read .*nope\\.pem")));

  auto mismatch = check(url + "tls = { cert = \"server.pem\", key = \"client.key\" }\n");
  CHECK(mismatch.exit_code != 0);
  CHECK(mismatch.err.find("listen[0].tls.key") != std::string::npos);
  CHECK(mismatch.err.find("does not match the certificate") != std::string::npos);

  auto garbage = check(url + "tls = { cert = \"pass.txt\", key = \"server.key\" }\n");
  CHECK(garbage.err.find("cannot load the certificate chain") != std::string::npos);

  auto encrypted = check(url + "tls = { cert = \"server.pem\", key = \"server.enc.key\" }\n");
  CHECK(encrypted.err.find("set passphrase_file") != std::string::npos);

  auto no_table = check(url);
  CHECK(no_table.err.find("listen[0].tls") != std::string::npos);
  CHECK(no_table.err.find("needs tls = {") != std::string::npos);

  auto bad_version = check(url + "tls = { cert = \"server.pem\", key = \"server.key\", protocols = [\"SSLv3\"] }\n");
  CHECK(bad_version.err.find("listen[0].tls.protocols[0]") != std::string::npos);

  auto no_ca = check(url + "tls = { cert = \"server.pem\", key = \"server.key\", verify_client = \"required\" }\n");
  CHECK(no_ca.err.find("listen[0].tls.ca") != std::string::npos);

  auto plain = check("url = \"tcp://127.0.0.1:1\"\nmodule = \"echo\"\ntls = { cert = \"server.pem\", key = \"server.key\" }\n");
  CHECK(plain.err.find("tls is for TLS listeners") != std::string::npos);

  // HTTP/2 over TLS is ALPN's choice: a prior-knowledge-only switch makes no sense there.
  auto h2_only = check(url + "tls = { cert = \"server.pem\", key = \"server.key\" }\nh2c_only = true\n");
  CHECK(h2_only.exit_code != 0);
  CHECK(std::regex_search(h2_only.err, std::regex("app\\.toml:.*listen\\[0\\]\\.h2c_only.*cleartext HTTP listeners")));

  // `run` refuses the same file at start.
  auto cfg = pki.dir.write("app.toml", "[[listen]]\n" + url + "tls = { cert = \"nope.pem\", key = \"server.key\" }\n");
  auto run = t::run({t::swactor_bin(), "run", cfg.string()}, 20s);
  CHECK(run.exit_code != 0);
  CHECK(run.err.find("listen[0].tls.cert") != std::string::npos);
}
