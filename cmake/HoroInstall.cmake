# Installs the library, its headers and a CMake package: find_package(horo) + horo::horo.
include(CMakePackageConfigHelpers)

install(TARGETS horo EXPORT horoTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(dir kernels tensor nn data dist train)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/horo/${dir}
    FILES_MATCHING PATTERN "*.h")
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/horo.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/horo)
install(EXPORT horoTargets NAMESPACE horo:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/horo)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/horoConfig.cmake.in
  ${PROJECT_BINARY_DIR}/horoConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/horo)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/horoConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/horoConfig.cmake ${PROJECT_BINARY_DIR}/horoConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/horo)
