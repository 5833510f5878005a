blpo_test_exe(test_grad)
add_test(NAME grad_cpu COMMAND test_grad)
set_tests_properties(grad_cpu PROPERTIES LABELS "cpu;derivatives")

blpo_test_exe(test_population)
add_test(NAME population_independence COMMAND test_population)
set_tests_properties(population_independence PROPERTIES LABELS "cpu;population")

# The binary itself: each class of bad input, and a short end-to-end run.
add_test(NAME cli_errors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_errors.sh $<TARGET_FILE:blpo-gpu>)
set_tests_properties(cli_errors PROPERTIES LABELS "cpu;config;cli")
foreach(algo ppo nested blpo)
  add_test(NAME cli_run_${algo}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_run.sh $<TARGET_FILE:blpo-gpu> ${algo})
  set_tests_properties(cli_run_${algo} PROPERTIES LABELS "cpu;cli")
endforeach()
