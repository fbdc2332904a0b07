# `stageprof history` (check_history.py): add/list/show round trips on
# traces written by the script, `check` on a stable series and on a step,
# 8 processes adding at once, and bad input (garbage, newer schema, another
# program's database, locked, read-only file and directory, bad labels and
# options, an unknown stage, a bad trace among good ones), and the
# migration of a version 1 file.
foreach(mode roundtrip check concurrent badinput migrate)
    if(NOT Python3_Interpreter_FOUND)
        stageprof_it_skip(history.${mode} "python3 not found at configure time")
    elseif(NOT TARGET stageprof_cli)
        stageprof_it_skip(history.${mode} "stageprof_cli is not built")
    else()
        stageprof_it_test(history.${mode} "${Python3_EXECUTABLE}"
                          "${it_dir}/check_history.py"
                          $<TARGET_FILE:stageprof_cli> ${mode})
    endif()
endforeach()
