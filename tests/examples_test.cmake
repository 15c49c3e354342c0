# Installs the built tree into a scratch prefix, builds examples/ against it as a user's project, and
# runs them: custom_model (train, save), fine_tune (load, new head, freeze, train) and distributed
# (under mpirun -np 2 when MPIEXEC is given, else as one process).
# Called by ctest with -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCXX_COMPILER=... [-DSANITIZE=...] [-DMPIEXEC=...]
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
set(flags -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(SANITIZE)
  list(APPEND flags "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE}" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
    -DCMAKE_BUILD_TYPE=Release ${flags})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/custom_model ${WORK_DIR}/residual.h5)
run(${WORK_DIR}/build/fine_tune ${WORK_DIR}/residual.h5)
if(MPIEXEC)
  run(${MPIEXEC} --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2 ${WORK_DIR}/build/distributed ${WORK_DIR})
else()
  run(${WORK_DIR}/build/distributed ${WORK_DIR})
endif()
message("examples built against the installed horo and ran")
