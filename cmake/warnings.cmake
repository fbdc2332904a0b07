# warnings.cmake - compiler warnings for stageprof's own targets.
#
# Warnings are attached PRIVATE to each target we build, never globally, so a
# project that embeds stageprof with add_subdirectory() keeps its own flags.
# -Werror is added only when STAGEPROF_WERROR is ON (CI turns it on).
#
# GCC's flow-based warnings (array bounds, string overflows, maybe
# uninitialized) run after the sanitizers have instrumented the code and
# then report paths that cannot happen. In sanitizer builds they stay
# warnings; the plain build, compiled from the same sources, still treats
# them as errors.
include(CheckCCompilerFlag)

set(STAGEPROF_WARNING_FLAGS -Wall -Wextra -Wstrict-prototypes -Wshadow)

set(STAGEPROF_WERROR_FLAGS "")
if(STAGEPROF_WERROR)
    set(STAGEPROF_WERROR_FLAGS -Werror)
    if(STAGEPROF_SANITIZE AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
        foreach(w array-bounds stringop-overflow stringop-overread
                  maybe-uninitialized null-dereference)
            string(MAKE_C_IDENTIFIER "STAGEPROF_HAVE_W_${w}" have)
            check_c_compiler_flag("-W${w}" ${have})
            if(${have})
                list(APPEND STAGEPROF_WERROR_FLAGS "-Wno-error=${w}")
            endif()
        endforeach()
    endif()
endif()

# stageprof_target_warnings(TARGET) - add the project's warning set to TARGET.
function(stageprof_target_warnings target)
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE
            $<$<COMPILE_LANGUAGE:C>:${STAGEPROF_WARNING_FLAGS}
                                    ${STAGEPROF_WERROR_FLAGS}>)
    endif()
endfunction()
