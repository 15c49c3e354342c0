# Shared by install_test.cmake and examples_test.cmake: run() runs a command in WORK_DIR and stops the
# script when it fails; install_and_configure() installs BUILD_DIR into WORK_DIR/prefix and configures
# the project at PROJECT_DIR against it into WORK_DIR/build, with the compiler and sanitizers horo was
# built with (a sanitized libhoro needs its runtime in the program).
function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}")
  endif()
endfunction()

function(install_and_configure PROJECT_DIR)
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
  set(flags -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
  if(SANITIZE)
    list(APPEND flags "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE}" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
  endif()
  run(${CMAKE_COMMAND} -S ${PROJECT_DIR} -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release ${flags})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
endfunction()
