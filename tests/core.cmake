blpo_test_exe(test_grad)
add_test(NAME grad_cpu COMMAND test_grad)
set_tests_properties(grad_cpu PROPERTIES LABELS "cpu;derivatives")

blpo_test_exe(test_population)
add_test(NAME population_independence COMMAND test_population)
set_tests_properties(population_independence PROPERTIES LABELS "cpu;population")
