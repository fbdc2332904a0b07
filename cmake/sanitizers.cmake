# sanitizers.cmake - STAGEPROF_SANITIZE=address|thread.
#
# The sanitizer flags are applied to every target in this directory tree
# (library, CLI, tests, benchmarks), because an instrumented library linked
# into an uninstrumented program, or the reverse, misses reports or fails
# to link. STAGEPROF_SANITIZE_FLAGS keeps the list for the tests that
# compile programs outside CMake (tests/compile).
#
#   address  AddressSanitizer + UndefinedBehaviorSanitizer; any UB report
#            is fatal (-fno-sanitize-recover=all)
#   thread   ThreadSanitizer

set(STAGEPROF_SANITIZE_FLAGS "")
if(STAGEPROF_SANITIZE STREQUAL "address")
    set(STAGEPROF_SANITIZE_FLAGS
        -fsanitize=address,undefined -fno-omit-frame-pointer
        -fno-sanitize-recover=all)
elseif(STAGEPROF_SANITIZE STREQUAL "thread")
    set(STAGEPROF_SANITIZE_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()

if(STAGEPROF_SANITIZE_FLAGS)
    add_compile_options(${STAGEPROF_SANITIZE_FLAGS})
    add_link_options(${STAGEPROF_SANITIZE_FLAGS})
endif()

# Runtime options for test processes: report with stacks, fail the test on
# the first finding.
set(STAGEPROF_SANITIZE_ENV
    "ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
