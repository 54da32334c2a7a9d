# swactor_add_module(NAME SOURCES file.cpp...): a swactor plugin module, built as libNAME.so,
# to be named by `plugin = "path/to/libNAME.so"` in a [modules.X] table.
#
# It links swactor::module_api only (headers, compile definitions, the libraries swactor's
# headers use): the plugin takes swactor's own symbols from the `swactor` executable that
# loads it, so it must not carry a copy of swactor's libraries. No precompiled header, so the
# plugin's flags are exactly these.
function(swactor_add_module name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "swactor_add_module(${name}): unexpected arguments ${arg_UNPARSED_ARGUMENTS}; "
                        "usage: swactor_add_module(NAME SOURCES file.cpp...)")
  endif()
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "swactor_add_module(${name}): no SOURCES; usage: swactor_add_module(NAME SOURCES file.cpp...)")
  endif()
  add_library(${name} MODULE ${arg_SOURCES})
  target_link_libraries(${name} PRIVATE swactor::module_api)
  target_compile_features(${name} PRIVATE cxx_std_20)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    CXX_EXTENSIONS OFF
    POSITION_INDEPENDENT_CODE ON
    DISABLE_PRECOMPILE_HEADERS ON)
endfunction()
