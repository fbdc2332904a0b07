# options.cmake - build options of stageprof.
#
# Every option is declared through stageprof_option(), which also prints one
# summary line at configure time so a build log always shows what was built.

# stageprof_option(NAME "help text" DEFAULT) - a boolean cache option.
macro(stageprof_option name help default)
    option(${name} "${help}" ${default})
    if(${name})
        message(STATUS "${name}: ON   (${help})")
    else()
        message(STATUS "${name}: OFF  (${help})")
    endif()
endmacro()

# stageprof_string_option(NAME "help text" DEFAULT ALLOWED...) - a string
# cache option restricted to the listed values (the empty string included
# when it is listed as "").
function(stageprof_string_option name help default)
    set(${name} "${default}" CACHE STRING "${help}")
    set(allowed ${ARGN})
    set_property(CACHE ${name} PROPERTY STRINGS ${allowed})
    set(value "${${name}}")
    list(FIND allowed "${value}" found)
    if(found EQUAL -1 AND NOT value STREQUAL "")
        message(FATAL_ERROR "${name}='${value}' is not one of: ${allowed}")
    endif()
    if(value STREQUAL "")
        set(shown "(none)")
    else()
        set(shown "${value}")
    endif()
    message(STATUS "${name}: ${shown}  (${help})")
endfunction()

if(CMAKE_SOURCE_DIR STREQUAL PROJECT_SOURCE_DIR)
    set(STAGEPROF_TOP_LEVEL ON)
else()
    set(STAGEPROF_TOP_LEVEL OFF)
endif()

stageprof_option(STAGEPROF_BUILD_CLI "build the stageprof command-line tool" ON)
stageprof_option(STAGEPROF_BUILD_TESTS "build the tests and register them with CTest"
                 ${STAGEPROF_TOP_LEVEL})
stageprof_option(STAGEPROF_BUILD_BENCH "build the programs in bench/" ON)
stageprof_option(STAGEPROF_BUILD_EXAMPLES "build the programs in examples/" ON)
stageprof_option(STAGEPROF_WITH_HTTP "the /metrics endpoint (libmicrohttpd)" ON)
stageprof_option(STAGEPROF_DISABLE "compile the instrumentation macros out" OFF)
stageprof_option(STAGEPROF_WERROR "treat compiler warnings as errors" OFF)
stageprof_string_option(STAGEPROF_SANITIZE
    "sanitizer build: address (ASan+UBSan) or thread (TSan)" "" address thread)
