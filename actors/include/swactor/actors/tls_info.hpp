#pragma once
// What a TLS session negotiated, as ctx.info(session).tls reports it. Kept apart from
// context.hpp so the connection layer can carry it without the module API's headers.

#include <string>

namespace swactor {

struct tls_info {
  std::string version;           // "TLSv1.3", "TLSv1.2"
  std::string cipher;            // OpenSSL's name, e.g. "TLS_AES_256_GCM_SHA384"
  std::string sni;               // server name the client asked for; "" = none
  std::string alpn;              // negotiated application protocol; "" = none
  std::string peer_subject;      // client certificate subject (RFC 2253); "" = no certificate
  std::string peer_fingerprint;  // SHA-256 of the client certificate, "AB:CD:..."; "" = none
  bool resumed = false;          // the session was resumed (ticket)
  friend bool operator==(const tls_info&, const tls_info&) = default;
};

}  // namespace swactor
