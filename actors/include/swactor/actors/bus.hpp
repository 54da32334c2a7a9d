#pragma once
// The message bus between module instances, across every process of a server: topics with
// publish/subscribe, point-to-point sends and request/reply. See docs/modules.md ("The
// bus") for the guarantees; routing is in docs/architecture.md.
//
// Typed messages: a message type has a stable tag and a serializer, given by
// `bus::traits<T>`. The default traits use members of T:
//
//   struct chat_line {
//     static constexpr std::string_view bus_tag = "chat.line";
//     std::string room, text;
//     void bus_write(bus::writer& w) const { w.str(room); w.str(text); }
//     bool bus_read(bus::reader& r) { room = r.str(); text = r.str(); return r.ok(); }
//   };
//
// (specialize bus::traits<T> for a type you cannot change). Raw bytes are a message with
// an empty tag. A receiving module lists the tags it accepts with accept_bus_type<T>() (in
// its constructor); a message of another tag, or one whose payload does not decode, is
// logged and dropped before its handler runs.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "swactor/core/wire.hpp"

namespace swactor::bus {

// The serializer helpers: little-endian integers, doubles, bools, strings as u32 length +
// bytes (swactor/core/wire.hpp, the same fields the IPC messages use).
using writer = wire::writer;
using reader = wire::reader;

// Tag and serializer of a message type. Specialize for types you cannot add members to.
template <class T>
struct traits {
  static constexpr std::string_view tag = T::bus_tag;
  static void write(const T& v, writer& w) { v.bus_write(w); }
  // False (or bytes left over) = the payload is not a T.
  static bool read(T& v, reader& r) { return v.bus_read(r) && r.done(); }
};

template <class T>
bool decode(std::string_view data, T& out) {
  reader r(data);
  return traits<T>::read(out, r) && r.done();
}

// What is sent: a tag ("" = raw bytes) and the serialized bytes.
struct payload {
  std::string tag;
  std::string data;

  static payload raw(std::string bytes) { return {{}, std::move(bytes)}; }
  template <class T>
  static payload of(const T& v) {
    payload p;
    p.tag = std::string(traits<T>::tag);
    writer w(p.data);
    traits<T>::write(v, w);
    return p;
  }
};

enum class kind : std::uint8_t {
  publish = 0,  // to a topic
  direct = 1,   // to one module instance
  request = 2,  // direct, and the sender waits for ctx.reply()
};

// What a handler receives (on_bus_message) and what a request returns (the reply).
struct message {
  bus::kind kind = bus::kind::publish;
  std::string topic;          // publish only
  std::string tag;            // "" = raw bytes
  std::string data;
  int sender = -1;            // server-wide process id; -1 = an operator (`swactor bus publish`)
  std::string sender_module;  // module instance that sent it ("" from an operator)
  std::uint64_t seq = 0;      // the sender process's message counter: FIFO per sender
  std::uint64_t request_id = 0;  // requests: what ctx.reply() answers

  bool is_request() const noexcept { return kind == bus::kind::request; }

  // The payload as a T: null when the tag is another type's or the bytes do not decode.
  // Decoded once (by the receiver's check, or by the first call) and kept.
  template <class T>
  const T* as() const {
    if (tag != traits<T>::tag) return nullptr;
    if (!decoded_) {
      auto v = std::make_shared<T>();
      if (!decode(data, *v)) return nullptr;
      decoded_ = std::move(v);
    }
    return static_cast<const T*>(decoded_.get());
  }

  // -- runtime bookkeeping (not for handlers) ------------------------------------------------
  mutable std::shared_ptr<const void> decoded_;
  mutable bool replied_ = false;
};

// Where a point-to-point message or a request goes.
enum class pick : std::uint8_t {
  round_robin = 0,   // the next worker in turn
  least_loaded = 1,  // the worker running the fewest handlers now (ties: in turn)
};
struct target {
  int process = -1;     // server-wide id (worker, task worker, user process); -1 = any worker
  std::string module;   // instance name; "" = the sender's own instance
  bus::pick pick = bus::pick::round_robin;
  // With `process`: that process's pid, for a message that only it can use (what it holds
  // while a reload replaces it, e.g. a detached HTTP response). 0 = whichever runs the id.
  std::uint32_t pid = 0;

  static target worker(int id, std::string module = {}) { return {id, std::move(module), pick::round_robin}; }
  static target any(std::string module = {}, bus::pick p = pick::round_robin) { return {-1, std::move(module), p}; }
};

struct publish_options {
  bool self = true;  // deliver to the publishing instance too when it subscribes to the topic
};

// Topic names and patterns: tokens separated by '.', each non-empty, of printable ASCII
// without spaces, '*' or '>'. Patterns may use '*' for exactly one token and '>' (last only)
// for one or more trailing tokens: "room.*" matches "room.a" but not "room.a.b";
// "room.>" matches both, and neither matches "room". At most kMaxTopic bytes.
inline constexpr std::size_t kMaxTopic = 256;
bool valid_topic(std::string_view topic) noexcept;
bool valid_pattern(std::string_view pattern) noexcept;
bool matches(std::string_view pattern, std::string_view topic) noexcept;

// The tags a module instance accepts, with their decoders (module_base holds one).
class type_set {
 public:
  template <class T>
  void add() {
    decoders_[std::string(traits<T>::tag)] = [](std::string_view data) -> std::shared_ptr<const void> {
      auto v = std::make_shared<T>();
      if (!bus::decode(data, *v)) return nullptr;
      return v;
    };
  }
  bool empty() const noexcept { return decoders_.empty(); }
  bool knows(std::string_view tag) const { return decoders_.find(tag) != decoders_.end(); }
  // Null when the tag is unknown or the payload does not decode.
  std::shared_ptr<const void> decode(std::string_view tag, std::string_view data) const {
    auto it = decoders_.find(tag);
    return it == decoders_.end() ? nullptr : it->second(data);
  }

 private:
  std::map<std::string, std::function<std::shared_ptr<const void>(std::string_view)>, std::less<>> decoders_;
};

}  // namespace swactor::bus
