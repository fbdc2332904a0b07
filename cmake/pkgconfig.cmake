# pkgconfig.cmake - generate and install stageprof.pc.
#
# The file locates its prefix from its own directory (${pcfiledir}), so an
# install made with `cmake --install build --prefix DIR` is correct whatever
# CMAKE_INSTALL_PREFIX was at configure time, and the tree can be moved.

set(STAGEPROF_PC_LIBS_PRIVATE "-pthread")
if(STAGEPROF_LIBM)
    string(APPEND STAGEPROF_PC_LIBS_PRIVATE " -lm")
endif()
# libmicrohttpd by name rather than through Requires.private: its own
# static dependencies (GnuTLS and more) are not needed against its shared
# library, and their development files are seldom installed.
if(STAGEPROF_WITH_HTTP)
    foreach(lib IN LISTS MHD_LIBRARIES)
        string(APPEND STAGEPROF_PC_LIBS_PRIVATE " -l${lib}")
    endforeach()
endif()
set(STAGEPROF_PC_CFLAGS "")
foreach(def IN LISTS STAGEPROF_PUBLIC_DEFINITIONS)
    string(APPEND STAGEPROF_PC_CFLAGS " -D${def}")
endforeach()

set(STAGEPROF_PC_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    # Absolute directories given by the packager: use them as they are.
    set(STAGEPROF_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    set(STAGEPROF_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
    set(STAGEPROF_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
    file(RELATIVE_PATH pc_to_prefix "/stageprof-root/${STAGEPROF_PC_DIR}"
         "/stageprof-root")
    string(REGEX REPLACE "/$" "" pc_to_prefix "${pc_to_prefix}")
    set(STAGEPROF_PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
    set(STAGEPROF_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
    set(STAGEPROF_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()

configure_file("${PROJECT_SOURCE_DIR}/cmake/stageprof.pc.in"
               "${PROJECT_BINARY_DIR}/stageprof.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/stageprof.pc"
        DESTINATION "${STAGEPROF_PC_DIR}")
