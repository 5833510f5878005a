# Exact second-order passes of the critic MLP (src/cpu_second_order.c) against
# double-precision finite differences.
blpo_test_exe(test_hvp)
add_test(NAME hvp_cpu COMMAND test_hvp)
set_tests_properties(hvp_cpu PROPERTIES LABELS "cpu;derivatives")
