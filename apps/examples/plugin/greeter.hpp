#pragma once
// `greeter`: an example plugin module. It answers each line NAME with
// "GREETING, NAME<punctuation>", where GREETING is fixed when the plugin is built and
// `punctuation` is an option of its [modules.NAME] table. In a header of its own so that
// test_greeter.cpp can drive the same class with the test kit.
#include <string>
#include <utility>

#include <swactor/actors/context.hpp>
#include <swactor/actors/module.hpp>
#include <swactor/core/log.hpp>

const char* greeter_greeting();  // greeting.cpp

namespace greeter_example {

class greeter final : public swactor::module_base {
 public:
  static constexpr std::string_view kName = "greeter";
  static constexpr std::string_view kDoc =
      "Answers each message NAME with \"GREETING, NAME<punctuation>\" (GREETING is set when the "
      "plugin is built).";
  struct options {
    std::string punctuation = "!";
  };
  static swactor::config::schema<options> schema() {
    swactor::config::schema<options> s;
    s.string("punctuation", &options::punctuation, "Appended to every greeting.");
    return s;
  }
  explicit greeter(options o) : opts_(std::move(o)) {}

  swactor::task<void> on_receive(swactor::context& ctx, swactor::session_id s, std::string message) override {
    // payload() drops the framing (the line's delimiter); the reply is one line too.
    std::string reply = std::string(greeter_greeting()) + ", " + std::string(ctx.payload(s, message)) +
                        opts_.punctuation + "\n";
    if (auto ec = ctx.send(s, reply)) swactor::log::warning("greeter: send to {} failed: {}", s, ec.message());
    co_return;
  }

 private:
  options opts_;
};

}  // namespace greeter_example
