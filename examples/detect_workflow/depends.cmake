# depends.cmake - what the detection examples build on, included by
# examples/detect_workflow and examples/detect_server: stageprof (unless
# the including build made it already), threads, libjpeg and Debian's
# darknet.
#
# JPEG_FOUND, DARKNET_INCLUDE_DIR and DARKNET_LIBRARY say what was found
# (the caller says why it builds nothing when something is missing).
# detect_use_darknet(target) makes darknet.h a system header for @target
# (its warnings are not ours) and the library's directory its rpath; the
# library itself is linked by the caller, in its own order.
if(NOT TARGET stageprof::stageprof)
    find_package(stageprof REQUIRED)
endif()
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(JPEG)

find_path(DARKNET_INCLUDE_DIR darknet.h
          PATHS /usr/lib/darknet/include /usr/include/darknet)
find_library(DARKNET_LIBRARY darknet PATHS /usr/lib/darknet)
mark_as_advanced(DARKNET_INCLUDE_DIR DARKNET_LIBRARY)

function(detect_use_darknet target)
    target_include_directories(${target} SYSTEM PRIVATE
                               "${DARKNET_INCLUDE_DIR}")
    get_filename_component(darknet_libdir "${DARKNET_LIBRARY}" DIRECTORY)
    set_target_properties(${target} PROPERTIES
        BUILD_RPATH "${darknet_libdir}" INSTALL_RPATH "${darknet_libdir}")
endfunction()
