#pragma once
// Listener URLs (tcp://, udp://, unix://, unixgram://) and the framing options of a listener:
// declared with the config they belong to (app_config.hpp); this header stays for callers.

#include "swactor/actors/app_config.hpp"
