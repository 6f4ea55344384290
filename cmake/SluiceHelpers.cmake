# sluice_library(NAME SRCS ... DEPS ...): one static library per layer or connector.
function(sluice_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sluice_test(NAME SRCS ... DEPS ...): a GoogleTest executable registered with ctest.
function(sluice_test name)
  if(NOT SLUICE_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} sluice_testing GTest::gtest_main GTest::gmock)
  # Unit tests by default; `LABELS integration` for tests that need scripts/services.
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
include(GoogleTest)

# sluice_dynamic(NAME TARGET DEFINE): NAME compiles against imported library TARGET's headers
# without linking it, and gets DEFINE="<its SONAME>" to open it by (core/dynamic_library.h).
function(sluice_dynamic name target define)
  get_target_property(location ${target} LOCATION)
  if(NOT CMAKE_OBJDUMP)
    message(FATAL_ERROR "objdump is needed to read ${target}'s SONAME (apt-get install -y binutils)")
  endif()
  execute_process(COMMAND ${CMAKE_OBJDUMP} -p "${location}" OUTPUT_VARIABLE dump
                  RESULT_VARIABLE failed ERROR_VARIABLE why)
  string(REGEX MATCH "SONAME +([^\n ]+)" _ "${dump}")
  set(soname "${CMAKE_MATCH_1}")
  if(failed OR NOT soname)
    message(FATAL_ERROR "${target}: no SONAME in ${location} (${CMAKE_OBJDUMP} -p: ${why})")
  endif()
  # Configure again when the library changes (an upgrade may change its SONAME).
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${location}")
  # Read now: an imported target is seen only in the directory that found it.
  get_target_property(includes ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(includes)
    target_include_directories(${name} PUBLIC ${includes})
  endif()
  target_compile_definitions(${name} PRIVATE ${define}="${soname}")
endfunction()
