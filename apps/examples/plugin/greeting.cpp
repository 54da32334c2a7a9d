// The greeting, fixed at build time (-DGREETING=... from CMakeLists.txt). Apart from
// greeter.cpp so that changing it recompiles this file only.
#ifndef GREETING
#define GREETING "hello"
#endif

const char* greeter_greeting() { return GREETING; }
