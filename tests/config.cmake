# Config loader, --set, validation, writer and command line. CPU only; writes
# its YAML files under a mkdtemp directory and removes them.
blpo_test_exe(test_config)
add_test(NAME test_config COMMAND test_config)
set_tests_properties(test_config PROPERTIES LABELS "cpu;config")
