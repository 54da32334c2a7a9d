#pragma once
// Redis protocol (RESP2 and RESP3) server codec, sans-I/O, and the reply writer.
//
// Bytes in -> events out (one per command, in order, pipelined commands one after another):
//   kind command:        data = the command's complete raw multibulk bytes, from '*' to the
//                        CRLF after the last argument (split_multibulk() gives the args as
//                        views into it; the codec validated it, so it always splits).
//   kind inline_command: data = an inline (telnet style) command line without its line end
//                        (split_inline() gives the args, quotes and escapes resolved).
//   Either kind with `resp3_flag` or'ed in: the connection speaks RESP3 (after HELLO 3), so
//   replies to it must be RESP3.
// Typed replies in -> bytes out (stream_codec::encode kinds): every command gets exactly one
// reply, in order:
//   raw:         bytes as they are (not a reply: does not count)
//   reply:       the encoded reply to the oldest unanswered command
//   reply_resp2: a reply, after which the connection speaks RESP2 (HELLO 2)
//   reply_resp3: a reply, after which the connection speaks RESP3 (HELLO 3). The reply
//                itself is already in the new protocol, as Redis does.
//   reply_close: a reply, then the connection closes once it is written (QUIT)
//   push:        an out-of-band message (pub/sub), not a reply to a command
//
// Between a HELLO command and its reply the codec decodes nothing more (blocked()), so the
// commands after it carry the protocol HELLO chose. A protocol error (Redis's own texts:
// "Protocol error: invalid multibulk length", ...) is answered "-ERR <text>\r\n" after the
// replies to the commands before it, and the connection closes, as redis-server does.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/codec.hpp"

namespace swactor::protocols::redis {

// event::kind values
enum class ev : std::uint8_t { command = 48, inline_command = 49 };
constexpr std::uint8_t resp3_flag = 4;  // command | resp3_flag = 52, inline_command | resp3_flag = 53
constexpr bool is_command_kind(std::uint8_t k) noexcept { return k >= 48 && k <= 53 && k != 50 && k != 51; }
constexpr bool is_resp3_kind(std::uint8_t k) noexcept { return (k & resp3_flag) != 0 && is_command_kind(k); }

// encode() kinds
enum class out : std::uint8_t { raw = 0, reply = 1, reply_resp2 = 2, reply_resp3 = 3, reply_close = 4, push = 5 };

// Redis's own limits and defaults.
struct options {
  std::size_t max_bulk_len = std::size_t{512} << 20;  // proto-max-bulk-len
  std::size_t max_multibulk_len = 2147483647;         // arguments per command (INT_MAX)
  std::size_t max_inline_len = 64 * 1024;             // PROTO_INLINE_MAX_SIZE; also a count line
};

std::unique_ptr<stream_codec> make_server_codec(const options& o);

// The arguments of a `command` event, views into `raw`. False when `raw` is not one
// complete multibulk command (never for what the codec emitted).
bool split_multibulk(std::string_view raw, std::vector<std::string_view>& args);
// The first out.size() arguments of a `command` event (fewer if it has fewer), without
// allocating or reading past them: how many were filled, 0 when `raw` is not multibulk.
// For the look-ahead (module::on_commands_ahead), which needs only a command's key.
std::size_t first_args(std::string_view raw, std::span<std::string_view> out) noexcept;
// The arguments of an inline command line, with Redis's quoting rules ("..." with \n \r \t
// \b \a \\ \" \xHH escapes, '...' with \' only). nullopt: unbalanced quotes.
std::optional<std::vector<std::string>> split_inline(std::string_view line);

// Appends replies in RESP2 or RESP3. RESP3 types degrade in RESP2 as redis-server does:
// map -> flat array of 2n, set -> array, double -> bulk string, boolean -> integer 1/0,
// null -> $-1 (null bulk), big number and verbatim -> bulk string, push -> array.
class writer {
 public:
  writer(std::string& out, int protocol) : out_(out), resp3_(protocol >= 3) {}
  bool resp3() const noexcept { return resp3_; }

  void status(std::string_view s);           // +OK
  void error(std::string_view s);            // -ERR ... (s carries the prefix: "ERR ...")
  void integer(long long v);                 // :1
  void bulk(std::string_view s);             // $3\r\nfoo
  void null();                               // RESP3 _ ; RESP2 $-1
  void null_array();                         // RESP3 _ ; RESP2 *-1
  void array(std::size_t n);                 // then n elements
  void map(std::size_t n);                   // then n key/value pairs (2n elements)
  void set(std::size_t n);                   // then n elements
  void push(std::size_t n);                  // RESP3 >n ; RESP2 *n
  void dbl(double v);                        // RESP3 ,v ; RESP2 bulk, "%.17g" (inf, -inf, nan)
  void boolean(bool v);                      // RESP3 #t ; RESP2 :1
  void big_number(std::string_view digits);  // RESP3 ( ; RESP2 bulk
  void verbatim(std::string_view format, std::string_view s);  // RESP3 =; format is 3 chars
  // A reply encoded elsewhere for this connection's protocol, as it is (EXEC's array of its
  // commands' replies).
  void encoded(std::string_view reply) { out_.append(reply); }

 private:
  void head(char type, long long n);
  std::string& out_;
  bool resp3_;
};

}  // namespace swactor::protocols::redis
