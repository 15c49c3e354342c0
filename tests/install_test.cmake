# Installs the built tree into a scratch prefix, then configures, builds and runs tests/downstream
# against it: proves find_package(horo) + horo::horo work for a project outside this tree.
# Called by ctest with -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCXX_COMPILER=... [-DSANITIZE=...]
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/install_common.cmake)
install_and_configure(${SOURCE_DIR}/tests/downstream)
run(${WORK_DIR}/build/downstream)
message("downstream project built and ran against the installed horo")
