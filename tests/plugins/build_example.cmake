# CTest fixture (cmake -P): install the build tree into a fresh prefix and build the example
# plugin (apps/examples/plugin) against that installed copy only, twice: GREETING "hello",
# then rebuilt with GREETING "bonjour" (the code a reload must pick up). The first build also
# builds the example's test-kit test (GREETER_BUILD_TESTS) and runs it.
#   -DBUILD_DIR= -DEXAMPLE_DIR= -DOUT= [-DLAUNCHER=ccache]
# OUT/prefix: the installed swactor; OUT/hello/libgreeter.so, OUT/bonjour/libgreeter.so.
foreach(var BUILD_DIR EXAMPLE_DIR OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "build_example.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

file(REMOVE_RECURSE ${OUT})
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${OUT}/prefix)

set(configure ${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${OUT}/build -DCMAKE_BUILD_TYPE=Release
    # The installed copy only: no package registry, nothing from the source or build tree.
    -DCMAKE_PREFIX_PATH=${OUT}/prefix -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(LAUNCHER)
  list(APPEND configure -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()

foreach(greeting hello bonjour)
  # The kit test once (one more translation unit), not again for the rebuild.
  if(greeting STREQUAL "hello")
    set(tests ON)
  else()
    set(tests OFF)
  endif()
  run("configure the example (GREETING=${greeting})" ${configure} -DGREETING=${greeting}
      -DGREETER_BUILD_TESTS=${tests})
  file(STRINGS ${OUT}/build/CMakeCache.txt found REGEX "^swactor_DIR:")
  if(NOT found MATCHES "^swactor_DIR:PATH=${OUT}/prefix/")
    message(FATAL_ERROR "the example found swactor outside the installed prefix ${OUT}/prefix: ${found}")
  endif()
  run("build the example (GREETING=${greeting})" ${CMAKE_COMMAND} --build ${OUT}/build)
  if(tests)
    run("run the example's test-kit test" ${OUT}/build/test_greeter)
  endif()
  file(MAKE_DIRECTORY ${OUT}/${greeting})
  file(COPY_FILE ${OUT}/build/libgreeter.so ${OUT}/${greeting}/libgreeter.so)
endforeach()
