# stageprof_tests.cmake - register unit tests with CTest, one test per case.
#
# A unit test file tests/<dir>/test_<x>.c defines cases with
# STAGEPROF_TEST(name) and ends with STAGEPROF_TEST_LIST(...) (tests/test.h).
# stageprof_add_unit_tests() builds one executable per file and scans the
# file for the case definitions, so every case becomes its own CTest test
# named <stem>.<case> that runs `prog <case>`. A crash, hang or sanitizer
# report is then isolated to one case, and cases run in parallel.
#
# The scan is redone whenever a test file changes (CMAKE_CONFIGURE_DEPENDS),
# so adding a case needs no CMake edit; adding a file is picked up by the
# CONFIGURE_DEPENDS glob.

# Variables a test process must not inherit from the developer's shell:
# they would switch tracing on, move output or change buffer sizes under the
# test's feet. Tests that want one set it themselves.
set(STAGEPROF_TEST_UNSET_ENV
    STAGEPROF_ENABLE STAGEPROF_DIR STAGEPROF_BUFFER_RUNS
    STAGEPROF_BUFFER_BYTES STAGEPROF_HTTP STAGEPROF_SAMPLE_HZ
    STAGEPROF_CATEGORIES STAGEPROF_CLOCK STAGEPROF_LOG_FILE
    STAGEPROF_PROCESS_NAME STAGEPROF_GZIP STAGEPROF_MAX_FILES
    STAGEPROF_MAX_DIR_BYTES STAGEPROF_SNAPSHOT_SIGNAL
    STAGEPROF_CRASH_DUMP STAGEPROF_HTTP_TOKEN STAGEPROF_HTTP_MAX_CONNECTIONS
    STAGEPROF_HTTP_IDLE_TIMEOUT_S STAGEPROF_HISTOGRAM_BUCKETS
    STAGEPROF_MAX_STAGES STAGEPROF_FOLLOW_FORK STAGEPROF_SAMPLE_RUNS
    STAGEPROF_KEEP_SLOWER_THAN_MS STAGEPROF_KEEP_SLOWEST
    STAGEPROF_KEEP_WINDOW_S STAGEPROF_KEEP_BYTES STAGEPROF_HISTORY_DB
    ENABLE_WORKFLOWS_PROFILING WORKFLOWS_PROFILER_BUFFER_SIZE)

# stageprof_test_clean_env(TEST...) - give each CTest test a predictable
# environment: the variables above unset, the resource sampler off (its
# counter tracks would join every trace a test checks; the tests of the
# sampler turn it on themselves), sanitizer runtime options set. Usable
# from tests/integration as well.
function(stageprof_test_clean_env)
    foreach(test IN LISTS ARGN)
        if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.22)
            set(mods "")
            foreach(var IN LISTS STAGEPROF_TEST_UNSET_ENV)
                list(APPEND mods "${var}=unset:")
            endforeach()
            set_property(TEST ${test} APPEND PROPERTY
                ENVIRONMENT_MODIFICATION ${mods} "STAGEPROF_SAMPLE_HZ=set:0")
        else()
            set(vals "")
            foreach(var IN LISTS STAGEPROF_TEST_UNSET_ENV)
                list(APPEND vals "${var}=")
            endforeach()
            list(REMOVE_ITEM vals "STAGEPROF_SAMPLE_HZ=")
            list(APPEND vals "STAGEPROF_SAMPLE_HZ=0")
            set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT ${vals})
        endif()
        if(STAGEPROF_SANITIZE)
            set_property(TEST ${test} APPEND PROPERTY
                ENVIRONMENT ${STAGEPROF_SANITIZE_ENV})
        endif()
    endforeach()
endfunction()

# stageprof_scan_cases(FILE OUT_VAR) - names of the STAGEPROF_TEST(name)
# definitions in FILE, in file order. Only definitions at the start of a
# line count, so a mention in a comment is not taken for a case.
function(stageprof_scan_cases file out_var)
    file(STRINGS "${file}" lines
         REGEX "^[ \t]*STAGEPROF_TEST[ \t]*\\([ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\\)")
    set(cases "")
    foreach(line IN LISTS lines)
        string(REGEX REPLACE
               "^[ \t]*STAGEPROF_TEST[ \t]*\\([ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\).*$"
               "\\1" name "${line}")
        list(APPEND cases "${name}")
    endforeach()
    list(REMOVE_DUPLICATES cases)
    set(${out_var} "${cases}" PARENT_SCOPE)
endfunction()

# stageprof_add_unit_tests(DIR...) - one executable per DIR/test_*.c,
# linked to the static library, one CTest test per case.
function(stageprof_add_unit_tests)
    set(work_dir "${PROJECT_BINARY_DIR}/tests/work")
    file(MAKE_DIRECTORY "${work_dir}")
    foreach(dir IN LISTS ARGN)
        file(GLOB sources CONFIGURE_DEPENDS
             "${PROJECT_SOURCE_DIR}/${dir}/test_*.c")
        list(SORT sources)
        get_filename_component(dir_word "${dir}" NAME)
        foreach(src IN LISTS sources)
            get_filename_component(stem "${src}" NAME_WE)
            set(target "${stem}")
            # tests/lib/test_x.c and tests/util/test_x.c may share a stem.
            if(TARGET ${target})
                set(target "${dir_word}_${stem}")
            endif()
            add_executable(${target} "${src}")
            # zlib: tests read back the .json.gz traces.
            target_link_libraries(${target} PRIVATE stageprof::stageprof
                                  Threads::Threads ZLIB::ZLIB)
            target_include_directories(${target} PRIVATE
                "${PROJECT_SOURCE_DIR}/src"
                "${PROJECT_SOURCE_DIR}/include"
                "${PROJECT_SOURCE_DIR}/tests")
            target_compile_definitions(${target} PRIVATE
                "STAGEPROF_TEST_SOURCE_DIR=\"${PROJECT_SOURCE_DIR}/tests\""
                "STAGEPROF_TEST_WORK_DIR=\"${work_dir}\"")
            set_target_properties(${target} PROPERTIES
                RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
            stageprof_target_warnings(${target})

            set_property(DIRECTORY APPEND PROPERTY
                         CMAKE_CONFIGURE_DEPENDS "${src}")
            stageprof_scan_cases("${src}" cases)
            if(NOT cases)
                message(WARNING "${dir}/${stem}.c defines no STAGEPROF_TEST case")
            endif()
            foreach(case IN LISTS cases)
                set(test "${target}.${case}")
                add_test(NAME ${test} COMMAND ${target} ${case}
                         WORKING_DIRECTORY "${work_dir}")
                set_tests_properties(${test} PROPERTIES
                    SKIP_RETURN_CODE 77
                    TIMEOUT 120
                    LABELS "unit;${dir_word}")
                stageprof_test_clean_env(${test})
            endforeach()
        endforeach()
    endforeach()
endfunction()
