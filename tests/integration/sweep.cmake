# `stageprof sweep` (check_sweep.py): a small pipeline written by the test
# (runs, layout, interleaving, the comparison and its page, a failing
# variant, Ctrl-C and --resume, bad input), and the detection workflow
# swept over DETECT_WORKERS (skipped without it, and under TSan for the
# workflow's reason).
foreach(mode fake workflow)
    if(NOT Python3_Interpreter_FOUND)
        stageprof_it_skip(sweep.${mode} "python3 not found at configure time")
    elseif(NOT TARGET stageprof_cli)
        stageprof_it_skip(sweep.${mode} "stageprof_cli is not built")
    elseif(mode STREQUAL "fake")
        stageprof_it_test(sweep.${mode} "${Python3_EXECUTABLE}"
                          "${it_dir}/check_sweep.py"
                          $<TARGET_FILE:stageprof_cli> ${mode})
    elseif(NOT TARGET detect_workflow)
        stageprof_it_skip(sweep.${mode}
            "detect_workflow is not built (needs darknet and libjpeg)")
    elseif(STAGEPROF_SANITIZE STREQUAL "thread")
        stageprof_it_skip(sweep.${mode} "${detect_tsan_why}")
    else()
        stageprof_it_test(sweep.${mode} "${Python3_EXECUTABLE}"
                          "${it_dir}/check_sweep.py"
                          $<TARGET_FILE:stageprof_cli> ${mode}
                          $<TARGET_FILE:detect_workflow>)
        set_tests_properties(integration.sweep.${mode} PROPERTIES
                             TIMEOUT 600)
        set_property(TEST integration.sweep.${mode} APPEND PROPERTY
            ENVIRONMENT
            "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/examples/detect_workflow/lsan.supp:print_suppressions=0")
    endif()
endforeach()
