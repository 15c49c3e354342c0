# Installs the built tree into a scratch prefix, builds examples/ against it as a user's project, and
# runs them: custom_model (train, save), fine_tune (load, new head, freeze, train), distributed and fit
# (the Trainer: stopped, resumed; both under mpirun -np 2 when MPIEXEC is given, else as one process).
# Called by ctest with -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCXX_COMPILER=... [-DSANITIZE=...] [-DMPIEXEC=...]
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/install_common.cmake)
install_and_configure(${SOURCE_DIR}/examples)
run(${WORK_DIR}/build/custom_model ${WORK_DIR}/residual.h5)
run(${WORK_DIR}/build/fine_tune ${WORK_DIR}/residual.h5)
if(MPIEXEC)
  run(${MPIEXEC} --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2 ${WORK_DIR}/build/distributed ${WORK_DIR})
  run(${MPIEXEC} --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2 ${WORK_DIR}/build/fit ${WORK_DIR})
else()
  run(${WORK_DIR}/build/distributed ${WORK_DIR})
  run(${WORK_DIR}/build/fit ${WORK_DIR})
endif()
message("examples built against the installed horo and ran")
