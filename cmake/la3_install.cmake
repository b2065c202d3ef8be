# `cmake --install`: the engine command, the decoder library with its headers, and a CMake
# package so that an outside project can find_package(la3 CONFIG REQUIRED) and link
# la3::decoder.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS engine RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS la3_decoder EXPORT la3Targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/la3 DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT la3Targets NAMESPACE la3:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/la3)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/la3Config.cmake.in
  ${PROJECT_BINARY_DIR}/la3Config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/la3)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/la3ConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/la3Config.cmake ${PROJECT_BINARY_DIR}/la3ConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/la3)
