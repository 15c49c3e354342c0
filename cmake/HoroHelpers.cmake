# horo_add_gtest(NAME SOURCES src... LABELS label...): a GoogleTest binary registered with ctest.
# Each test binary is one ctest entry so that the suite starts few processes on a small machine.
function(horo_add_gtest name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LABELS;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE horo::horo GTest::gtest GTest::gtest_main ${ARG_LIBS})
  target_compile_options(${name} PRIVATE ${HORO_WARNINGS})
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  if(ARG_TIMEOUT)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  endif()
endfunction()
