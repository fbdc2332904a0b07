# `stageprof sql` (check_sql.py): generated traces whose contents the
# checker knows (counts, sums, self times, joins, depth and parent,
# runs, flows), the three output formats, --save, bad input and hostile
# names, the prompt through a pipe and a pseudo-terminal, statements from
# standard input, and the real Kineto traces (skips without them).
set(sql_modes queries formats save errors hostile prompt stdin kineto)
foreach(mode IN LISTS sql_modes)
    if(NOT Python3_Interpreter_FOUND)
        stageprof_it_skip(sql.${mode} "python3 not found at configure time")
    elseif(NOT TARGET stageprof_cli)
        stageprof_it_skip(sql.${mode} "stageprof_cli is not built")
    elseif(mode STREQUAL "kineto")
        stageprof_it_test(sql.${mode} "${Python3_EXECUTABLE}"
                          "${it_dir}/check_sql.py"
                          $<TARGET_FILE:stageprof_cli> ${mode}
                          "${STAGEPROF_KINETO_TRACES}")
    else()
        stageprof_it_test(sql.${mode} "${Python3_EXECUTABLE}"
                          "${it_dir}/check_sql.py"
                          $<TARGET_FILE:stageprof_cli> ${mode})
    endif()
endforeach()
