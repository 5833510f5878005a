# safetensors reader/writer: round trip, every corruption class refused with
# its message, atomic writes. CPU only; works under a mkdtemp directory.
blpo_test_exe(test_safetensors)
add_test(NAME test_safetensors COMMAND test_safetensors)
set_tests_properties(test_safetensors PROPERTIES LABELS "cpu;checkpoint")
