# safetensors reader/writer: round trip, every corruption class refused with
# its message, atomic writes. CPU only; works under a mkdtemp directory.
blpo_test_exe(test_safetensors)
add_test(NAME test_safetensors COMMAND test_safetensors)
set_tests_properties(test_safetensors PROPERTIES LABELS "cpu;checkpoint")

# The exported actor read back by NumPy + safetensors matches blpo-gpu's own
# output (creates tools/.venv-ckpt from the package index on first use).
add_test(NAME checkpoint_python
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint_python.sh $<TARGET_FILE:blpo-gpu>)
set_tests_properties(checkpoint_python PROPERTIES LABELS "cpu;checkpoint;python")
