blpo_test_exe(test_blpo)
add_test(NAME blpo_derivatives_solvers COMMAND test_blpo)
set_tests_properties(blpo_derivatives_solvers PROPERTIES LABELS "cpu;derivatives;blpo")
