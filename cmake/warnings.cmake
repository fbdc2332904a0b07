# warnings.cmake - compiler warnings for stageprof's own targets.
#
# Warnings are attached PRIVATE to each target we build, never globally, so a
# project that embeds stageprof with add_subdirectory() keeps its own flags.
# -Werror is added only when STAGEPROF_WERROR is ON (CI turns it on).

set(STAGEPROF_WARNING_FLAGS -Wall -Wextra -Wstrict-prototypes -Wshadow)

# stageprof_target_warnings(TARGET) - add the project's warning set to TARGET.
function(stageprof_target_warnings target)
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE
            $<$<COMPILE_LANGUAGE:C>:${STAGEPROF_WARNING_FLAGS}>)
        if(STAGEPROF_WERROR)
            target_compile_options(${target} PRIVATE -Werror)
        endif()
    endif()
endfunction()
